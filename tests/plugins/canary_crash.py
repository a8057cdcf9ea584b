"""A plugin that fails with personal data in its exceptions: an endpoint and a connector.

Used by the no-personal-data test: whatever an exception says, and whatever its local
variables hold, must not reach a log line, a span, a metric or an answer.
"""

from fastapi import APIRouter

from gateway.core.connectors import Connector, ConnectorManifest, Delivery, DeliveryResult
from gateway.core.hookspecs import hookimpl
from gateway.core.routing import Route

CANARY = "Fenna Kanarie, Kanariestraat 13, BSN 111222333, 0612345678, fenna.kanarie@example.org"

router = APIRouter()


@router.post("/crash")
async def crash() -> None:
    client_record = {"name": "Fenna Kanarie", "bsn": "111222333"}  # a local variable a traceback could show
    raise RuntimeError(f"could not process {client_record} — {CANARY}")


class CrashingConnector(Connector):
    manifest = ConnectorManifest(id="crashing", version="1", title="Crashes", partner_kind="generic",
                                 messages_out=("notice",), purposes=("signalering",))

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        body = delivery.body.decode()
        raise ValueError(f"cannot deliver {body} for {CANARY}")


@hookimpl
def register_routers(register):
    register(router, prefix="/partners/canary")


@hookimpl
def register_connectors(register):
    register(CrashingConnector())


@hookimpl
def register_routes(register):
    register(Route(id="crashing.notice", message_type="notice", target="crashing", purpose="signalering",
                   legal_bases=("toestemming",), mapping="webhook_notice"))
