"""The audit log: append-only NEN 7513 events, each chained to the one before by SHA-256.

An entry records field *names* and a payload digest, never values. :func:`record` only queues an
entry in the caller's transaction; :func:`seal` — called by the store as the last step before
commit — takes the lock that serialises chain writers across processes (``pg_advisory_xact_lock``
on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already does), links the queued entries to the head
and inserts them. Taking that lock last, and holding it only for the inserts, keeps it out of
every lock cycle and off the hot path.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.orm import Session

from gateway.core.ids import new_id
from gateway.core.models import AuditEntry, UTCDateTime, utcnow
from gateway.core.sql import Sent, Statement
from gateway.core.store import insert_rows

GENESIS = "0" * 64
_ADVISORY_LOCK = 7513

# Outcome codes as in NEN 7513 / DICOM / FHIR AuditEvent.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12

HASHED_FIELDS = (
    "event_id", "event_type", "action_code", "occurred_at", "outcome", "user_id", "role", "on_behalf_of",
    "purpose_of_use", "access_point", "client", "exchange_id", "message_type", "partner_message_id",
    "partner_id", "legal_basis", "consent_id", "fields", "payload_digest", "detail",
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a person or system (token name), in which role, on whose behalf, from where."""

    user_id: str
    role: str
    on_behalf_of: str | None = None
    access_point: str | None = None

    @classmethod
    def system(cls, component: str) -> "Actor":
        return cls(user_id=f"system:{component}", role="system")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # The fields as they are, as strftime("%Y-%m-%dT%H:%M:%S.%fZ") writes them (for years from
        # 1000 on, which every entry's time is), at a fraction of strftime's cost.
        return value.replace(tzinfo=None).isoformat("T", "microseconds") + "Z"
    return value


# The hashed fields that hold a time (by the table's column types); the others are strings,
# numbers, lists or None and go into the hash as they are.
_TIME_FIELDS = frozenset(column.key for column in AuditEntry.__table__.columns
                         if column.key in HASHED_FIELDS and isinstance(column.type, UTCDateTime))


_SORTED_FIELDS = tuple(sorted(HASHED_FIELDS))
_sorted_values = operator.attrgetter(*_SORTED_FIELDS)  # an entry, a row or an ORM object alike
# json.dumps(..., sort_keys=True) on a dict built in sorted order, without sorting it each time.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical(entry: Any) -> bytes:
    """The serialisation that is hashed: sorted keys, no whitespace, UTC timestamps."""
    data = dict(zip(_SORTED_FIELDS, _sorted_values(entry)))
    for name in _TIME_FIELDS:
        data[name] = _canonical_value(data[name])
    return _dumps(data).encode()


def entry_hash(prev_hash: str, entry: Any) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


_CHAIN_LOCK = Statement(select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger))))
_HEAD = Statement(select(AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1))


def _lock_and_head(session: Session) -> str:
    if session.get_bind().dialect.name == "postgresql":
        _CHAIN_LOCK.all(session, key=_ADVISORY_LOCK)
    head = _HEAD.first(session)
    return head.hash if head is not None else GENESIS


def send_lock_and_head(session: Session) -> tuple[Sent, Sent]:
    """:func:`_lock_and_head` on PostgreSQL, sent without waiting for the answers (in a pipeline,
    see :meth:`gateway.core.store.Store.finish_batch`); :func:`head_of` reads them."""
    lock = _CHAIN_LOCK.send(session, key=_ADVISORY_LOCK)
    try:
        return lock, _HEAD.send(session)
    except BaseException:
        lock.close()  # the caller never gets it to close
        raise


def head_of(sent: tuple[Sent, Sent]) -> str:
    lock, head = sent
    lock.rows()
    rows = head.rows()
    return rows[0].hash if rows else GENESIS


def record(
    session: Session,
    event_type: str,
    *,
    actor: Actor,
    action_code: str = "E",
    outcome: int = SUCCESS,
    purpose: str | None = None,
    client: str | None = None,
    exchange_id: str | None = None,
    message_type: str | None = None,
    partner_message_id: str | None = None,
    partner_id: str | None = None,
    legal_basis: str | None = None,
    consent_id: str | None = None,
    fields: list[str] | None = None,
    payload_digest: str | None = None,
    detail: str | None = None,
) -> Any:
    """Queue one event in the caller's transaction, so it commits or vanishes with the change."""
    if action_code not in "CRUDE":
        raise ValueError("action_code is one of C, R, U, D, E")
    # A plain object with the entry's fields: the ORM's bookkeeping per entry is wasted on a row
    # that :func:`seal` inserts as a plain row anyway.
    entry = SimpleNamespace(
        event_id=new_id(),
        event_type=event_type,
        action_code=action_code,
        occurred_at=utcnow(),
        outcome=outcome,
        user_id=actor.user_id,
        role=actor.role,
        on_behalf_of=actor.on_behalf_of,
        purpose_of_use=purpose,
        access_point=actor.access_point,
        client=client,
        exchange_id=exchange_id,
        message_type=message_type,
        partner_message_id=partner_message_id,
        partner_id=partner_id,
        legal_basis=legal_basis,
        consent_id=consent_id,
        fields=sorted(fields or []),
        payload_digest=payload_digest,
        detail=detail,
    )
    session.info.setdefault("audit_pending", []).append(entry)
    return entry


_COLUMNS = HASHED_FIELDS + ("prev_hash", "hash")


def seal(session: Session) -> int:
    """Chain and insert the entries queued in this transaction; returns how many."""
    pending: list[Any] = session.info.pop("audit_pending", [])
    session.flush()  # every other change first, so no row lock is taken after the chain lock
    if not pending:
        return 0
    return chain_and_insert(session, _lock_and_head(session), pending)


def chain_and_insert(session: Session, head: str, pending: list[Any]) -> int:
    """Chain the entries onto ``head`` (read under the chain lock this transaction holds) and insert
    them; returns how many."""
    for entry in pending:
        entry.prev_hash = head
        entry.hash = head = entry_hash(head, entry)
    # Plain rows in one executemany: a group commit seals hundreds of entries at a time, and the
    # ORM's bookkeeping per object is what would hold the write lock.
    insert_rows(session, AuditEntry.__table__, [{name: getattr(entry, name) for name in _COLUMNS} for entry in pending])
    return len(pending)
