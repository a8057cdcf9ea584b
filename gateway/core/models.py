"""Database tables (SQLAlchemy 2 declarative). Alembic migrations in ``gateway/migrations`` own the schema."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    # On SQLite the two steps above and SQLite's own string conversion are fused into one function
    # each way: twenty-odd timestamps are written for every message, and the composed processors
    # were a measurable share of its CPU. Same strings (SQLAlchemy's SQLite storage format,
    # "YYYY-MM-DD HH:MM:SS.ffffff"), same values back.

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        utc = timezone.utc

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if not isinstance(value, datetime):
                raise TypeError("SQLite DateTime type only accepts Python datetime objects as input.")
            if value.tzinfo is not utc:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given to a UTC column")
                value = value.astimezone(utc)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        utc, parse = timezone.utc, datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            parsed = parse(value)
            return parsed.replace(tzinfo=utc) if parsed.tzinfo is None else parsed.astimezone(utc)

        return process


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connector_type: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    identifiers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    endpoint: Mapped[str] = mapped_column(String(500))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    state_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    state_changed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PartnerRoute(Base):
    """The configurable table that resolves a partner from a message attribute.

    For example (veiligthuis, gemeentecode, 0363) -> vt-amsterdam-amstelland.
    """

    __tablename__ = "partner_routing"
    __table_args__ = (UniqueConstraint("connector_type", "attribute", "value", name="uq_partner_routing_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector_type: Mapped[str] = mapped_column(String(64))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(200))
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)


class ConnectorState(Base):
    __tablename__ = "connector_states"

    connector_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Exchange(Base):
    __tablename__ = "exchanges"
    __table_args__ = (
        Index("ix_exchanges_state_created", "state", "created_at"),
        Index("ix_exchanges_partner_state", "partner_id", "state", "updated_at"),
        Index("ix_exchanges_partner_delivered", "partner_id", "delivered_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    correlation_id: Mapped[str] = mapped_column(String(64), index=True)
    route_id: Mapped[str] = mapped_column(String(100), index=True)
    message_type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(200))
    connector_type: Mapped[str] = mapped_column(String(64), index=True)
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    legal_basis: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    partner_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    payload_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    payload_digest: Mapped[str] = mapped_column(String(80))
    fields_out: Mapped[list[str]] = mapped_column(default=list)
    # What supports a non-consent basis (who weighed, when, which exception): encrypted, it names people.
    basis_evidence_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    context_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    body_purged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    retry_policy: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    # When the current run of attempts began (creation, or the last replay): the retry clock.
    retry_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)

    transitions: Mapped[list["Transition"]] = relationship(
        back_populates="exchange", order_by="Transition.id", cascade="all, delete-orphan"
    )


class Transition(Base):
    __tablename__ = "exchange_transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    exchange_id: Mapped[str] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)

    exchange: Mapped[Exchange] = relationship(back_populates="transitions")


class OutboxItem(Base):
    """A message waiting to leave. Written in the same transaction as its exchange's state change."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "held", "due_at"), Index("ix_outbox_line", "partner_id", "line", "created_at"))

    exchange_id: Mapped[str] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64), index=True)
    connector_type: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # Queued at: on an ordered route, the order in which a client's messages go.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # On an ordered route, the client (the exchange's subject) whose messages to this partner go
    # one at a time, in the order they were queued; None elsewhere.
    line: Mapped[str | None] = mapped_column(String(128), nullable=True)


class InboundRequest(Base):
    """Inbound idempotency record, after draft-ietf-httpapi-idempotency-key-header."""

    __tablename__ = "inbound_requests"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    response_media_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    exchange_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One NEN 7513 event. Append-only; ``hash`` chains it to the entry before."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    action_code: Mapped[str] = mapped_column(String(1))
    occurred_at: Mapped[datetime] = mapped_column()
    outcome: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    on_behalf_of: Mapped[str | None] = mapped_column(String(200), nullable=True)
    purpose_of_use: Mapped[str | None] = mapped_column(String(100), nullable=True)
    access_point: Mapped[str | None] = mapped_column(String(200), nullable=True)
    client: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    exchange_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    message_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    partner_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    legal_basis: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fields: Mapped[list[str]] = mapped_column(default=list)
    payload_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Consent(Base):
    """A client's consent, shaped like FHIR R4 Consent. Never updated but to withdraw it."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_client_status", "client", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client: Mapped[str] = mapped_column(String(128))
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    partner_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    purpose: Mapped[str] = mapped_column(String(100))
    data_categories: Mapped[list[str]] = mapped_column(default=list)
    valid_from: Mapped[datetime] = mapped_column()
    valid_to: Mapped[datetime | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    evidence_reference: Mapped[str | None] = mapped_column(String(500), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditCheckpoint(Base):
    """A signed record of the chain head, so that cutting off the newest entries shows."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    public_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
