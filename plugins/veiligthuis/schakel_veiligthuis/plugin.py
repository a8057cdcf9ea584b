"""Hook implementations of the veiligthuis plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.core.hookspecs import hookimpl
from gateway.core.messages import InboundMessage, OutboundMessage, ParsedMessage, load_json, validate_model
from gateway.core.problems import Problem
from gateway.core.routing import Route
from gateway.core.simulators import DemoPartner, Simulator
from schakel_veiligthuis import feedback as fb
from schakel_veiligthuis import melding
from schakel_veiligthuis.connector import VeiligThuisConnector

MELDING_ROUTE = Route(
    id="veiligthuis.melding",
    message_type="vt_melding",
    target="veiligthuis",
    purpose="melding_huiselijk_geweld",
    legal_bases=("toestemming", "meldrecht"),
    mapping="vt_melding",
    retry_policy="urgent",
    partner_attribute="gemeentecode",
    # Only through POST /api/v1/veiligthuis/meldingen, which drafts from the ECD: never a melding
    # composed by hand, whose confidential fields nobody marked.
    sources=(),
    data_categories=("personalia", "contactgegevens", "gezinssituatie", "signalen", "hulpverlening", "veiligheid"),
    description="A melding under the meldcode to the Veilig Thuis region where the child (or client) lives.",
)
FEEDBACK_ROUTE = Route(
    id="veiligthuis.terugkoppeling",
    message_type="vt_terugkoppeling",
    target="care4",
    purpose="dossiervorming",
    legal_bases=("wettelijke_plicht",),
    mapping="vt_terugkoppeling",
    retry_policy="patient",
    sources=("partner:veiligthuis",),
    description="Receipt, decision and end-of-involvement feedback from Veilig Thuis into the dossier.",
)


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(VeiligThuisConnector())


@hookimpl
def register_routes(register: Callable[[Route], None]) -> None:
    register(MELDING_ROUTE)
    register(FEEDBACK_ROUTE)


@hookimpl
def register_routers(register: Callable[..., None]) -> None:
    from schakel_veiligthuis.api import partner_router, worker_router

    register(worker_router, prefix="/api/v1/veiligthuis")
    register(partner_router, prefix="/partners/veiligthuis")


@hookimpl
def register_console_pages(register: Callable[..., None]) -> None:
    from schakel_veiligthuis.console import NAV, PREFIX, TEMPLATES, router

    register(router, prefix=PREFIX, nav=NAV, templates=TEMPLATES)


@hookimpl
def register_simulators(register: Callable[[Simulator], None]) -> None:
    from schakel_care4.fixtures import REGIONS
    from schakel_veiligthuis.simulator import create_app

    register(Simulator(
        name="veiligthuis", app=create_app,
        description="Two Veilig Thuis regions that validate meldingen and send receipts and feedback.",
        demo_partners=tuple(
            DemoPartner(id=f"vt-{region}", connector_type="veiligthuis", name=f"Veilig Thuis {region.replace('-', ' ').title()}",
                        path=f"/{region}/meldingen", identifiers={"region": region}, routing={"gemeentecode": codes})
            for region, codes in REGIONS.items()),
        configure=_configure_demo,
    ))


def _configure_demo(simulator_url: str, gateway_url: str, partner_tokens: dict[str, str]) -> None:
    """Let the regions send receipts and decisions back to the demo gateway with their own tokens."""
    import httpx

    tokens = {partner_id.removeprefix("vt-"): token for partner_id, token in partner_tokens.items()
              if partner_id.startswith("vt-")}
    httpx.post(f"{simulator_url}/_control", json={"callback_url": gateway_url, "tokens": tokens, "ack_delay": 1,
                                                  "decision_delay": 30, "end_delay": 120}, timeout=10)


@hookimpl
def parse_inbound(message: InboundMessage) -> ParsedMessage | None:
    if message.route.message_type == "vt_melding":
        return _parse_melding(message)
    if message.route.message_type == "vt_terugkoppeling":
        return _parse_feedback(message)
    return None


def _parse_melding(message: InboundMessage) -> ParsedMessage:
    # Built by the plugin's own endpoint from the ECD (the route accepts nothing else).
    envelope = load_json(message.body)
    evidence = {"meldrecht": envelope["evidence"]} if envelope.get("evidence") else {}
    return ParsedMessage(
        data=envelope["melding"],
        subject=envelope["subject"],
        attributes={"gemeentecode": envelope["gemeentecode"]},
        confidential=frozenset(envelope["confidential"]),
        basis_evidence=evidence,
        context={"dossier_id": envelope["dossier_id"], "client_id": envelope["client_id"]},
    )


def _parse_feedback(message: InboundMessage) -> ParsedMessage:
    envelope = load_json(message.body)
    entered_by = envelope.pop("entered_by", None) if isinstance(envelope, dict) else None
    feedback = validate_model(fb.Feedback, envelope)
    found = message.gateway.exchange_context(feedback.melding_kenmerk)
    if found is None or found[0]["route_id"] != MELDING_ROUTE.id:
        raise Problem("message-invalid", "No melding with that kenmerk was sent.")
    meta, context = found
    principal = message.principal
    if principal.role == "partner" and principal.partner_id != meta["partner_id"]:
        # A region answers only for the meldingen it received.
        raise Problem("forbidden", "This melding was not sent to your region.")
    source = (f"Veilig Thuis ({meta['partner_id']})" if principal.role == "partner"
              else f"handmatig ingevoerd door {entered_by or principal.name}")
    return ParsedMessage(
        data={"dossier_id": context["dossier_id"], **fb.note_for(feedback, source)},
        partner_message_id=f"{feedback.type}:{feedback.melding_kenmerk}:{feedback.date.isoformat()}",
        subject=meta["subject"],
        subject_is_pseudonym=True,
        correlation_id=meta["correlation_id"],
        context={"type": feedback.type, "decision": feedback.decision, "date": feedback.date.isoformat(),
                 "melding": feedback.melding_kenmerk},
    )


@hookimpl
def map_outbound(message: OutboundMessage) -> tuple[bytes, str] | None:
    if message.route.message_type != "vt_melding":
        return None
    return melding.to_xml(message.fields, message.exchange_id), "application/xml"
