"""Hook implementations of the wmo plugin."""

from __future__ import annotations

from typing import Any, Callable

import json

from gateway.core.hookspecs import hookimpl
from gateway.core.messages import InboundMessage, ParsedMessage
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
)


@hookimpl
def register_routes(register: Callable[[Route], None]) -> None:
    register(TOEWIJZING_ROUTE)


@hookimpl
def register_routers(register: Callable[..., None]) -> None:
    from schakel_wmo.api import router

    register(router, prefix="/partners/wmo")


@hookimpl
def register_simulators(register: Callable[[Simulator], None]) -> None:
    from schakel_wmo.simulator import create_app

    register(Simulator(
        name="gemeente", app=create_app,
        description="A municipality (Diemen, 0384) that receives iWmo messages from the provider.",
        demo_partners=(DemoPartner(id="gemeente-diemen", connector_type="wmo", name="Gemeente Diemen (fictief)",
                                   path="/berichten", identifiers={"gemeentecode": "0384"},
                                   routing={"gemeentecode": ["0384"]}),),
    ))


@hookimpl
def parse_inbound(message: InboundMessage) -> ParsedMessage | None:
    if message.route.message_type != "wmo301":
        return None
    # Built by the partner endpoint from a schema-valid 301 (the route accepts nothing else).
    envelope = json.loads(message.body)
    return ParsedMessage(
        data={"bsn": envelope["bsn"], "municipality": envelope["municipality"], "allocations": envelope["allocations"]},
        subject=envelope["bsn"],
        context={"retour": envelope["retour"]},
    )
