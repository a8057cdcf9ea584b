"""Delivery workers: claim due outbox rows, attempt them concurrently, record the outcomes.

Each gateway process runs one :class:`DeliveryWorker` with a bounded number of attempts in
flight. Claiming and preparing a batch of messages is one transaction; outcomes are recorded in
batches by one recorder task (group commit), so the database is not asked for a durable commit per
message and state change. Claims and outcomes are written by the store's writer thread, which the
worker awaits on its event loop (:mod:`gateway.core.groupcommit`); the attempts themselves are
async on the shared HTTP client.

Partners are kept from slowing each other down: one partner may hold at most its share of the
slots, claims take every partner's longest-waiting message first (:func:`outbox.take`), and a
partner that was down gets its waiting messages released the moment it answers again
(:mod:`gateway.core.partner_health`). A message that keeps failing only ever delays itself: its back-off
moves its own ``due_at``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace
from opentelemetry.propagate import inject

from gateway.core import outbox
from gateway.core.partner_health import PartnerHealth
from gateway.core.connectors import OUTCOME_UNKNOWN, Delivery, DeliveryResult
from gateway.logging import safe_frames

if TYPE_CHECKING:
    from gateway.core.runtime import Gateway

log = structlog.get_logger("gateway.delivery")
tracer = trace.get_tracer("gateway.delivery")

# Outcomes recorded per transaction at most: keeps one batch's hold of the write lock short.
RECORD_BATCH = 64


class DeliveryWorker:
    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway
        settings = gateway.settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # Attempts in progress, per partner: a slot is held from the claim (or the reservation)
        # until the partner has answered or the attempt has given up; that is what the partner
        # feels, and what its share bounds.
        self._in_flight: collections.Counter[str] = collections.Counter()
        # Outcomes waiting to be recorded (their outbox rows stay leased until they are): no new
        # attempt starts while more than this many wait, so a store that cannot keep up slows the
        # worker down instead of filling the memory.
        self._outcomes: asyncio.Queue[tuple[outbox.Attempt, DeliveryResult]] = asyncio.Queue()
        self._unrecorded_limit = 4 * settings.worker_concurrency
        self._recorder: asyncio.Task[None] | None = None
        self.share = max(1, int(settings.worker_concurrency * settings.worker_partner_share))
        self.health = PartnerHealth(threshold=settings.partner_down_after_failures)
        self.running = False
        # Whether a claim now might find something: cleared by a claim that found less than it
        # could take while no partner was at its share, set again by wake(). A freed slot or a
        # recorded batch starts a claim only while it is set; otherwise the poll interval does.
        # Under load nearly every message goes straight from the pipeline to a slot, and a claim
        # (a transaction) per freed slot would find nothing.
        self._maybe_due = True

    def wake(self) -> None:
        """Something may be due now (a message queued for a claim, a partner released)."""
        self._maybe_due = True
        self._wake.set()

    # --- attempts the pipeline starts itself ------------------------------------------------------
    # A message accepted on this process's event loop can have its first attempt made right after
    # the commit that queues it, with what the pipeline already holds (the body, the partner), and
    # marked ``sending`` in that same commit (outbox.start_now) instead of being claimed a moment
    # later. It takes one of this worker's slots like any claimed attempt, so the share per
    # partner and the bound on attempts in flight hold for both.

    def reserve(self, partner_id: str) -> bool:
        """Hold a slot for an attempt the pipeline will start; False when none is free."""
        if not self.running or self._stop.is_set() or self._outcomes.qsize() >= self._unrecorded_limit:
            return False
        if sum(self._in_flight.values()) >= self.gw.settings.worker_concurrency or \
                self._in_flight[partner_id] >= self.share:
            return False
        self._in_flight[partner_id] += 1
        return True

    def unreserve(self, partner_id: str) -> None:
        """Give back a slot that :meth:`reserve` held for an attempt that is not to be made now."""
        self._release_slot(partner_id)

    def start(self, attempt: outbox.Attempt) -> None:
        """Make an attempt in a slot that :meth:`reserve` held for it. Not once the worker is
        stopping: nobody would wait for its outcome, and the shared client may already be closed.
        The message stays leased to this process, and once the lease runs out a worker takes it
        again (as an attempt whose outcome is unknown: it cannot tell this one never began)."""
        if self._stop.is_set():
            self._release_slot(attempt.partner.id)
            log.info("attempt_not_started", exchange_id=attempt.exchange_id, reason="worker stopping")
            return
        task = asyncio.create_task(self._attempt(attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        self.running = True
        settings = self.gw.settings
        self._recorder = asyncio.create_task(self._record_outcomes())
        try:
            while not self._stop.is_set():
                # Cleared before the claim, not after it: a slot freed or a message queued while
                # the claim runs must start the next claim, not wait for the poll.
                self._wake.clear()
                free = settings.worker_concurrency - sum(self._in_flight.values())
                if self._outcomes.qsize() >= self._unrecorded_limit:
                    free = 0
                wanted = min(free, settings.worker_batch_size)
                claim = outbox.Claim([], 0, frozenset())
                if wanted > 0:
                    try:
                        claim = await outbox.take_async(self.gw, self.owner, wanted, self.share,
                                                        dict(self._in_flight))
                    except Exception as exc:  # the database may be briefly unavailable; keep the loop alive
                        log.warning("claim_failed", error_type=type(exc).__name__)
                        wanted = 0  # nothing learnt: what may be due still may be
                    for attempt in claim.attempts:
                        self._in_flight[attempt.partner.id] += 1
                        self.start(attempt)
                if claim.claimed and claim.claimed == wanted:
                    continue  # more may be due: claim again at once
                # A partner the claim left at its share may have more due. That is judged by the
                # claim itself (what the partner had out when it was asked for, and what the claim
                # chose for it), not by the counts now: attempts that ended while it ran, or
                # messages it chose that needed no attempt (refused on the re-check, parked),
                # would make a full partner look short.
                if any(self._in_flight[partner] < self.share for partner in claim.full):
                    # Its share went partly on messages that needed no attempt, or its attempts
                    # ended meanwhile: no slot it holds will free up to wake the loop for the rest.
                    continue
                if wanted > 0 and not claim.full:
                    self._maybe_due = False
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=settings.worker_poll_interval)
                except TimeoutError:
                    pass
        finally:
            self.running = False

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        deadline = self.gw.settings.attempt_deadline_seconds + 5
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=deadline)
        if self._recorder is not None:
            try:  # record what was attempted; what is left unrecorded is retried when its lease runs out
                await asyncio.wait_for(self._outcomes.join(), timeout=deadline)
            except TimeoutError:
                pass
            self._recorder.cancel()

    async def _attempt(self, attempt: outbox.Attempt) -> None:
        structlog.contextvars.bind_contextvars(exchange_id=attempt.exchange_id)
        partner_id = attempt.partner.id
        released = False
        try:
            with tracer.start_as_current_span(
                "delivery.attempt",
                attributes={"gateway.connector": attempt.connector_type, "gateway.partner": partner_id,
                            "gateway.attempt": attempt.attempt},
            ):
                started = time.monotonic()
                connector = self.gw.registry.connectors.get(attempt.connector_type)
                if connector is None:
                    result = DeliveryResult("retry", f"connector type {attempt.connector_type} is not enabled")
                else:
                    result = await self._deliver(connector, attempt)
                    if self.health.observe(partner_id, result.outcome):
                        log.info("partner_recovered", partner=partner_id)
                        asyncio.create_task(self._release_waiting(partner_id))
                self.gw.instruments.delivery_duration.record(
                    time.monotonic() - started, {"connector": attempt.connector_type, "partner": partner_id,
                                                 "outcome": result.outcome})
            self._release_slot(partner_id)
            released = True
            await self._outcomes.put((attempt, result))
        except Exception as exc:
            # Never let one message kill the worker: its lease expires and it is tried again.
            log.error("delivery_error", exchange_id=attempt.exchange_id, error_type=type(exc).__name__,
                      frames=safe_frames(exc))
        finally:
            if not released:
                self._release_slot(partner_id)
            structlog.contextvars.unbind_contextvars("exchange_id")

    def _release_slot(self, partner_id: str) -> None:
        self._in_flight[partner_id] -= 1
        if self._in_flight[partner_id] <= 0:
            del self._in_flight[partner_id]
        if self._maybe_due:
            self._wake.set()

    async def _release_waiting(self, partner_id: str) -> None:
        try:
            released = await asyncio.to_thread(outbox.release_waiting, self.gw, partner_id)
            log.info("partner_queue_released", partner=partner_id, messages=released)
            self.wake()
        except Exception as exc:  # they are still due at their own back-off
            log.warning("release_failed", partner=partner_id, error_type=type(exc).__name__)

    async def _record_outcomes(self) -> None:
        """Record outcomes as they come, as many per transaction as have arrived meanwhile."""
        while True:
            batch = [await self._outcomes.get()]
            while len(batch) < RECORD_BATCH and not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            try:
                states: list[str | BaseException] = await outbox.record_many(self.gw, batch)
            except Exception as exc:
                states = [exc] * len(batch)
            for (attempt, result), state in zip(batch, states):
                if isinstance(state, BaseException):
                    log.error("delivery_error", exchange_id=attempt.exchange_id, error_type=type(state).__name__,
                              frames=safe_frames(state))
                else:
                    log.info("delivery_attempt", exchange_id=attempt.exchange_id, partner=attempt.partner.id,
                             attempt=attempt.attempt, outcome=result.outcome, status=result.status, state=state)
                self._outcomes.task_done()
            if any(self._serial(attempt.route_id) for attempt, _ in batch):
                self.wake()  # on an ordered route, a client's next message waited for this outcome
            elif self._maybe_due:
                self._wake.set()  # the backlog shrank: attempts held back by it may start

    def _serial(self, route_id: str) -> bool:
        route = self.gw.registry.routes.get(route_id)
        return route is not None and route.ordered

    async def _deliver(self, connector: object, attempt: outbox.Attempt) -> DeliveryResult:
        headers: dict[str, str] = {}
        inject(headers)
        delivery = Delivery(
            exchange_id=attempt.exchange_id,
            correlation_id=attempt.correlation_id,
            route_id=attempt.route_id,
            message_type=attempt.message_type,
            body=attempt.body,
            media_type=attempt.media_type,
            idempotency_key=attempt.idempotency_key,
            attempt=attempt.attempt,
            partner=attempt.partner,
            http=self.gw.http,
            deadline=self.gw.settings.attempt_deadline_seconds,
            headers=headers,
        )
        try:
            async with asyncio.timeout(self.gw.settings.attempt_deadline_seconds + 1):
                return await connector.deliver(delivery)  # type: ignore[attr-defined]
        except TimeoutError:
            return DeliveryResult("retry", f"attempt exceeded its deadline ({OUTCOME_UNKNOWN})")
        except Exception as exc:  # a connector's own bug: it may have failed after sending
            return DeliveryResult("retry", f"connector error: {type(exc).__name__} ({OUTCOME_UNKNOWN})")
