"""Hook implementations of the built-in webhook plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.builtin.webhook.connector import WebhookConnector
from gateway.builtin.webhook.schemas import Notice
from gateway.core.hookspecs import hookimpl
from gateway.core.messages import InboundMessage, ParsedMessage, parse_json
from gateway.core.problems import Problem
from gateway.core.routing import Route
from gateway.core.simulators import DemoPartner, Simulator

NOTICE_ROUTE = Route(
    id="webhook.notice",
    message_type="notice",
    target="webhook",
    purpose="signalering",
    legal_bases=("toestemming", "vitaal_belang"),
    mapping="webhook_notice",
    retry_policy="standard",
    partner_attribute=None,
    sources=("hulpverlener", "beheerder"),
    data_categories=("signalen",),
    description="A short notice to a generic JSON partner.",
)


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(WebhookConnector())


@hookimpl
def register_routes(register: Callable[[Route], None]) -> None:
    register(NOTICE_ROUTE)


@hookimpl
def register_simulators(register: Callable[[Simulator], None]) -> None:
    from gateway.builtin.webhook.simulator import create_app

    register(Simulator(
        name="sink",
        app=create_app,
        description="Counts what it receives, de-duplicates by Idempotency-Key, injects faults on request.",
        demo_partners=(DemoPartner(id="wijkteam-demo", connector_type="webhook", name="Wijkteam Demostad (webhook)",
                                   path="/inbox", identifiers={"gemeentecode": "9999"}),),
    ))


@hookimpl
def parse_inbound(message: InboundMessage) -> ParsedMessage | None:
    if message.route.message_type != "notice":
        return None
    if message.media_type != "application/json":
        raise Problem("unsupported-media-type", "A notice is sent as application/json.")
    notice = parse_json(message.body, Notice)
    attributes = {"region": notice.region} if notice.region else {}
    return ParsedMessage(
        data=notice.model_dump(exclude={"partner", "region", "evidence"}),
        partner_message_id=None,
        subject=notice.client_id,
        attributes=attributes,
        partner_id=notice.partner,
        basis_evidence=notice.evidence,
    )
