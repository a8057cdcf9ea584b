"""Connector types: what a plugin registers, and how a message is delivered to a partner.

A plugin provides a connector *type* (one object, registered through ``register_connectors``);
administrators register *partners* of that type. The connector does the async work: for each
attempt the delivery worker calls :meth:`Connector.deliver` with a :class:`Delivery`.

Outcomes, as :class:`DeliveryResult`::

    delivered   the partner took it (2xx, or a plugin's own "already have it")
    retry       unknown or transient: timeout, connection reset, 408/409/425/429/5xx
    reject      the partner refused it for good (other 4xx): dead letter, replayable
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, SecretStr

from gateway.core import transport
from gateway.core.partners import PartnerView
from gateway.core.retry import RETRYABLE_STATUS

_ID = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


class NoConfig(BaseModel):
    """A connector type that needs no partner configuration."""


class BearerConfig(BaseModel):
    """Partner configuration for an HTTP partner that authenticates us with a bearer token."""

    token: SecretStr | None = None
    path: str = ""


@dataclass(frozen=True)
class ConnectorManifest:
    """What a connector type is, learned from OpenHIM mediator registration."""

    id: str
    version: str
    title: str
    partner_kind: str
    messages_in: tuple[str, ...] = ()
    messages_out: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    config_schema: type[BaseModel] = NoConfig
    description: str = ""

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"connector id {self.id!r} must be lower-case letters, digits and underscores")
        if not (isinstance(self.config_schema, type) and issubclass(self.config_schema, BaseModel)):
            raise TypeError(f"connector {self.id}: config_schema must be a pydantic model class")

    def secret_fields(self) -> list[str]:
        return [
            name
            for name, info in self.config_schema.model_fields.items()
            if _is_secret(info.annotation)
        ]

    def as_dict(self) -> dict[str, Any]:
        schema = self.config_schema.model_json_schema()
        for name in self.secret_fields():
            schema.setdefault("properties", {}).setdefault(name, {})["x-secret"] = True
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "partner_kind": self.partner_kind,
            "messages_in": list(self.messages_in),
            "messages_out": list(self.messages_out),
            "purposes": list(self.purposes),
            "config_schema": schema,
            "description": self.description,
        }


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in getattr(annotation, "__args__", ()))


@dataclass
class Delivery:
    """One attempt to hand one exchange to one partner."""

    exchange_id: str
    correlation_id: str
    route_id: str
    message_type: str
    body: bytes
    media_type: str
    idempotency_key: str
    attempt: int
    partner: PartnerView
    http: httpx.AsyncClient
    deadline: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class DeliveryResult:
    outcome: Literal["delivered", "retry", "reject"]
    reason: str
    status: int | None = None
    receipt: dict[str, Any] | None = None
    retry_after: float | None = None


class Connector:
    """Base of every connector type. Subclasses set ``manifest`` and implement :meth:`deliver`."""

    manifest: ClassVar[ConnectorManifest]

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the connector holds; called once at shutdown."""


class HttpConnector(Connector):
    """POSTs the body to the partner's endpoint, with the exchange's stable ``Idempotency-Key``.

    The whole attempt — connect, send, and reading the answer — runs under one deadline, so a
    partner that trickles its answer a byte at a time cannot hold a worker.
    """

    def url(self, delivery: Delivery) -> str:
        path = str(delivery.partner.config.get("path") or "")
        return delivery.partner.endpoint.rstrip("/") + (("/" + path.lstrip("/")) if path else "")

    def request_headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {
            "Content-Type": delivery.media_type,
            "Idempotency-Key": delivery.idempotency_key,
            "X-Correlation-ID": delivery.correlation_id,
            "X-Schakel-Message-Type": delivery.message_type,
            **delivery.headers,
        }
        token = delivery.partner.secrets.get("token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        try:
            async with asyncio.timeout(delivery.deadline):
                response = await transport.post(delivery.http, self.url(delivery), content=delivery.body,
                                                headers=self.request_headers(delivery),
                                                timeout=httpx.Timeout(delivery.deadline))
        except TimeoutError:
            return no_answer_in_time(delivery)
        except httpx.TransportError as exc:
            return transport_failure(exc)
        return self.classify(response, delivery)

    def classify(self, response: httpx.Response, delivery: "Delivery | None" = None) -> DeliveryResult:
        """The outcome of an answer. ``delivery`` lets a connector judge an answer by the attempt it
        answers (a partner's "already had that one" on a retry means the first attempt arrived)."""
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult("delivered", f"HTTP {status}", status, self.receipt(response))
        if status in RETRYABLE_STATUS:
            return DeliveryResult("retry", f"HTTP {status} from partner", status, retry_after=_retry_after(response))
        return DeliveryResult("reject", f"HTTP {status} from partner", status)

    # The key of the partner's JSON answer that holds its reference, where it sends none in a header.
    receipt_key: ClassVar[str | None] = None

    def receipt(self, response: httpx.Response) -> dict[str, Any]:
        """Keep only a reference, never the partner's whole answer (it may hold personal data)."""
        receipt: dict[str, Any] = {"status": response.status_code}
        reference = response.headers.get("Location") or response.headers.get("X-Receipt-Id")
        if not reference and self.receipt_key:
            try:
                reference = response.json().get(self.receipt_key)
            except (ValueError, AttributeError):
                reference = None
        if reference:
            receipt["reference"] = str(reference)[:200]
        return receipt


# In the reason of every attempt whose outcome the gateway cannot know: the partner may have acted
# on it. A message that then runs out of attempts says so in its dead-letter reason (outbox._record).
OUTCOME_UNKNOWN = "outcome unknown"

# Failures before the request could have reached the partner; any other transport failure may
# have happened after the partner had the whole request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def no_answer_in_time(delivery: Delivery) -> DeliveryResult:
    """The outcome of an attempt cut off at its deadline, for every connector alike."""
    return DeliveryResult("retry", f"no complete answer within {delivery.deadline:g} s ({OUTCOME_UNKNOWN})")


def transport_failure(exc: httpx.TransportError) -> DeliveryResult:
    """The outcome of an attempt that failed in transport, for every connector alike."""
    if isinstance(exc, _NOT_SENT):
        return DeliveryResult("retry", f"transport error: {type(exc).__name__}")
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryResult("retry", f"timed out ({OUTCOME_UNKNOWN})")
    return DeliveryResult("retry", f"transport error: {type(exc).__name__} ({OUTCOME_UNKNOWN})")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value and value.isdigit():
        return min(float(value), 3600.0)
    return None
