"""The core pipeline: from a message that arrived to an exchange queued for delivery.

    parse + validate (plugin) -> identify subject (pseudonym) -> resolve partner -> authorise
    (policy) -> minimise (mapping) -> serialise (plugin) -> persist exchange + transitions +
    outbox + audit + idempotency answer in ONE transaction -> answer

Nothing is written before the last step, so bad input leaves no half-written record; the answer
(202, or a problem) is sent only after that transaction has committed. The transaction is a unit
of a group commit (:mod:`gateway.core.groupcommit`): concurrent requests share one durable commit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import trace

from sqlalchemy.orm import Session

from gateway.core import audit, idempotency, outbox
from gateway.core import partners as partner_registry
from gateway.core.auth import Principal
from gateway.core.crypto import digest
from gateway.core.exchange import draft, transition
from gateway.core.ids import new_id
from gateway.core.messages import InboundMessage, OutboundMessage, ParsedMessage
from gateway.core.models import Exchange, OutboxItem, utcnow
from gateway.core.policy import Decision, Request
from gateway.core.problems import Problem
from gateway.core.routing import Route
from gateway.core.sql import Bind, Read, prefetch
from gateway.core.store import queue_insert

if TYPE_CHECKING:
    from gateway.core.runtime import Gateway

log = structlog.get_logger("gateway.pipeline")
EXCHANGE_COLUMNS = tuple(column.key for column in Exchange.__table__.columns)
tracer = trace.get_tracer("gateway.pipeline")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    media_type: str = "application/json"
    replayed: bool = False


@dataclass
class _Sending:
    """A first attempt the accepting process makes itself: the worker slot held for it, and what
    the attempt needs; ``attempt`` is set by the write that marks the message ``sending``."""

    worker: Any
    view: partner_registry.PartnerView
    body: bytes
    attempt: outbox.Attempt | None = None


@dataclass(frozen=True)
class _Prepared:
    """A message ready to be written: the unit that writes it and the answer once it is."""

    persist: Callable[[Session], None]
    answer: Answer
    claim: tuple[str, str, str] | None
    exchange_id: str
    partner_id: str
    queued: bool
    sending: _Sending | None = None

    def release(self) -> None:
        """Give back the worker slot held for an attempt that will not be started here."""
        if self.sending is not None:
            self.sending.worker.unreserve(self.partner_id)


class Pipeline:
    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway

    # --- entry point -----------------------------------------------------------------------------

    def submit(self, route_id: str, body: bytes, media_type: str, principal: Principal,
               idempotency_key: str | None = None, claimed_basis: str | None = None,
               correlation_id: str | None = None, *, internal: bool = False,
               request_body: bytes | None = None) -> Answer:
        """Run a message through the pipeline. ``internal`` is for plugin endpoints that checked
        the caller's role themselves; it skips only the route's ``sources`` check. A plugin that
        derives ``body`` from the caller's request passes that request as ``request_body``: the
        idempotency key then holds the caller to what they sent, not to what was derived."""
        prepared = self._prepare(route_id, body, media_type, principal, idempotency_key, claimed_basis,
                                 correlation_id, internal, request_body, None)
        if isinstance(prepared, Answer):
            return prepared
        try:
            with tracer.start_as_current_span("pipeline.persist"):
                self.gw.store.batched(prepared.persist)
        except idempotency.Taken:
            return self._taken(prepared.claim)
        return self._accepted(prepared)

    async def submit_async(self, route_id: str, body: bytes, media_type: str, principal: Principal,
                           idempotency_key: str | None = None, claimed_basis: str | None = None,
                           correlation_id: str | None = None, *, internal: bool = False,
                           request_body: bytes | None = None) -> Answer:
        """:meth:`submit` on the event loop: everything up to the write runs here, without a
        thread hop, and the write is awaited while the store's writer commits it with others.

        Where this process's delivery worker has a slot free, the message's first attempt starts
        right after the commit, with the body and the partner already in hand: the commit that
        queues it also marks it ``sending`` (after checking the basis again, as a claim would), and
        no claim has to find it — on an ordered route, only when nothing else of the same client is
        pending for that partner (``outbox.first_in_line``). Otherwise a claim takes it as usual."""
        prepared = self._prepare(route_id, body, media_type, principal, idempotency_key, claimed_basis,
                                 correlation_id, internal, request_body, self.gw.running_worker())
        if isinstance(prepared, Answer):
            return prepared
        try:
            with tracer.start_as_current_span("pipeline.persist"):
                await self.gw.store.batched_async(prepared.persist, lambda ticket: self._abandoned(prepared, ticket.ok))
        except idempotency.Taken:
            prepared.release()
            return self._taken(prepared.claim)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                prepared.release()  # the unit's own error, not this request cancelled: nothing follows
            raise  # otherwise the write goes on without us, and _abandoned follows it
        except BaseException:
            prepared.release()
            raise
        return self._accepted(prepared)

    def _abandoned(self, prepared: "_Prepared", written: bool) -> None:
        """The request was cancelled (its client went away) before the write it queued was
        answered. A message written all the same is on its way like any other: its first attempt,
        if the write marked it ``sending`` and leased it to this process, starts now — not when
        the lease runs out, as an attempt "interrupted; outcome unknown" holding back the client's
        next message on an ordered route."""
        if written:
            self._started(prepared)
        else:
            prepared.release()

    def _prepare(self, route_id: str, body: bytes, media_type: str, principal: Principal,
                 idempotency_key: str | None, claimed_basis: str | None, correlation_id: str | None,
                 internal: bool, request_body: bytes | None, worker: Any) -> "Answer | _Prepared":
        """Everything but the write: the stored answer of a repeated request, or what to write."""
        route = self.gw.registry.routes.get(route_id)
        if route is None:
            raise Problem("unknown-route", "No route with that id is configured.")
        correlation_id = correlation_id or new_id()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id, route=route.id)
        # Everything this request reads, it reads in one transaction: who may send, whether the key
        # was answered before, the partner and the basis. Nothing is written here.
        with self.gw.store.reading_rows() as session:
            if not internal:
                self._check_source(session, route, principal)
            with tracer.start_as_current_span("pipeline.parse", attributes={"gateway.route": route.id}):
                parsed = self._parse(route, body, media_type, principal)
            received_at = utcnow()
            if parsed.correlation_id:
                correlation_id = parsed.correlation_id
            # An empty key is a key given wrongly, not none: refused below, never a silent duplicate.
            key = idempotency_key if idempotency_key is not None else (
                f"message-id:{parsed.partner_message_id}" if parsed.partner_message_id else None)
            claim = None if key is None else (principal.source, key, idempotency.fingerprint(request_body or body))
            subject = ((parsed.subject if parsed.subject_is_pseudonym else self.gw.pseudonymise(parsed.subject))
                       if parsed.subject else None)
            # The three look-ups below do not depend on each other's answers: where each is a
            # round trip (PostgreSQL), they go to the server together.
            reads = [*self._partner_reads(route, parsed), *self.gw.policy.reads(route.id, subject, claimed_basis)]
            if claim is not None:
                idempotency.check_key(claim[1])
                reads.append(idempotency.lookup_read(claim[0], claim[1]))
            prefetch(session, reads)
            stored = None if claim is None else idempotency.lookup_in(session, *claim)
            if stored is not None:
                return Answer(stored.status, stored.body, stored.media_type, replayed=True)
            partner = self._resolve_partner(session, route, parsed)
            with tracer.start_as_current_span("pipeline.authorise"):
                decision = self.gw.policy.authorise(session, Request("submit", route, partner, subject,
                                                                     claimed_basis, parsed.basis_evidence))
        return self._process(route, parsed, principal, correlation_id, claim, subject, partner, decision,
                             received_at, worker)

    def _taken(self, claim: tuple[str, str, str] | None) -> Answer:
        # A request with the same key committed while this one was being processed (a client's
        # retry racing its original): nothing of ours was written; answer as it was answered.
        assert claim is not None
        stored = idempotency.lookup(self.gw.store, *claim)
        if stored is None:
            raise Problem("idempotency-conflict", "The first request with this key is still being handled; "
                          "retry later.", headers={"Retry-After": "1"}) from None
        return Answer(stored.status, stored.body, stored.media_type, replayed=True)

    def _accepted(self, prepared: "_Prepared") -> Answer:
        log.info("exchange_submitted", exchange_id=prepared.exchange_id,
                 state="queued" if prepared.queued else "refused", partner=prepared.partner_id)
        self._started(prepared)
        return prepared.answer

    def _started(self, prepared: "_Prepared") -> None:
        """After the write: the first attempt this process made ready starts, or a claim will."""
        sending = prepared.sending
        if sending is not None and sending.attempt is not None:
            sending.worker.start(sending.attempt)
        else:
            prepared.release()
            if prepared.queued:
                self.gw.wake_workers()

    # --- steps -----------------------------------------------------------------------------------

    def _check_source(self, session: Bind, route: Route, principal: Principal) -> None:
        if principal.role == "partner":
            partner = partner_registry.find(session, principal.partner_id or "")
            kind = partner.connector_type if partner else None
            if f"partner:{kind}" not in route.sources:
                raise Problem("forbidden", "This partner may not send messages on this route.")
        elif principal.role not in route.sources:
            raise Problem("forbidden", "Your role may not send messages on this route.")

    def _parse(self, route: Route, body: bytes, media_type: str, principal: Principal) -> ParsedMessage:
        parsed = self.gw.pm.hook.parse_inbound(message=InboundMessage(route, body, media_type, principal, self.gw))
        if parsed is None:
            raise Problem("unknown-message-type", f"No enabled plugin parses message type {route.message_type}.")
        return parsed

    def _partner_reads(self, route: Route, parsed: ParsedMessage) -> list[Read]:
        """The look-up :meth:`_resolve_partner` will make (none where it will refuse first)."""
        if parsed.partner_id:
            return [partner_registry.find_read(parsed.partner_id)]
        if route.partner_attribute:
            value = parsed.attributes.get(route.partner_attribute)
            return [partner_registry.resolve_read(route.target, route.partner_attribute, value)] if value else []
        return [partner_registry.only_partner_read(route.target)]

    def _resolve_partner(self, session: Bind, route: Route, parsed: ParsedMessage) -> partner_registry.PartnerRow:
        if parsed.partner_id:
            partner = partner_registry.find(session, parsed.partner_id)
            if partner is None or partner.connector_type != route.target:
                raise Problem("no-partner", f"The message names a partner that is not a registered {route.target} partner.")
            return partner
        if route.partner_attribute:
            value = parsed.attributes.get(route.partner_attribute)
            if not value:
                raise Problem("no-partner", f"The message has no {route.partner_attribute} to route it by.")
            partner = partner_registry.resolve(session, route.target, route.partner_attribute, value)
            if partner is None:
                raise Problem("no-partner", f"No {route.target} partner serves this {route.partner_attribute}.")
            return partner
        partner = partner_registry.only_partner(session, route.target)
        if partner is None:
            raise Problem("no-partner", f"The route needs exactly one registered {route.target} partner.")
        return partner

    def _serialise(self, route: Route, view: partner_registry.PartnerView, fields: dict[str, Any],
                   exchange_id: str) -> tuple[bytes, str]:
        message = OutboundMessage(route, view, fields, exchange_id)
        serialised = self.gw.pm.hook.map_outbound(message=message)
        if serialised is not None:
            return serialised
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False, default=str).encode(), "application/json"

    def _process(self, route: Route, parsed: ParsedMessage, principal: Principal, correlation_id: str,
                 claim: tuple[str, str, str] | None, subject: str | None, partner: partner_registry.PartnerRow, decision: Decision,
                 received_at: datetime, worker: Any) -> "_Prepared":
        gw = self.gw
        exchange_id = new_id()
        validated_at = utcnow()
        mapped_fields: dict[str, Any] = {}
        names: list[str] = []
        withheld: list[tuple[str, str]] = []
        payload, media_type = b"", "application/json"
        view: partner_registry.PartnerView | None = None
        if decision.allowed:
            with tracer.start_as_current_span("pipeline.minimise"):
                mapping = gw.mappings.get(route.mapping or "")
                if mapping is None:
                    decision = Decision(False, "the route has no mapping, so no field may leave")
                else:
                    result = mapping.apply(parsed.data, confidential=parsed.confidential, basis=decision.basis)
                    if result.missing:
                        raise Problem("message-invalid", "Required fields are missing.",
                                      extensions={"missing": sorted(result.missing)})
                    mapped_fields, names, withheld = result.fields, result.names, result.withheld
                    view = partner_registry.view(partner, gw.box)
                    payload, media_type = self._serialise(route, view, mapped_fields, exchange_id)
        actor = principal.actor()
        # Everything costly happens before the write: the unit below runs while the write lock is
        # held (for its whole batch, see gateway.core.groupcommit).
        columns = dict(
            id=exchange_id,
            correlation_id=correlation_id,
            route_id=route.id,
            message_type=route.message_type,
            source=principal.source,
            connector_type=route.target,
            partner_id=partner.id,
            subject=subject,
            purpose=route.purpose,
            legal_basis=decision.basis,
            consent_id=decision.consent_id,
            state="",
            partner_message_id=parsed.partner_message_id,
            idempotency_key=f"schakel-{exchange_id}",
            content_type=media_type,
            payload_encrypted=gw.box.encrypt(payload) if decision.allowed else None,
            basis_evidence_encrypted=(gw.box.encrypt_json(parsed.basis_evidence[decision.basis])
                                      if decision.basis in parsed.basis_evidence else None),
            context_encrypted=gw.box.encrypt_json(parsed.context) if parsed.context else None,
            payload_digest=digest(payload),
            fields_out=names,
            retry_policy=route.retry_policy,
            created_by=principal.name,
            created_at=received_at,
            updated_at=received_at,
            retry_started_at=received_at,
            attempts=0,
            replays=0,
            state_reason=None,
            last_error=None,
            last_status=None,
            receipt=None,
            body_purged_at=None,
            delivered_at=None,
        )
        if decision.allowed:
            answer = Answer(202, self._answer_body(exchange_id, correlation_id, route.id, partner.id, "queued", names,
                                                   withheld))
        else:
            problem = Problem("refused", decision.reason, extensions={
                "exchange_id": exchange_id, "missing_basis": list(decision.missing),
                "basis_reasons": decision.reasons, "accepted_bases": list(route.legal_bases)})
            answer = Answer(problem.http_status, problem.body(), "application/problem+json")

        sending = (_Sending(worker, view, payload) if decision.allowed and view is not None and worker is not None
                   and worker.reserve(partner.id) else None)

        def persist(session: Session) -> None:
            # Never added to the session: the transitions below move its state, and then it is
            # queued as a plain row with the others of the batch (gateway.core.store.queue_insert).
            exchange = draft(**columns)
            transition(session, exchange, "received", actor=actor, at=received_at)
            transition(session, exchange, "validated", actor=actor, at=validated_at)
            for path, why in withheld:
                audit.record(session, "field.withheld", actor=actor, outcome=audit.MINOR_FAILURE, purpose=route.purpose,
                             client=subject, exchange_id=exchange_id, message_type=route.message_type,
                             partner_id=partner.id, legal_basis=decision.basis, fields=[path], detail=why)
            if decision.allowed:
                transition(session, exchange, "authorised", actor=actor, reason=decision.reason)
                transition(session, exchange, "queued", actor=actor)
                now = utcnow()
                lease_owner = lease_until = None
                # On an ordered route, only the client's first pending message may skip the claim.
                in_line = not route.ordered or outbox.first_in_line(session, partner.id, subject)
                if sending is not None:
                    # Decided afresh each time the unit runs: a batch given up and run again unit
                    # by unit must not keep an attempt its first run started.
                    sending.attempt = (outbox.start_now(gw, session, exchange, partner, sending.body, sending.view)
                                       if in_line else None)
                    if sending.attempt is not None:  # leased like a claimed message: a crash lets it go
                        lease_owner = sending.worker.owner
                        lease_until = now + timedelta(seconds=gw.settings.lease_seconds)
                queue_insert(session, OutboxItem, dict(exchange_id=exchange_id, partner_id=partner.id, held=False,
                                                       connector_type=route.target, due_at=now, created_at=now,
                                                       lease_owner=lease_owner, lease_until=lease_until,
                                                       line=subject if route.ordered else None))
            else:
                transition(session, exchange, "refused", actor=actor, reason=decision.reason)
            queue_insert(session, Exchange, {column: getattr(exchange, column) for column in EXCHANGE_COLUMNS})
            if claim is not None:
                idempotency.store_answer(session, *claim, answer.status, answer.body, answer.media_type, exchange_id)

        return _Prepared(persist, answer, claim, exchange_id, partner.id, decision.allowed, sending)

    @staticmethod
    def _answer_body(exchange_id: str, correlation_id: str, route_id: str, partner_id: str, state: str,
                     fields: list[str], withheld: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "exchange_id": exchange_id,
            "correlation_id": correlation_id,
            "state": state,
            "route": route_id,
            "partner": partner_id,
            "fields": fields,
            "withheld": [{"field": path, "reason": why} for path, why in withheld],
            "links": {"self": f"/api/v1/exchanges/{exchange_id}"},
        }
