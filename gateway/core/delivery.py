"""Delivery workers: claim due outbox rows, attempt them concurrently, record each outcome.

Each gateway process runs one :class:`DeliveryWorker` with a bounded number of attempts in
flight. Database work runs in threads (the store is synchronous SQLAlchemy); the attempt
itself is async on the shared HTTP client. A message that keeps failing only ever delays
itself: its back-off moves its own ``due_at`` and the others behind it are claimed as usual.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace

from gateway.core import outbox
from gateway.core.connectors import Delivery, DeliveryResult
from gateway.logging import safe_frames

if TYPE_CHECKING:
    from gateway.core.runtime import Gateway

log = structlog.get_logger("gateway.delivery")
tracer = trace.get_tracer("gateway.delivery")


class DeliveryWorker:
    def __init__(self, gateway: "Gateway") -> None:
        self.gw = gateway
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._slots = asyncio.Semaphore(gateway.settings.worker_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.running = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self.running = True
        settings = self.gw.settings
        try:
            while not self._stop.is_set():
                free = settings.worker_concurrency - len(self._tasks)
                claimed: list[str] = []
                if free > 0:
                    try:
                        claimed = await asyncio.to_thread(outbox.claim, self.gw, self.owner, min(free, settings.worker_batch_size))
                    except Exception as exc:  # the database may be briefly unavailable; keep the loop alive
                        log.warning("claim_failed", error_type=type(exc).__name__)
                for exchange_id in claimed:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._attempt(exchange_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if claimed and len(claimed) == min(free, settings.worker_batch_size):
                    continue  # more may be due: claim again at once
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=settings.worker_poll_interval)
                except TimeoutError:
                    pass
        finally:
            self.running = False

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        self._wake.set()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.gw.settings.attempt_deadline_seconds + 5)

    async def _attempt(self, exchange_id: str) -> None:
        structlog.contextvars.bind_contextvars(exchange_id=exchange_id)
        try:
            with tracer.start_as_current_span("delivery.prepare"):
                attempt = await asyncio.to_thread(outbox.prepare, self.gw, exchange_id, self.owner)
            if attempt is None:
                return
            connector = self.gw.registry.connectors.get(attempt.connector_type)
            with tracer.start_as_current_span(
                "delivery.attempt",
                attributes={"gateway.connector": attempt.connector_type, "gateway.partner": attempt.partner.id,
                            "gateway.attempt": attempt.attempt},
            ):
                started = time.monotonic()
                if connector is None:
                    result = DeliveryResult("retry", f"connector type {attempt.connector_type} is not enabled")
                else:
                    result = await self._deliver(connector, attempt)
                self.gw.instruments.delivery_duration.record(
                    time.monotonic() - started,
                    {"connector": attempt.connector_type, "partner": attempt.partner.id, "outcome": result.outcome})
            state = await asyncio.to_thread(outbox.record, self.gw, attempt, result, self.owner)
            log.info("delivery_attempt", exchange_id=exchange_id, partner=attempt.partner.id, attempt=attempt.attempt,
                     outcome=result.outcome, status=result.status, state=state)
        except Exception as exc:
            # Never let one message kill the worker: its lease expires and it is tried again.
            log.error("delivery_error", exchange_id=exchange_id, error_type=type(exc).__name__, frames=safe_frames(exc))
        finally:
            structlog.contextvars.unbind_contextvars("exchange_id")

    async def _deliver(self, connector: object, attempt: outbox.Attempt) -> DeliveryResult:
        headers: dict[str, str] = {}
        from opentelemetry.propagate import inject

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
            return DeliveryResult("retry", "attempt exceeded its deadline (outcome unknown)")
        except Exception as exc:
            return DeliveryResult("retry", f"connector error: {type(exc).__name__}")
