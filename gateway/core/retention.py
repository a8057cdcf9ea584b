"""Retention and key rotation for what is stored encrypted.

Message bodies are kept only as long as they are needed to deliver, replay or answer a
break-the-glass request: after ``GATEWAY_BODY_RETENTION_DAYS`` the body and basis evidence of a
finished exchange are erased. The exchange's metadata and the audit trail stay.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select

from gateway.core import audit
from gateway.core.crypto import Box
from gateway.core.exchange import TERMINAL
from gateway.core.models import Exchange, Partner, utcnow
from gateway.core.store import Store

BATCH = 500


def purge_bodies(store: Store, days: int, actor: audit.Actor) -> int:
    """Erase bodies of finished exchanges older than ``days``; returns how many."""
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    purged = 0
    while True:
        with store.transaction() as session:
            rows = list(session.scalars(select(Exchange).where(
                Exchange.state.in_(TERMINAL), Exchange.updated_at < cutoff,
                or_(Exchange.payload_encrypted.is_not(None), Exchange.basis_evidence_encrypted.is_not(None)),
            ).limit(BATCH)))
            now = utcnow()
            for exchange in rows:
                exchange.payload_encrypted = None
                exchange.basis_evidence_encrypted = None
                exchange.context_encrypted = None
                exchange.body_purged_at = now
            if rows:
                audit.record(session, "retention.purged", actor=actor, action_code="D",
                             detail=f"{len(rows)} message bodies older than {days} days erased")
        purged += len(rows)
        if len(rows) < BATCH:
            return purged


def rotate_keys(store: Store, box: Box, actor: audit.Actor, progress: Callable[[int], None] | None = None) -> int:
    """Re-encrypt every stored secret under the first configured key; returns how many values."""
    rotated = 0
    with store.transaction() as session:
        for partner in session.scalars(select(Partner).where(Partner.credentials_encrypted.is_not(None))):
            partner.credentials_encrypted = box.rotate(partner.credentials_encrypted or b"")
            rotated += 1
    after = ""
    while True:
        with store.transaction() as session:
            rows = list(session.scalars(select(Exchange).where(
                Exchange.id > after,
                or_(Exchange.payload_encrypted.is_not(None), Exchange.basis_evidence_encrypted.is_not(None)),
            ).order_by(Exchange.id).limit(BATCH)))
            for exchange in rows:
                if exchange.payload_encrypted is not None:
                    exchange.payload_encrypted = box.rotate(exchange.payload_encrypted)
                if exchange.basis_evidence_encrypted is not None:
                    exchange.basis_evidence_encrypted = box.rotate(exchange.basis_evidence_encrypted)
                if exchange.context_encrypted is not None:
                    exchange.context_encrypted = box.rotate(exchange.context_encrypted)
            if not rows:
                break
            after = rows[-1].id
            rotated += len(rows)
            if progress:
                progress(len(rows))
    with store.transaction() as session:
        audit.record(session, "keys.rotated", actor=actor, action_code="U", detail=f"{rotated} values re-encrypted")
    return rotated
