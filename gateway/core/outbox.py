"""The transactional outbox: claiming due messages, recording each attempt's outcome, replay.

A claim is a lease: the claimer owns the row until ``lease_until``. A process killed with
``kill -9`` mid-delivery simply lets its leases expire and another worker (or the restarted
process) takes the message again — with the same ``Idempotency-Key``, so the partner's
de-duplication turns at-least-once delivery into exactly-once effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.connectors import DeliveryResult
from gateway.core.exchange import transition
from gateway.core.models import Exchange, OutboxItem, Partner, utcnow
from gateway.core.problems import Problem
from gateway.core.retry import get_policy

if TYPE_CHECKING:
    from gateway.core.runtime import Gateway

WORKER = audit.Actor.system("delivery")


@dataclass(frozen=True)
class Attempt:
    """Everything a worker needs to make one attempt, read while the lease is held."""

    exchange_id: str
    correlation_id: str
    route_id: str
    message_type: str
    connector_type: str
    body: bytes
    media_type: str
    idempotency_key: str
    attempt: int
    partner: partner_registry.PartnerView


def claim(gw: "Gateway", owner: str, limit: int) -> list[str]:
    now = utcnow()
    with gw.store.transaction() as session:
        query = (
            select(OutboxItem)
            .where(OutboxItem.held.is_(False), OutboxItem.due_at <= now,
                   or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now))
            .order_by(OutboxItem.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        items = list(session.scalars(query))
        until = now + timedelta(seconds=gw.settings.lease_seconds)
        for item in items:
            item.lease_owner, item.lease_until = owner, until
        return [item.exchange_id for item in items]


def _owned(session: Session, exchange_id: str, owner: str) -> OutboxItem | None:
    item = session.get(OutboxItem, exchange_id, with_for_update=True)
    return item if item is not None and item.lease_owner == owner else None


def prepare(gw: "Gateway", exchange_id: str, owner: str) -> Attempt | None:
    """Re-check the basis, respect pause, mark ``sending``. ``None`` when nothing is to be sent now."""
    with gw.store.transaction() as session:
        item = _owned(session, exchange_id, owner)
        if item is None:
            return None
        exchange = session.get(Exchange, exchange_id)
        partner = session.get(Partner, item.partner_id)
        if exchange is None or partner is None or exchange.state not in {"queued", "failed", "sending"}:
            session.delete(item)
            return None
        if exchange.state == "sending":
            # The last attempt's worker died mid-delivery: its outcome is unknown.
            transition(session, exchange, "failed", actor=WORKER, reason="attempt interrupted; outcome unknown",
                       attempt=exchange.attempts)
        decision = gw.policy.recheck(session, exchange, partner)
        if not decision.allowed:
            transition(session, exchange, "refused", actor=WORKER, reason=decision.reason)
            session.delete(item)
            return None
        paused = partner_registry.connector_paused(session, exchange.connector_type)
        if paused is not None or partner.state == "paused":
            why = "connector paused" if paused is not None else "partner paused"
            transition(session, exchange, "parked", actor=WORKER, reason=why)
            item.held, item.lease_owner, item.lease_until = True, None, None
            return None
        exchange.attempts += 1
        transition(session, exchange, "sending", actor=WORKER, attempt=exchange.attempts)
        return Attempt(
            exchange_id=exchange.id,
            correlation_id=exchange.correlation_id,
            route_id=exchange.route_id,
            message_type=exchange.message_type,
            connector_type=exchange.connector_type,
            body=gw.box.decrypt(exchange.payload_encrypted or b""),
            media_type=exchange.content_type,
            idempotency_key=exchange.idempotency_key,
            attempt=exchange.attempts,
            partner=partner_registry.view(partner, gw.box),
        )


def record(gw: "Gateway", attempt: Attempt, result: DeliveryResult, owner: str) -> str:
    """Persist one attempt's outcome; returns the exchange's new state."""
    now = utcnow()
    with gw.store.transaction() as session:
        exchange = session.get(Exchange, attempt.exchange_id)
        item = session.get(OutboxItem, attempt.exchange_id, with_for_update=True)
        if exchange is None or exchange.state != "sending" or exchange.attempts != attempt.attempt:
            # Our lease ran out and another worker took over; its attempt decides.
            return exchange.state if exchange else "gone"
        exchange.last_status = result.status
        if result.outcome == "delivered":
            transition(session, exchange, "delivered", actor=WORKER, reason=result.reason, attempt=attempt.attempt)
            exchange.delivered_at, exchange.receipt, exchange.last_error = now, result.receipt, None
            if item is not None:
                session.delete(item)
            return exchange.state
        exchange.last_error = result.reason
        delay = None
        if result.outcome == "retry":
            policy = get_policy(exchange.retry_policy)
            elapsed = (now - exchange.retry_started_at).total_seconds()
            delay = policy.next_delay(attempt.attempt, elapsed, gw.settings.retry_scale)
            if delay is not None and result.retry_after is not None:
                delay = max(delay, result.retry_after * gw.settings.retry_scale)
        if delay is None:
            why = result.reason if result.outcome == "reject" else f"gave up after {attempt.attempt} attempts: {result.reason}"
            transition(session, exchange, "dead", actor=WORKER, reason=why, attempt=attempt.attempt)
            if item is not None:
                session.delete(item)
            return exchange.state
        transition(session, exchange, "failed", actor=WORKER, reason=result.reason, attempt=attempt.attempt)
        if item is not None:
            item.due_at, item.lease_owner, item.lease_until = now + timedelta(seconds=delay), None, None
        return exchange.state


def replay(session: Session, exchange: Exchange, actor: audit.Actor, reason: str) -> None:
    """Give a dead letter a new life: same exchange, same idempotency key, fresh attempts."""
    if exchange.state != "dead":
        raise Problem("state-conflict", "Only dead letters can be replayed.")
    if exchange.payload_encrypted is None:
        raise Problem("state-conflict", "The message body was purged; the exchange cannot be replayed.")
    transition(session, exchange, "replayed", actor=actor, reason=reason)
    exchange.replays += 1
    exchange.attempts = 0
    exchange.retry_started_at = utcnow()
    transition(session, exchange, "queued", actor=actor, reason="replay")
    session.add(OutboxItem(exchange_id=exchange.id, partner_id=exchange.partner_id or "", connector_type=exchange.connector_type,
                           due_at=utcnow()))


def replay_many(gw: "Gateway", ids: list[str], actor: audit.Actor, reason: str,
                progress: Callable[[], None] | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Replay each in its own transaction, so one that cannot be replayed does not stop the rest.
    Unknown ids are found with one read first: a long list of them costs no write transactions."""
    replayed: list[str] = []
    skipped: list[dict[str, str]] = []
    ids = list(dict.fromkeys(ids))
    known: set[str] = set()
    with gw.store.reading() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            known.update(session.scalars(select(Exchange.id).where(Exchange.id.in_(chunk))))
    for exchange_id in ids:
        if exchange_id not in known:
            skipped.append({"exchange_id": exchange_id, "reason": "No exchange with that id."})
            if progress is not None:
                progress()
            continue
        try:
            with gw.store.transaction() as session:
                exchange = session.get(Exchange, exchange_id)
                if exchange is None:
                    raise Problem("not-found", "No exchange with that id.")
                replay(session, exchange, actor, reason)
            replayed.append(exchange_id)
        except Problem as problem:
            skipped.append({"exchange_id": exchange_id, "reason": problem.detail or problem.slug})
        if progress is not None:
            progress()
    return replayed, skipped


def dead_letter_ids(session: Session, partner_id: str | None = None, limit: int = 10_000) -> list[str]:
    query = select(Exchange.id).where(Exchange.state == "dead")
    if partner_id:
        query = query.where(Exchange.partner_id == partner_id)
    return list(session.scalars(query.order_by(Exchange.updated_at).limit(limit)))


def queue_depths(session: Session) -> dict[str, dict[str, Any]]:
    from sqlalchemy import func

    rows = session.execute(
        select(OutboxItem.partner_id, OutboxItem.held, func.count()).group_by(OutboxItem.partner_id, OutboxItem.held)
    )
    depths: dict[str, dict[str, Any]] = {}
    for partner_id, held, count in rows:
        entry = depths.setdefault(partner_id, {"queued": 0, "parked": 0})
        entry["parked" if held else "queued"] += count
    return depths
