"""Hook implementations of the wmo plugin."""

from __future__ import annotations

from typing import Any, Callable

import json

from gateway.core.hookspecs import hookimpl
from gateway.core.messages import InboundMessage, OutboundMessage, ParsedMessage, load_json
from gateway.core.routing import Route
from gateway.core.simulators import DemoPartner, Simulator

from schakel_wmo.connector import WmoConnector


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(WmoConnector())


TOEWIJZING_ROUTE = Route(
    id="wmo.toewijzing",
    message_type="wmo301",
    target="care4",
    purpose="wmo_uitvoering",
    legal_bases=("wettelijke_plicht",),
    mapping="wmo301_arrangement",
    retry_policy="patient",
    # Only through POST /partners/wmo/berichten, which checks the message against the official XSD.
    sources=(),
    description="A municipality's allocation (WMO301) into the client's arrangements in the ECD.",
    # Each sync reads the client's arrangements and then writes: two at once could both read before
    # either wrote, and an older one leave an allocation in force that the newer one ended.
    ordered=True,
)


# What the provider sends. Built by the worker endpoints from the ECD (never composed by hand),
# routed to the municipality by gemeentecode; the Wmo obliges the provider to report start and stop
# and to request allocations through iWmo, so the basis is the legal duty, not consent.
OUTBOUND_ROUTES = {
    bericht: Route(
        id=f"wmo.{kind}",
        message_type=bericht.lower(),
        target="wmo",
        purpose="wmo_uitvoering",
        legal_bases=("wettelijke_plicht",),
        mapping=mapping,
        retry_policy="patient",
        partner_attribute="gemeentecode",
        sources=(),
        description=description,
    )
    for bericht, kind, mapping, description in (
        ("WMO305", "start", "wmo305_start", "Start of care (WMO305) under allocations in the ECD."),
        ("WMO307", "stop", "wmo307_stop", "End of care (WMO307), with its reason."),
        ("WMO315", "verzoek_toewijzing", "wmo315_verzoek_toewijzing", "A request for an allocation (WMO315)."),
        ("WMO317", "verzoek_wijziging", "wmo317_verzoek_wijziging", "A request to change allocations (WMO317)."),
    )
}
ANSWER_ROUTE = Route(
    id="wmo.antwoord",
    message_type="wmo_antwoord",
    target="care4",
    purpose="wmo_uitvoering",
    legal_bases=("wettelijke_plicht",),
    mapping="wmo_antwoord",
    retry_policy="patient",
    # Only through POST /partners/wmo/berichten (a WMO316 or WMO319 linked to our request).
    sources=(),
    description="A municipality's retour (WMO316) or answer (WMO319) on our request, as a note in the dossier.",
)


PLAN_ROUTE = Route(
    id="wmo.gezinsactieplan",
    message_type="ondersteuningsplan",
    target="care4",
    purpose="wmo_uitvoering",
    legal_bases=("wettelijke_plicht",),
    mapping="zrm2017_gezinsactieplan",
    retry_policy="patient",
    # Only through the ondersteuningsplan endpoints, which validate the plan against its XSD.
    sources=(),
    description="A municipality's ondersteuningsplan into a draft gezinsactieplan in the client's dossier.",
)


@hookimpl
def register_routes(register: Callable[[Route], None]) -> None:
    register(TOEWIJZING_ROUTE)
    register(ANSWER_ROUTE)
    register(PLAN_ROUTE)
    for route in OUTBOUND_ROUTES.values():
        register(route)


@hookimpl
def register_routers(register: Callable[..., None]) -> None:
    from schakel_wmo.api import router, worker_router

    register(router, prefix="/partners/wmo")
    register(worker_router, prefix="/api/v1/wmo")


@hookimpl
def register_console_pages(register: Callable[..., None]) -> None:
    from schakel_wmo.console import NAV, PREFIX, TEMPLATES, router

    register(router, prefix=PREFIX, nav=NAV, templates=TEMPLATES)


@hookimpl
def register_simulators(register: Callable[[Simulator], None]) -> None:
    from schakel_wmo.simulator import create_app

    register(Simulator(
        name="gemeente", app=create_app,
        description="A municipality (Diemen, 0384) that receives iWmo messages from the provider.",
        demo_partners=(DemoPartner(id="gemeente-diemen", connector_type="wmo", name="Gemeente Diemen (fictief)",
                                   path="/berichten", identifiers={"gemeentecode": "0384"},
                                   config={"aanbieder_agb": "42420001"},
                                   routing={"gemeentecode": ["0384"]}),),
    ))


@hookimpl
def parse_inbound(message: InboundMessage) -> ParsedMessage | None:
    # Every wmo route is fed only by the plugin's own endpoints, which build these envelopes from
    # schema-valid messages or from the ECD (the routes' empty ``sources`` accept nothing else).
    kind = message.route.message_type
    if kind == "wmo301":
        envelope = json.loads(message.body)
        return ParsedMessage(
            data={"bsn": envelope["bsn"], "municipality": envelope["municipality"], "allocations": envelope["allocations"],
                  "as_of": envelope["as_of"]},
            subject=envelope["bsn"],
            correlation_id=envelope.get("correlation_id"),
            context={"retour": envelope["retour"], "dagtekening": envelope.get("dagtekening"),
                     "identificatie": envelope.get("identificatie")},
        )
    if kind == "wmo_antwoord":
        envelope = load_json(message.body)
        return ParsedMessage(
            data=envelope["note"], subject=envelope["subject"], subject_is_pseudonym=True,
            correlation_id=envelope["correlation_id"],
            context={"bericht": envelope["bericht"], "request_exchange": envelope["request_exchange"],
                     "retour": envelope.get("retour")},
        )
    if kind == "ondersteuningsplan":
        envelope = load_json(message.body)
        draft = envelope["draft"]
        return ParsedMessage(
            data=draft, subject=envelope["bsn"],
            context={"plan_id": draft["plan_id"], "gemeentecode": draft["gemeentecode"], "signed": draft["signed"],
                     "arrangement": draft["arrangement"], "due": draft["due"], "dossier_id": draft["dossier_id"],
                     "domains": len(draft["domains"])},
        )
    if kind in {"wmo305", "wmo307", "wmo315", "wmo317"}:
        envelope = load_json(message.body)
        header = envelope["header"]
        reference = envelope.get("reference")
        return ParsedMessage(
            data=envelope,
            subject=envelope["client"]["bsn"],
            attributes={"gemeentecode": envelope["gemeentecode"]},
            # How a WMO316 finds this message again: by the identification it mirrors.
            partner_message_id=f"{envelope['bericht']}:{header['identificatie']}",
            # How a WMO319 (and the WMO301 that grants a request) finds it: by ReferentieAanbieder.
            correlation_id=f"iwmo:{reference}" if reference else None,
            context={"dossier_id": envelope["dossier_id"], "client_id": envelope["client_id"],
                     "bericht": envelope["bericht"], "identificatie": header["identificatie"], "reference": reference},
        )
    return None


@hookimpl
def map_outbound(message: OutboundMessage) -> tuple[bytes, str] | None:
    if message.route.target != "wmo":
        return None
    from schakel_wmo import outbound

    return outbound.build(message.fields), "application/xml"
