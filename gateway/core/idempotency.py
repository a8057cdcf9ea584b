"""Inbound idempotency, after draft-ietf-httpapi-idempotency-key-header.

The same key from the same source with the same body gets the stored answer and makes one
exchange; with a different body, 422; while the first is still being handled, 409.

The pipeline writes nothing before its one transaction, so it needs no claim up front: it looks
the key up (:func:`lookup`, a read), does its work, and stores the answer in the transaction that
creates the exchange (:func:`store_answer`). Two requests with one key racing each other both get
that far; the second to commit finds the key taken (:class:`Taken`), its transaction rolls back
with nothing written, and it answers with the first one's stored answer. Callers whose work has
effects outside that transaction claim the key first (:func:`claim`, then :func:`complete`); a
claim whose holder died (``kill -9`` mid-request) expires and may be taken over.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.models import InboundRequest, utcnow
from gateway.core.problems import Problem
from gateway.core.sql import Bind, InsertUnlessTaken, Read, Statement
from gateway.core.store import Store, defer_checks, queue_checked

MAX_KEY_LENGTH = 255

_REQUESTS = InboundRequest.__table__
# A plain row, not an ORM object: read on every request that carries a key, and only looked at.
_BY_KEY = Statement(select(_REQUESTS).where(_REQUESTS.c.source == bindparam("source"),
                                            _REQUESTS.c.key == bindparam("key")))
_ANSWER_COLUMNS = ("source", "key", "fingerprint", "status", "locked_until", "response_status", "response_body",
                   "response_media_type", "exchange_id", "created_at")
# One statement that inserts unless the key is there: no read first, nothing for the ORM to track.
_INSERT_UNLESS_TAKEN = {
    name: Statement(insert(_REQUESTS).values({column: bindparam(column) for column in _ANSWER_COLUMNS})
                    .on_conflict_do_nothing().returning(_REQUESTS.c.key))
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgres_insert))
}
# The same for a batch's answers on PostgreSQL, as one statement (store.queue_checked).
_INSERT_MANY_UNLESS_TAKEN = InsertUnlessTaken(_REQUESTS, list(_ANSWER_COLUMNS), key=("source", "key"))


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]
    media_type: str


class Taken(Exception):
    """Another request with this key committed first; ask :func:`lookup` for its answer."""


def fingerprint(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def claim(store: Store, source: str, key: str, body_fingerprint: str, hold_seconds: float) -> StoredAnswer | None:
    """Claim ``key`` for this request; return the stored answer if it was already handled."""
    check_key(key)
    now = utcnow()
    try:
        with store.transaction() as session:
            session.add(InboundRequest(source=source, key=key, fingerprint=body_fingerprint, status="processing",
                                       locked_until=now + timedelta(seconds=hold_seconds)))
        return None
    except IntegrityError:
        pass
    with store.transaction() as session:
        row = session.get(InboundRequest, (source, key), with_for_update=True)
        if row is None:  # released between our insert and this read: try once more
            session.add(InboundRequest(source=source, key=key, fingerprint=body_fingerprint, status="processing",
                                       locked_until=now + timedelta(seconds=hold_seconds)))
            return None
        stored = _answer_of(row, body_fingerprint, now)
        if stored is not None:
            return stored
        row.locked_until = now + timedelta(seconds=hold_seconds)
        return None


def _answer_of(row: Any, body_fingerprint: str, now: Any) -> StoredAnswer | None:
    if row.fingerprint != body_fingerprint:
        raise Problem("idempotency-key-reused", "This idempotency key was already used with a different body.")
    if row.status == "done":
        return StoredAnswer(row.response_status or 200, row.response_body or {}, row.response_media_type or "application/json")
    if row.locked_until is not None and row.locked_until > now:
        raise Problem("idempotency-conflict", "The first request with this key is still being handled; retry later.",
                      headers={"Retry-After": "1"})
    return None  # a claim whose holder died: free to take


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Problem("bad-request", f"An idempotency key is 1 to {MAX_KEY_LENGTH} characters.")


def lookup(store: Store, source: str, key: str, body_fingerprint: str) -> StoredAnswer | None:
    """The stored answer for ``key``, if it was handled; 422 for another body, 409 while claimed."""
    with store.reading() as session:
        return lookup_in(session, source, key, body_fingerprint)


def lookup_read(source: str, key: str) -> Read:
    """The look-up :func:`lookup_in` makes, for :func:`gateway.core.sql.prefetch`."""
    return Read(_BY_KEY, source=source, key=key)


def lookup_in(session: Bind, source: str, key: str, body_fingerprint: str) -> StoredAnswer | None:
    """:func:`lookup` within a read transaction the caller already has."""
    check_key(key)
    row = lookup_read(source, key).first(session)
    return None if row is None else _answer_of(row, body_fingerprint, utcnow())


def store_answer(session: Session, source: str, key: str, body_fingerprint: str, status: int, body: dict[str, Any],
                 media_type: str, exchange_id: str | None) -> None:
    """Store the answer in the transaction that creates the exchange; :class:`Taken` if the key
    was stored (or claimed) by another request since :func:`lookup`."""
    values = dict(source=source, key=key, fingerprint=body_fingerprint, status="done", locked_until=None,
                  response_status=status, response_body=body, response_media_type=media_type,
                  exchange_id=exchange_id, created_at=utcnow())
    if defer_checks(session):
        # With the batch's others as one pipeline; a key taken meanwhile makes the batch run unit
        # by unit, and then this unit finds out below and fails alone.
        queue_checked(session, _INSERT_MANY_UNLESS_TAKEN, values)
        return
    if _INSERT_UNLESS_TAKEN[session.get_bind().dialect.name].first(session, **values) is not None:
        return
    row = session.get(InboundRequest, (source, key), populate_existing=True)
    if row is None:
        raise Taken(key)  # there a moment ago, gone now: let the caller look again
    if row.status == "done" or row.fingerprint != body_fingerprint or (row.locked_until and row.locked_until > utcnow()):
        raise Taken(key)
    complete(session, source, key, status, body, media_type, exchange_id)


def complete(session: Session, source: str, key: str, status: int, body: dict[str, Any], media_type: str,
             exchange_id: str | None) -> None:
    """Store the answer in the transaction that creates the exchange: both or neither."""
    row = session.get(InboundRequest, (source, key))
    if row is None:
        raise RuntimeError("idempotency claim vanished before completion")
    row.status, row.locked_until = "done", None
    row.response_status, row.response_body, row.response_media_type = status, body, media_type
    row.exchange_id = exchange_id
