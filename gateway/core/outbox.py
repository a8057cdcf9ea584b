"""The transactional outbox: claiming due messages, recording each attempt's outcome, replay.

A claim is a lease: the claimer owns the row until ``lease_until``. A process killed with
``kill -9`` mid-delivery simply lets its leases expire and another worker (or the restarted
process) takes the message again — with the same ``Idempotency-Key``, so the partner's
de-duplication turns at-least-once delivery into exactly-once effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import structlog
from sqlalchemy import and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.connectors import OUTCOME_UNKNOWN, DeliveryResult
from gateway.core.exchange import draft, transition
from gateway.core.models import Exchange, OutboxItem, Transition, utcnow
from gateway.core.problems import Problem
from gateway.core.retry import get_policy
from gateway.core.sql import Statement
from gateway.core.store import defer_checks, mark, queue_change, queue_checked, run_queued_changes, undo_since
from gateway.logging import safe_frames

if TYPE_CHECKING:
    from gateway.core.runtime import Gateway

WORKER = audit.Actor.system("delivery")
log = structlog.get_logger("gateway.outbox")


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
    # The exchange's columns its outcome's transition and audit entry need (SNAPSHOT), so that
    # recording it reads nothing back.
    snapshot: dict[str, Any] = field(default_factory=dict)


SNAPSHOT = ("id", "correlation_id", "route_id", "message_type", "connector_type", "partner_id", "subject", "purpose",
            "legal_basis", "consent_id", "partner_message_id", "fields_out", "payload_digest", "retry_policy",
            "retry_started_at")


EXCHANGES, ITEMS = Exchange.__table__, OutboxItem.__table__

# The statements each attempt runs, built once (sql.Statement): where an exchange's state moves on
# only if nobody moved it meanwhile, and its outbox row goes or waits.
_MARK = Statement(
    update(EXCHANGES).where(EXCHANGES.c.id == bindparam("exchange_id"), EXCHANGES.c.state == bindparam("was"))
    .values(state=bindparam("state"), state_reason=bindparam("state_reason"), updated_at=bindparam("updated_at"),
            attempts=bindparam("attempts")))
_OUTCOME_COLUMNS = ("state", "state_reason", "updated_at", "last_status", "last_error")
_OUTCOME = {
    delivered: Statement(
        update(EXCHANGES).where(EXCHANGES.c.id == bindparam("exchange_id"), EXCHANGES.c.state == "sending",
                                EXCHANGES.c.attempts == bindparam("attempt"))
        .values({column: bindparam(column)
                 for column in _OUTCOME_COLUMNS + (("delivered_at", "receipt") if delivered else ())}))
    for delivered in (True, False)
}
# The same, saying which exchange moved: for a batch's outcomes as one pipeline (store.queue_checked).
_OUTCOME_CHECKED = {delivered: Statement(statement.statement.returning(EXCHANGES.c.id))
                    for delivered, statement in _OUTCOME.items()}
_STATE_OF = Statement(select(EXCHANGES.c.state).where(EXCHANGES.c.id == bindparam("exchange_id")))
_DROP_ITEM = Statement(delete(ITEMS).where(ITEMS.c.exchange_id == bindparam("exchange_id")))
_HOLD_ITEM = Statement(update(ITEMS).where(ITEMS.c.exchange_id == bindparam("exchange_id"))
                       .values(held=True, lease_owner=None, lease_until=None))
_RETRY_ITEM = Statement(update(ITEMS).where(ITEMS.c.exchange_id == bindparam("exchange_id"))
                        .values(due_at=bindparam("due_at"), lease_owner=None, lease_until=None))


# Whether a client's line to a partner (their messages on ordered routes) has anything pending.
_PENDING_FOR_CLIENT = Statement(
    select(ITEMS.c.exchange_id).where(ITEMS.c.partner_id == bindparam("partner_id"), ITEMS.c.line == bindparam("subject"))
    .limit(1))
# PostgreSQL: each client's turn, held until the transaction ends (other processes write at once).
_TRY_CLIENT_LOCKS = text("SELECT key, pg_try_advisory_xact_lock(hashtextextended(key, 0)) AS taken "
                         "FROM unnest(CAST(:keys AS text[])) AS key")


def _client_key(partner_id: str, subject: str) -> str:
    # The partner id's length first: an id with a colon in it cannot pass for another pair.
    return f"schakel-ordered:{len(partner_id)}:{partner_id}:{subject}"


def _clients_taken(session: Session, clients: set[tuple[str, str | None]]) -> set[tuple[str, str | None]]:
    """On PostgreSQL, the clients whose lock (:func:`first_in_line`) another transaction holds;
    this one takes the others' locks, without waiting, until it ends. SQLite: none — its
    transactions write one at a time."""
    keys = {_client_key(partner_id, subject): (partner_id, subject) for partner_id, subject in clients
            if subject is not None}
    if not keys or session.get_bind().dialect.name != "postgresql":
        return set()
    return {keys[row.key] for row in session.connection().execute(_TRY_CLIENT_LOCKS, {"keys": list(keys)})
            if not row.taken}


def _first_of_their_line(now: Any, dialect: str) -> Any:
    """Whether a message on an ordered route is the one its line waits for: its client's oldest
    queued message for the partner, while none of theirs is out (leased, by any process; a younger
    one can be, handed to its worker before an older one committed in another process). An older
    one holds it back in any state: due, waiting for its retry, held while its partner is paused.

    Two forms of one condition, each the faster on its database with a backlog (50,000 rows, 200
    clients: PostgreSQL runs the correlated form once per due row, about 430 ms a claim, and the
    window in 60 ms; SQLite the window in 135 ms and the correlated form, on ix_outbox_line, in
    85 ms)."""
    if dialect == "postgresql":
        line = (ITEMS.c.partner_id, ITEMS.c.line)
        place = func.row_number().over(partition_by=line, order_by=(ITEMS.c.created_at, ITEMS.c.exchange_id))
        out_until = func.max(ITEMS.c.lease_until).over(partition_by=line)
        lines = select(ITEMS.c.exchange_id, place.label("place"), out_until.label("out_until")).where(
            ITEMS.c.line.is_not(None)).subquery()
        return ITEMS.c.exchange_id.in_(select(lines.c.exchange_id).where(
            lines.c.place == 1, or_(lines.c.out_until.is_(None), lines.c.out_until <= now)))
    other = ITEMS.alias("other")
    return ~select(other.c.exchange_id).where(
        other.c.partner_id == ITEMS.c.partner_id, other.c.line == ITEMS.c.line,
        other.c.exchange_id != ITEMS.c.exchange_id,
        or_(other.c.lease_until > now, other.c.created_at < ITEMS.c.created_at,
            and_(other.c.created_at == ITEMS.c.created_at, other.c.exchange_id < ITEMS.c.exchange_id))).exists()


def _not_free(connection: Any, lines: set[tuple[str, str | None]], now: Any) -> set[tuple[str, str | None]]:
    """The lines (partner, client) with a message out: read after the client locks."""
    if not lines:
        return set()
    return {(row.partner_id, row.line) for row in connection.execute(
        select(ITEMS.c.partner_id, ITEMS.c.line)
        # One (partner, line) pair after another, not a row-value IN: SQLite 3.40 plans that as a
        # scan of the whole outbox, and this as probes of ix_outbox_line.
        .where(or_(*(and_(ITEMS.c.partner_id == partner_id, ITEMS.c.line == line) for partner_id, line in sorted(lines))),
               ITEMS.c.lease_until > now))}


def _due(now: Any) -> list[Any]:
    return [OutboxItem.held.is_(False), OutboxItem.due_at <= now,
            or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now)]


class Claim(NamedTuple):
    """What one claim took: the attempts to make; how many messages it claimed (some need no
    attempt: refused on the re-check, or parked); and the partners it left at their share, whose
    budget ran out on what they had in flight and what the claim chose for them."""

    attempts: list[Attempt]
    claimed: int
    full: frozenset[str]


def take(gw: "Gateway", owner: str, limit: int, per_partner: int,
         in_flight: Mapping[str, int] | None = None) -> tuple[list[Attempt], int]:
    """Claim up to ``limit`` due messages and prepare each for its attempt, in one transaction;
    returns the attempts to make and how many messages were claimed (some need none: refused on
    the re-check, or parked).

    Fair between partners: no partner gets more than ``per_partner`` less what it has
    ``in_flight``, and the longest-waiting message of *every* partner with due messages comes
    before the second of any, so one partner's backlog (after an outage, say) never holds the
    others' fresh messages back.
    """
    if limit <= 0:
        return [], 0
    claim = gw.store.batched(lambda session: _take(gw, session, owner, limit, per_partner, in_flight or {}))
    return claim.attempts, claim.claimed


async def take_async(gw: "Gateway", owner: str, limit: int, per_partner: int,
                     in_flight: Mapping[str, int] | None = None) -> Claim:
    """:func:`take` for the delivery worker, which awaits the claim on its event loop. It also
    needs to know which partners the claim filled to their share: one may have more due, even
    where some of what the claim chose for it needed no attempt."""
    if limit <= 0:
        return Claim([], 0, frozenset())
    return await gw.store.batched_async(lambda session: _take(gw, session, owner, limit, per_partner, in_flight or {}))


def _take(gw: "Gateway", session: Session, owner: str, limit: int, per_partner: int,
          in_flight: Mapping[str, int]) -> Claim:
    run_queued_changes(session)  # outcomes recorded earlier in this transaction free their rows first
    now = utcnow()
    budget = {partner: per_partner - count for partner, count in in_flight.items()}
    full = sorted(partner for partner, left in budget.items() if left <= 0)
    rank = func.row_number().over(partition_by=OutboxItem.partner_id, order_by=OutboxItem.due_at).label("rank")
    # On an ordered route only the message a client's line is waiting for is a candidate, so
    # that the ones behind it never crowd the candidates of their partner.
    due = (select(OutboxItem.exchange_id, OutboxItem.partner_id, OutboxItem.line, OutboxItem.due_at, rank)
           .where(*_due(now), or_(OutboxItem.line.is_(None), _first_of_their_line(now, session.get_bind().dialect.name))))
    if full:
        due = due.where(OutboxItem.partner_id.not_in(full))
    ranked = due.subquery()
    connection = session.connection()
    # Twice as many candidates as wanted: on PostgreSQL other processes may hold some of them.
    candidates = list(connection.execute(
        select(ranked.c.exchange_id, ranked.c.partner_id, ranked.c.line).where(ranked.c.rank <= per_partner)
        .order_by(ranked.c.rank, ranked.c.due_at).limit(2 * limit)))
    if not candidates:
        return Claim([], 0, frozenset(full))
    locked = set(connection.execute(
        select(ITEMS.c.exchange_id)
        .where(ITEMS.c.exchange_id.in_([row.exchange_id for row in candidates]), *_due(now))
        .with_for_update(skip_locked=True)).scalars())
    lines = {(row.partner_id, row.line) for row in candidates if row.line is not None}
    busy: set[tuple[str, str | None]] = set()
    if lines:
        # A client whose message another transaction may be handing straight to its worker
        # (first_in_line) waits: on PostgreSQL that one holds the client's lock, and here, a
        # message of theirs queued in this very transaction is not in the table yet. Their lines
        # are read again after the locks, so a hand-off committed just before is seen.
        busy = _clients_taken(session, lines) | (session.info.get("ordered_clients", set()) & lines)
        busy |= _not_free(connection, lines - busy, now)
    chosen: list[tuple[str, str]] = []
    for exchange_id, partner_id, line in candidates:
        left = budget.get(partner_id, per_partner)
        key = (partner_id, line)
        if line is not None:
            if key in busy:
                continue
            busy.add(key)  # one message of a client's line at a time
        if exchange_id in locked and left > 0 and len(chosen) < limit:
            chosen.append((exchange_id, partner_id))
            budget[partner_id] = left - 1
    filled = frozenset(partner for partner, left in budget.items() if left <= 0)
    if not chosen:
        return Claim([], 0, filled)
    connection.execute(update(ITEMS).where(ITEMS.c.exchange_id.in_([exchange_id for exchange_id, _ in chosen]))
                       .values(lease_owner=owner, lease_until=now + timedelta(seconds=gw.settings.lease_seconds)))
    rows = {row.id: row for row in connection.execute(
        select(EXCHANGES).where(EXCHANGES.c.id.in_([exchange_id for exchange_id, _ in chosen]))).mappings()}
    partners = partner_registry.find_many(session, (partner_id for _, partner_id in chosen))
    paused: dict[str, bool] = {}
    views: dict[str, partner_registry.PartnerView] = {}
    attempts = []
    for exchange_id, partner_id in chosen:
        # What a failed preparation queued (audit entries, events) is taken back; it wrote nothing.
        marks = mark(session)
        try:
            attempt = _prepare(gw, session, exchange_id, partners.get(partner_id), rows.get(exchange_id), paused, views,
                               now)
        except _Changed:
            undo_since(session, marks)  # another decided on it meanwhile (a withdrawal, say); its lease runs out
            continue
        except Exception as exc:
            undo_since(session, marks)
            # This one stays leased and is tried again when its lease runs out; the rest go on.
            log.error("prepare_failed", exchange_id=exchange_id, error_type=type(exc).__name__, frames=safe_frames(exc))
            continue
        if attempt is not None:
            attempts.append(attempt)
    return Claim(attempts, len(chosen), filled)


class _Changed(Exception):
    """The exchange's state moved between reading and writing it."""


def _prepare(gw: "Gateway", session: Session, exchange_id: str, partner: partner_registry.PartnerRow | None, row: Any,
             paused: dict[str, bool], views: dict[str, partner_registry.PartnerView], now: Any) -> Attempt | None:
    """Re-check the basis, respect pause, mark ``sending``; ``None`` when nothing is to be sent now.
    Everything is decided first and written last, in plain statements, so a failure writes nothing."""
    if row is None or partner is None or row["state"] not in {"queued", "failed", "sending"}:
        _DROP_ITEM.run(session, exchange_id=exchange_id)
        return None
    exchange = draft(**row)  # a copy to decide on
    was = exchange.state
    if exchange.state == "sending":
        # The last attempt's worker died mid-delivery: its outcome is unknown.
        transition(session, exchange, "failed", actor=WORKER, reason="attempt interrupted; outcome unknown",
                   attempt=exchange.attempts)
    decision = gw.policy.recheck(session, exchange, partner)
    item_change: Statement | None = None
    if not decision.allowed:
        transition(session, exchange, "refused", actor=WORKER, reason=decision.reason)
        item_change = _DROP_ITEM
    else:
        if exchange.connector_type not in paused:
            paused[exchange.connector_type] = partner_registry.is_connector_paused(session, exchange.connector_type)
        why = None
        if paused[exchange.connector_type] or partner.state == "paused":
            why = partner_registry.still_paused(session, partner.id, exchange.connector_type)
        if why is not None:
            transition(session, exchange, "parked", actor=WORKER, reason=why)
            item_change = _HOLD_ITEM
        else:
            exchange.attempts += 1
            transition(session, exchange, "sending", actor=WORKER, attempt=exchange.attempts)
            body = gw.box.decrypt(exchange.payload_encrypted or b"")
            view = views.get(partner.id)
            if view is None:
                view = views[partner.id] = partner_registry.view(partner, gw.box)
    moved = _MARK.run(session, exchange_id=exchange_id, was=was, state=exchange.state,
                      state_reason=exchange.state_reason, updated_at=exchange.updated_at, attempts=exchange.attempts)
    if moved != 1:
        raise _Changed()
    if item_change is not None:
        item_change.run(session, exchange_id=exchange_id)
        return None
    return _attempt_of(exchange, body, view)


def _attempt_of(exchange: Any, body: bytes, view: partner_registry.PartnerView) -> Attempt:
    return Attempt(
        exchange_id=exchange.id,
        correlation_id=exchange.correlation_id,
        route_id=exchange.route_id,
        message_type=exchange.message_type,
        connector_type=exchange.connector_type,
        body=body,
        media_type=exchange.content_type,
        idempotency_key=exchange.idempotency_key,
        attempt=exchange.attempts,
        partner=view,
        snapshot={column: getattr(exchange, column) for column in SNAPSHOT},
    )


def start_now(gw: "Gateway", session: Session, exchange: Any, partner: partner_registry.PartnerRow, body: bytes,
              view: partner_registry.PartnerView) -> Attempt | None:
    """Mark a message queued in this very transaction as ``sending``, for the first attempt that
    the process which accepted it makes right after the commit, without waiting for a claim (see
    ``Pipeline.submit_async``). What a claim checks is checked here, inside the same transaction:
    the basis again (under the same share lock), and a paused partner or connector. ``None``
    leaves it queued, for a claim to decide on."""
    decision = gw.policy.recheck(session, exchange, partner)
    if not decision.allowed or partner.state == "paused":
        return None
    # Asked once per connector and write transaction: the batch decides as of its first look.
    paused = session.info.setdefault("connector_paused", {})
    if exchange.connector_type not in paused:
        paused[exchange.connector_type] = partner_registry.is_connector_paused(session, exchange.connector_type)
    if paused[exchange.connector_type]:
        return None
    exchange.attempts += 1
    transition(session, exchange, "sending", actor=WORKER, attempt=exchange.attempts)
    return _attempt_of(exchange, body, view)


def first_in_line(session: Session, partner_id: str, subject: str | None) -> bool:
    """Whether a message on an ordered route, queued in this transaction, may start at once
    (:func:`start_now`): only when nothing else of the same client is pending for the partner —
    in the database, or queued earlier in this transaction — and, on PostgreSQL, no other
    transaction is deciding on the same client (an advisory lock held until this one ends, which
    a claim takes too, :func:`_take`; a lock another holds means wait for a claim, never a wait
    here, so two batches cannot deadlock). Every ordered message queued asks, started or not, so
    that a younger one in the same transaction never overtakes it, and a claim in the same
    transaction leaves its client alone. ``False`` leaves the message to a claim, which keeps the
    order as before."""
    queued = session.info.setdefault("ordered_clients", set())
    key = (partner_id, subject)
    if subject is None or key in queued:
        return False
    queued.add(key)
    if _clients_taken(session, {key}):
        return False
    return _PENDING_FOR_CLIENT.first(session, partner_id=partner_id, subject=subject) is None


async def record_many(gw: "Gateway", outcomes: list[tuple[Attempt, DeliveryResult]]) -> list[str | BaseException]:
    """Persist several attempts' outcomes, sharing commits (each on its own if one fails); for
    each, the exchange's new state or the error that kept it from being recorded."""
    tickets = await gw.store.group.run_many_async(
        [lambda session, a=attempt, r=result: _record(gw, session, a, r) for attempt, result in outcomes])
    states: list[str | BaseException] = []
    for ticket in tickets:
        try:
            states.append(ticket.result())
        except Exception as exc:
            states.append(exc)
    return states


def record(gw: "Gateway", attempt: Attempt, result: DeliveryResult) -> str:
    """Persist one attempt's outcome; returns the exchange's new state."""
    return gw.store.batched(lambda session: _record(gw, session, attempt, result))


def _record(gw: "Gateway", session: Session, attempt: Attempt, result: DeliveryResult) -> str:
    """One outcome as plain statements: the exchange moves on only if it is still this attempt's
    (``sending``, same attempt number); otherwise our lease ran out and another worker's attempt
    decides, and nothing queued here is written."""
    now = utcnow()
    exchange = draft(**attempt.snapshot, state="sending", attempts=attempt.attempt)
    values: dict[str, Any] = {"last_status": result.status}
    delay = None
    if result.outcome == "delivered":
        to_state, why = "delivered", result.reason
        values.update(delivered_at=now, receipt=result.receipt, last_error=None)
    else:
        values["last_error"] = result.reason
        if result.outcome == "retry":
            elapsed = (now - exchange.retry_started_at).total_seconds()
            delay = get_policy(exchange.retry_policy).next_delay(attempt.attempt, elapsed, gw.settings.retry_scale)
            if delay is not None and result.retry_after is not None:
                delay = max(delay, result.retry_after * gw.settings.retry_scale)
        if delay is not None:
            to_state, why = "failed", result.reason
        else:
            to_state = "dead"
            why = result.reason if result.outcome == "reject" else f"gave up after {attempt.attempt} attempts: {result.reason}"
            if _outcome_unknown_before(session, attempt.exchange_id, result):
                why += (f"; an earlier attempt's {OUTCOME_UNKNOWN}: the partner may have this message (a replay "
                        "sends the same Idempotency-Key)")
    marks = mark(session)
    transition(session, exchange, to_state, actor=WORKER, reason=why, attempt=attempt.attempt, at=now)
    values.update(state=exchange.state, state_reason=exchange.state_reason, updated_at=exchange.updated_at)
    if defer_checks(session):
        # Nearly always this attempt's to record; where another's moved it meanwhile, the batch
        # runs unit by unit and this unit takes the path below.
        queue_checked(session, _OUTCOME_CHECKED[to_state == "delivered"],
                      dict(exchange_id=attempt.exchange_id, attempt=attempt.attempt, **values))
        _queue_item_change(session, attempt.exchange_id, now, delay)
        return to_state
    moved = _OUTCOME[to_state == "delivered"].run(session, exchange_id=attempt.exchange_id, attempt=attempt.attempt,
                                                  **values)
    if moved != 1:
        undo_since(session, marks)
        now_in = _STATE_OF.first(session, exchange_id=attempt.exchange_id)
        return now_in.state if now_in is not None else "gone"
    _queue_item_change(session, attempt.exchange_id, now, delay)
    return to_state


def _queue_item_change(session: Session, exchange_id: str, now: Any, delay: float | None) -> None:
    # The outbox row is this attempt's (the exchange moved), and only a claim reads it: dropped or
    # rescheduled with the batch's others (a claim in the same transaction runs them first).
    if delay is None:
        queue_change(session, _DROP_ITEM, {"exchange_id": exchange_id})
    else:
        queue_change(session, _RETRY_ITEM, {"exchange_id": exchange_id, "due_at": now + timedelta(seconds=delay)})


def _outcome_unknown_before(session: Session, exchange_id: str, result: DeliveryResult) -> bool:
    """Whether this or an earlier attempt of the exchange ended without a known outcome. Asked only
    when a message is about to be given up, so it costs a read on that path alone."""
    if OUTCOME_UNKNOWN in result.reason:
        return True
    transitions = Transition.__table__
    return session.connection().execute(
        select(transitions.c.id).where(transitions.c.exchange_id == exchange_id,
                                       transitions.c.reason.contains(OUTCOME_UNKNOWN)).limit(1)).first() is not None


def release_waiting(gw: "Gateway", partner_id: str) -> int:
    """Make a partner's backed-off messages due now (it answers again: no need to wait out each
    message's own back-off). Returns how many."""
    def unit(session: Session) -> int:
        run_queued_changes(session)
        now = utcnow()
        result = session.execute(
            update(OutboxItem)
            .where(OutboxItem.partner_id == partner_id, OutboxItem.held.is_(False), OutboxItem.due_at > now,
                   OutboxItem.lease_owner.is_(None))
            .values(due_at=now))
        return int(result.rowcount or 0)
    return gw.store.batched(unit)


def replay_one(gw: "Gateway", exchange_id: str, actor: audit.Actor, reason: str,
               answer: Callable[[Exchange], Any] = lambda exchange: None) -> Any:
    """Replay one dead letter by id and return ``answer(exchange)``, read in the replay's own
    transaction. Its basis is checked first, in that transaction: where it no longer holds (its
    consent withdrawn or expired, its decision lapsed, its route changed, a plugin's reason),
    nothing changes, the refusal is audited in a transaction of its own, and a ``refused`` problem
    says why — the claim re-checks the basis before the attempt anyway, but the administrator
    learns it now, and the letter stays dead."""
    with gw.store.transaction() as session:
        exchange = session.get(Exchange, exchange_id)
        if exchange is None:
            raise Problem("not-found", "No exchange with that id.")
        why = _basis_lapsed_for_replay(gw, session, exchange)
        if why is None:
            replay(gw, session, exchange, actor, reason)
            return answer(exchange)
        about = dict(purpose=exchange.purpose, client=exchange.subject, exchange_id=exchange.id,
                     message_type=exchange.message_type, partner_message_id=exchange.partner_message_id,
                     partner_id=exchange.partner_id, legal_basis=exchange.legal_basis, consent_id=exchange.consent_id)
    with gw.store.transaction() as session:
        audit.record(session, "exchange.replay_refused", actor=actor, outcome=audit.SERIOUS_FAILURE, detail=why, **about)
    raise Problem("refused", f"Not replayed: {why}", extensions={"exchange_id": exchange_id, "reason": why})


def _basis_lapsed_for_replay(gw: "Gateway", session: Session, exchange: Exchange) -> str | None:
    # Only a dead letter's: anything else replay() refuses, saying why.
    if exchange.state != "dead" or not exchange.partner_id:
        return None
    partner = partner_registry.find(session, exchange.partner_id)
    decision = gw.policy.recheck(session, exchange, partner) if partner is not None else None
    return None if decision is None or decision.allowed else decision.reason


def replay(gw: "Gateway", session: Session, exchange: Exchange, actor: audit.Actor, reason: str) -> None:
    """Give a dead letter a new life: same exchange, same idempotency key, fresh attempts. On an
    ordered route it queues behind what of its client's is pending for the partner. Callers
    replaying by id go through :func:`replay_one`, which checks the basis first."""
    if exchange.state != "dead":
        raise Problem("state-conflict", "Only dead letters can be replayed.")
    if exchange.payload_encrypted is None:
        raise Problem("state-conflict", "The message body was purged; the exchange cannot be replayed.")
    transition(session, exchange, "replayed", actor=actor, reason=reason)
    exchange.replays += 1
    exchange.attempts = 0
    exchange.retry_started_at = utcnow()
    transition(session, exchange, "queued", actor=actor, reason="replay")
    route = gw.registry.routes.get(exchange.route_id)
    now = utcnow()
    session.add(OutboxItem(exchange_id=exchange.id, partner_id=exchange.partner_id or "", connector_type=exchange.connector_type,
                           due_at=now, created_at=now, line=exchange.subject if route is not None and route.ordered else None))


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
            replay_one(gw, exchange_id, actor, reason)
            replayed.append(exchange_id)
        except Problem as problem:
            skipped.append({"exchange_id": exchange_id, "reason": problem.extensions.get("reason") or problem.detail
                            or problem.slug})
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
