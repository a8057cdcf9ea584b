"""Hook implementations of the police plugin."""

from __future__ import annotations

import json
from typing import Any, Callable

from gateway.core.hookspecs import hookimpl
from gateway.core.messages import InboundMessage, OutboundMessage, ParsedMessage, load_json
from gateway.core.policy import BasisCheck
from gateway.core.routing import Route
from gateway.core.simulators import DemoPartner, Simulator
from schakel_police.connector import HANDOVER, PoliceConnector

# Every route takes only what the plugin's own endpoints built (sources=()): a notice checked
# against its schema and its sender, a handover drafted from the ECD, an answer read from it.
HUISVERBOD_ROUTES = {part: f"police.huisverbod.{part}" for part in ("achterblijvers", "uithuisgeplaatste")}
HUISVERBOD_CHANGE = "police.huisverbod.wijziging"
HUISVERBOD_REACH = "police.huisverbod.bereikbaarheid"
ROUTES = (
    *(Route(id=route_id, message_type=f"huisverbod_{part}", target="care4", purpose="huisverbod",
            legal_bases=("huisverbod",), mapping=f"police_huisverbod_{part}", retry_policy="patient", sources=(),
            description=f"A tijdelijk huisverbod as a referral for the ambulant team: help for the {part}.")
      for part, route_id in HUISVERBOD_ROUTES.items()),
    Route(id=HUISVERBOD_CHANGE, message_type="huisverbod_wijziging", target="care4", purpose="huisverbod",
          legal_bases=("huisverbod",), mapping="police_huisverbod_wijziging", retry_policy="patient", sources=(),
          description="An extension (new deadline) or withdrawal (closed) of a huisverbod's referrals."),
    Route(id=HUISVERBOD_REACH, message_type="huisverbod_bereikbaarheid", target="care4", purpose="huisverbod",
          legal_bases=("huisverbod",), mapping="police_huisverbod_bereikbaarheid", retry_policy="patient", sources=(),
          description="Where the person removed can be reached, into his referral only."),
    Route(id="police.zorgmelding", message_type="zorgmelding", target="care4", purpose="hulpverlening",
          legal_bases=("wettelijke_plicht",), mapping="police_zorgmelding", retry_policy="patient", sources=(),
          description="A police zorgmelding about a household as a referral for the ambulant team."),
    Route(id="police.informatieverzoek", message_type="informatieverzoek_antwoord", target="police",
          purpose="informatieverstrekking", legal_bases=("huisverbod", "toestemming"),
          mapping="police_informatieverzoek_antwoord", retry_policy="urgent", sources=(),
          data_categories=("hulpverlening",),
          description="The minimal answer to a police or municipal information request, where a basis holds."),
    Route(id="police.overdracht", message_type=HANDOVER, target="police", purpose="warme_overdracht",
          legal_bases=("toestemming",), mapping="police_overdracht", retry_policy="standard", sources=(),
          data_categories=("personalia", "contactgegevens", "hulpverlening", "veiligheid"),
          description="A warm handover to a municipality or organisation: announced, then fetched by the partner."),
)
HANDOVER_ROUTE = "police.overdracht"


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(PoliceConnector())


@hookimpl
def register_routes(register: Callable[[Route], None]) -> None:
    for route in ROUTES:
        register(route)


@hookimpl
def register_routers(register: Callable[..., None]) -> None:
    from schakel_police.api import partner_router, worker_router

    register(worker_router, prefix="/api/v1/police")
    register(partner_router, prefix="/partners/police")


@hookimpl
def register_console_pages(register: Callable[..., None]) -> None:
    from schakel_police.console import NAV, PREFIX, TEMPLATES, router

    register(router, prefix=PREFIX, nav=NAV, templates=TEMPLATES)


def _demo_partners() -> tuple[DemoPartner, ...]:
    from schakel_care4.fixtures import REGIONS

    def unit(region: str, name: str) -> DemoPartner:
        return DemoPartner(id=f"politie-{region}", connector_type="police", name=name, path=f"/politie-{region}",
                           identifiers={"soort": "politie", "werkgebied": ",".join(REGIONS[region])})

    def municipality(slug: str, name: str, code: str) -> DemoPartner:
        return DemoPartner(id=f"gemeente-{slug}", connector_type="police", name=name, path=f"/gemeente-{slug}",
                           identifiers={"soort": "gemeente", "gemeentecode": code})

    return (unit("amsterdam-amstelland", "Politie eenheid Amsterdam (fictief)"),
            unit("utrecht", "Politie eenheid Midden-Nederland (fictief)"),
            municipality("amsterdam", "Gemeente Amsterdam (fictief)", "0363"),
            municipality("nieuwegein", "Gemeente Nieuwegein (fictief)", "0356"))


@hookimpl
def register_simulators(register: Callable[[Simulator], None]) -> None:
    from schakel_police.simulator import create_app

    register(Simulator(
        name="police", app=create_app,
        description="Police units and municipalities: send huisverbod notices, zorgmeldingen and information "
                    "requests; receive handover notifications, fetch the handover and confirm receipt.",
        demo_partners=_demo_partners(),
        configure=_configure_demo,
    ))


def _configure_demo(simulator_url: str, gateway_url: str, partner_tokens: dict[str, str]) -> None:
    """Let the simulated police units and municipalities call the demo gateway with their own tokens."""
    import httpx

    ours = {partner.id for partner in _demo_partners()}
    tokens = {partner_id: token for partner_id, token in partner_tokens.items() if partner_id in ours}
    httpx.post(f"{simulator_url}/_control", json={"gateway_url": gateway_url, "tokens": tokens}, timeout=10)


@hookimpl
def parse_inbound(message: InboundMessage) -> ParsedMessage | None:
    if message.route.id not in {route.id for route in ROUTES}:
        return None
    # An envelope the plugin's own endpoint built from a checked message (the routes take nothing else).
    envelope = load_json(message.body)
    return ParsedMessage(
        data=envelope["data"],
        partner_message_id=envelope.get("partner_message_id"),
        subject=envelope.get("subject"),
        subject_is_pseudonym=bool(envelope.get("subject_is_pseudonym")),
        partner_id=envelope.get("partner_id"),
        confidential=frozenset(envelope.get("confidential") or ()),
        basis_evidence=envelope.get("evidence") or {},
        context=envelope.get("context") or {},
    )


@hookimpl
def map_outbound(message: OutboundMessage) -> tuple[bytes, str] | None:
    if message.route.message_type != HANDOVER:
        return None
    # The mapping names the collection the handover is published in; the handover's own address
    # ends in its exchange id, which exists only now.
    notification = dict(message.fields["notificatie"])
    for key in ("hoofdObject", "resourceUrl"):
        notification[key] = notification[key] + message.exchange_id
    body = {**message.fields, "notificatie": notification}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"


@hookimpl
def basis_still_holds(check: BasisCheck) -> str | None:
    from schakel_police.informatieverzoek import answer_basis_lapsed

    return answer_basis_lapsed(check)
