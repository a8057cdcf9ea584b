"""Inbound idempotency, after draft-ietf-httpapi-idempotency-key-header.

The same key from the same source with the same body gets the stored answer and makes one
exchange; with a different body, 422; while the first is still being handled, 409. A claim whose
holder died (``kill -9`` mid-request) expires and may be taken over.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.models import InboundRequest, utcnow
from gateway.core.problems import Problem
from gateway.core.store import Store

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]
    media_type: str


def fingerprint(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def claim(store: Store, source: str, key: str, body_fingerprint: str, hold_seconds: float) -> StoredAnswer | None:
    """Claim ``key`` for this request; return the stored answer if it was already handled."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Problem("bad-request", f"An idempotency key is 1 to {MAX_KEY_LENGTH} characters.")
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
        if row.fingerprint != body_fingerprint:
            raise Problem("idempotency-key-reused", "This idempotency key was already used with a different body.")
        if row.status == "done":
            return StoredAnswer(row.response_status or 200, row.response_body or {}, row.response_media_type or "application/json")
        if row.locked_until is not None and row.locked_until > now:
            raise Problem("idempotency-conflict", "The first request with this key is still being handled; retry later.",
                          headers={"Retry-After": "1"})
        row.locked_until = now + timedelta(seconds=hold_seconds)
        return None


def complete(session: Session, source: str, key: str, status: int, body: dict[str, Any], media_type: str,
             exchange_id: str | None) -> None:
    """Store the answer in the transaction that creates the exchange: both or neither."""
    row = session.get(InboundRequest, (source, key))
    if row is None:
        raise RuntimeError("idempotency claim vanished before completion")
    row.status, row.locked_until = "done", None
    row.response_status, row.response_body, row.response_media_type = status, body, media_type
    row.exchange_id = exchange_id


def release(store: Store, source: str, key: str) -> None:
    """Forget a claim whose request failed before anything was stored, so a corrected retry runs."""
    with store.transaction() as session:
        row = session.get(InboundRequest, (source, key))
        if row is not None and row.status == "processing":
            session.delete(row)
