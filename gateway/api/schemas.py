"""Response and request bodies of the management API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field


class ReasonIn(BaseModel):
    reason: str = Field(min_length=3, max_length=500, description="Why; kept in the audit log")


class TransitionOut(BaseModel):
    from_state: str | None
    to_state: str
    at: datetime
    reason: str | None
    actor: str | None
    attempt: int | None


class ExchangeOut(BaseModel):
    id: str
    correlation_id: str
    route_id: str
    message_type: str
    source: str
    connector_type: str
    partner_id: str | None
    subject: str | None = Field(description="The client's pseudonym, never a BSN")
    purpose: str
    legal_basis: str | None
    consent_id: str | None
    state: str
    state_reason: str | None
    partner_message_id: str | None
    idempotency_key: str
    fields_out: list[str]
    payload_digest: str
    attempts: int
    replays: int
    last_error: str | None
    last_status: int | None
    receipt: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class ExchangeDetail(ExchangeOut):
    timeline: list[TransitionOut]


class ExchangePage(BaseModel):
    items: list[ExchangeOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class ReplayIn(BaseModel):
    reason: str = Field(min_length=3, max_length=500)
    exchange_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(default=None, max_length=10_000)
    partner_id: str | None = None
    all: bool = Field(default=False, description="Replay every dead letter (optionally of one partner)")


class ReplayOut(BaseModel):
    replayed: list[str]
    skipped: list[dict[str, str]]


class ConnectorOut(BaseModel):
    manifest: dict[str, Any]
    state: str
    state_reason: str | None
    partners: int
    queued: int
    parked: int
    dead: int


class PartnerOut(BaseModel):
    id: str
    connector_type: str
    name: str
    endpoint: str
    identifiers: dict[str, Any]
    config: dict[str, Any] = Field(description="Secret fields show only as ******** when set")
    routing: dict[str, list[str]]
    state: str
    state_reason: str | None
    state_changed_at: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    queued: int = 0
    parked: int = 0
    dead: int = 0


class SubmitOut(BaseModel):
    exchange_id: str
    correlation_id: str
    state: str
    route: str
    partner: str | None
    fields: list[str]
    withheld: list[dict[str, str]]
    links: dict[str, str]
