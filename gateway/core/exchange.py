"""The exchange state machine.

::

    received -> validated -> authorised -> queued -> sending -> delivered -> acknowledged
                   |             |           |  ^      |
                   v             v           v  |      v
                refused       refused     parked  failed -> sending (retry) ... -> dead -> replayed -> queued

Every transition is a row in ``exchange_transitions`` with a timestamp and a reason, and an
audit event, both in the transaction that makes the change. Observers hear of it through the
``exchange_event`` hook once that transaction has committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from gateway.core import audit
from gateway.core.models import Exchange, OutboxItem, Transition, utcnow
from gateway.core.store import queue_insert

STATES = (
    "received", "validated", "authorised", "refused", "queued", "sending", "delivered",
    "acknowledged", "failed", "dead", "replayed", "parked",
)
TERMINAL = frozenset({"refused", "delivered", "acknowledged", "dead"})


def draft(**columns: Any) -> Any:
    """An exchange's columns as a plain object that :func:`transition` can move, for the hot paths
    that write the row themselves with a plain statement: never added to a session, so it costs
    none of the ORM's bookkeeping. Carries what it is given and nothing else."""
    return SimpleNamespace(**columns)

ALLOWED: dict[str | None, frozenset[str]] = {
    None: frozenset({"received"}),
    "received": frozenset({"validated", "refused"}),
    "validated": frozenset({"authorised", "refused"}),
    "authorised": frozenset({"queued"}),
    "queued": frozenset({"sending", "parked", "refused", "dead"}),
    "parked": frozenset({"queued", "refused"}),
    "sending": frozenset({"delivered", "failed", "dead", "refused"}),
    "failed": frozenset({"sending", "parked", "refused", "dead"}),
    "delivered": frozenset({"acknowledged"}),
    "acknowledged": frozenset(),
    "refused": frozenset(),
    "dead": frozenset({"replayed"}),
    "replayed": frozenset({"queued"}),
}

# How each state change reads in the audit log: (action code, outcome).
_AUDIT = {
    "received": ("C", audit.SUCCESS),
    "validated": ("E", audit.SUCCESS),
    "authorised": ("E", audit.SUCCESS),
    "refused": ("E", audit.SERIOUS_FAILURE),
    "queued": ("C", audit.SUCCESS),
    "sending": ("E", audit.SUCCESS),
    "delivered": ("E", audit.SUCCESS),
    "acknowledged": ("E", audit.SUCCESS),
    "failed": ("E", audit.MINOR_FAILURE),
    "dead": ("E", audit.SERIOUS_FAILURE),
    "replayed": ("E", audit.SUCCESS),
    "parked": ("E", audit.MINOR_FAILURE),
}


class IllegalTransition(Exception):
    pass


@dataclass(frozen=True)
class ExchangeEvent:
    """Metadata of one committed state change — never the message body."""

    exchange_id: str
    correlation_id: str
    route_id: str
    message_type: str
    connector_type: str
    partner_id: str | None
    from_state: str | None
    to_state: str
    reason: str | None
    at: datetime


def transition(
    session: Session,
    exchange: Exchange,
    to_state: str,
    *,
    actor: audit.Actor,
    reason: str | None = None,
    at: datetime | None = None,
    attempt: int | None = None,
) -> None:
    from_state = exchange.state if exchange.state else None
    if to_state not in ALLOWED.get(from_state, frozenset()):
        raise IllegalTransition(f"{from_state} -> {to_state} is not allowed")
    at = at or utcnow()
    exchange.state, exchange.state_reason, exchange.updated_at = to_state, reason, at
    values = dict(exchange_id=exchange.id, from_state=from_state, to_state=to_state, at=at, reason=reason,
                  actor=actor.user_id, attempt=attempt)
    if "transitions" in exchange.__dict__:
        exchange.transitions.append(Transition(**values))
    else:
        # Not loaded, so nobody in this session reads them: a plain row, inserted with the others
        # before the commit, spares loading every earlier transition and the ORM's bookkeeping.
        queue_insert(session, Transition, values)
    action, outcome = _AUDIT[to_state]
    leaving = to_state in {"sending", "delivered"}
    audit.record(
        session,
        f"exchange.{to_state}",
        actor=actor,
        action_code=action,
        outcome=outcome,
        purpose=exchange.purpose,
        client=exchange.subject,
        exchange_id=exchange.id,
        message_type=exchange.message_type,
        partner_message_id=exchange.partner_message_id,
        partner_id=exchange.partner_id,
        legal_basis=exchange.legal_basis,
        consent_id=exchange.consent_id,
        fields=exchange.fields_out if leaving or to_state == "queued" else None,
        payload_digest=exchange.payload_digest,
        detail=reason,
    )
    session.info.setdefault("exchange_events", []).append(
        ExchangeEvent(
            exchange_id=exchange.id,
            correlation_id=exchange.correlation_id,
            route_id=exchange.route_id,
            message_type=exchange.message_type,
            connector_type=exchange.connector_type,
            partner_id=exchange.partner_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            at=at,
        )
    )


def release_parked(session: Session, items: Iterable[OutboxItem]) -> int:
    actor = audit.Actor.system("resume")
    now = utcnow()
    count = 0
    for item in items:
        exchange = session.get(Exchange, item.exchange_id)
        item.held, item.due_at, item.lease_owner, item.lease_until = False, now, None, None
        if exchange is not None and exchange.state == "parked":
            transition(session, exchange, "queued", actor=actor, reason="partner or connector resumed")
        count += 1
    return count
