"""Group commit: many small write transactions share one durable commit, made by one writer thread.

Each accepted message is a small write, and every commit waits for the disk (SQLite with
``synchronous=FULL``, PostgreSQL with ``synchronous_commit=on``); on SQLite they also queue behind
the one writer. So writes are not made by the threads or tasks that want them: they hand their
unit of work to the store's writer thread and wait. The writer takes every unit queued meanwhile
(up to :data:`MAX_UNITS`), runs them in one transaction, seals their audit entries in one go (one
hold of the chain lock), commits once and hands each waiter its own result. Nobody is answered
before the commit that holds their change, so an answer still means "durably stored".

Waiting costs nothing per unit: a thread waits on an event, a coroutine on a future that the writer
completes with one wake-up of its event loop per batch. That is the point of a writer of its own
rather than a leader elected among the waiting threads: the request path runs on the event loop
without a thread hop, and the process does not spend its time switching between threads that
take turns holding the interpreter lock.

A unit that raises makes the writer roll the batch back and run each of its units alone, in its
own transaction: one bad unit fails only itself, and the others keep their all-or-nothing
transaction. Units must therefore be safe to run twice after a rollback (they only write through
the session they are given), and must not start another write (they run on the writer thread,
which would wait for itself). Listeners hear of the exchange events a unit committed once its
waiter has its answer, on the waiter's own thread or event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from gateway.core.store import Store

T = TypeVar("T")

# Enough to amortise a commit; small enough that one batch's inserts stay short on the write lock.
MAX_UNITS = 64
# The writer thread ends after this long without work and is started again by the next write, so
# a store nobody writes to (a test's, a CLI command's) holds no thread.
IDLE_SECONDS = 5.0


class _Waiter:
    """Whoever waits for one or more units: a thread (an event) or a coroutine (a future)."""

    __slots__ = ("remaining", "event", "loop", "future")

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.remaining = count
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop is not None else None
        self.event = threading.Event() if loop is None else None


class _Ticket(Generic[T]):
    __slots__ = ("unit", "waiter", "done", "ok", "value", "error", "events")

    def __init__(self, unit: Callable[[Session], T], waiter: _Waiter) -> None:
        self.unit = unit
        self.waiter = waiter
        self.done = False
        self.ok = False  # only a commit that holds the unit's change sets it
        self.value: Any = None
        self.error: BaseException | None = None
        self.events: list[Any] = []

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        if not self.ok:
            raise RuntimeError("not written: the group commit carrying this unit was interrupted")
        return self.value  # type: ignore[no-any-return]


def _wake(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # its waiter may have been cancelled meanwhile
            future.set_result(None)


class GroupCommit:
    def __init__(self, store: "Store", max_units: int = MAX_UNITS, idle_seconds: float = IDLE_SECONDS) -> None:
        self._store = store
        self._max_units = max_units
        self._idle_seconds = idle_seconds
        self._cv = threading.Condition()
        self._queue: deque[_Ticket[Any]] = deque()
        self._writer: threading.Thread | None = None
        self._closing = False
        self.batches = 0  # for the tests: how many commits served how many units
        self.units = 0

    # --- for callers ------------------------------------------------------------------------------

    def run(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit(session)`` in a write transaction shared with other units; return its result
        (or raise its error) once that transaction has committed (or rolled back)."""
        (ticket,) = self.run_many([unit])
        return ticket.result()

    def run_many(self, units: list[Callable[[Session], Any]]) -> list[_Ticket[Any]]:
        """Run several units at once: each succeeds or fails on its own, as with :meth:`run`; the
        tickets hold each one's result or error."""
        waiter = _Waiter(len(units))
        tickets = self._enqueue(units, waiter)
        assert waiter.event is not None
        waiter.event.wait()
        self._tell(tickets)
        return tickets

    async def run_async(self, unit: Callable[[Session], T]) -> T:
        """:meth:`run` for a coroutine: the event loop goes on while the writer works."""
        (ticket,) = await self.run_many_async([unit])
        return ticket.result()

    async def run_many_async(self, units: list[Callable[[Session], Any]]) -> list[_Ticket[Any]]:
        waiter = _Waiter(len(units), asyncio.get_running_loop())
        tickets = self._enqueue(units, waiter)
        assert waiter.future is not None
        # Shielded: a caller that gives up (its client went away) does not take the write back;
        # the unit commits or fails all the same, and only the answer is lost.
        await asyncio.shield(waiter.future)
        self._tell(tickets)
        return tickets

    def close(self, timeout: float = 30.0) -> None:
        """Let the writer finish what is queued and end (a later write starts it again)."""
        with self._cv:
            self._closing = True
            writer = self._writer
            self._cv.notify_all()
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout)
        with self._cv:
            self._closing = False

    # --- the writer -------------------------------------------------------------------------------

    def _enqueue(self, units: list[Callable[[Session], Any]], waiter: _Waiter) -> list[_Ticket[Any]]:
        if threading.current_thread() is self._writer:
            # A unit (or something it calls) writing again would wait for its own commit forever.
            raise RuntimeError("a group-commit unit may not start another write; it has the session it was given")
        tickets: list[_Ticket[Any]] = [_Ticket(unit, waiter) for unit in units]
        with self._cv:
            self._queue.extend(tickets)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="schakel-writer", daemon=True)
                self._writer.start()
            else:
                self._cv.notify()
        return tickets

    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    if self._closing or not self._cv.wait(self._idle_seconds):
                        if not self._queue:
                            self._writer = None
                            return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_units))]
            try:
                self._commit(batch)
            finally:
                self._hand_back(batch)

    def _commit(self, batch: list[_Ticket[Any]]) -> None:
        running: _Ticket[Any] | None = None
        try:
            try:
                committed: list[Any] = []
                spans = []
                with self._store.committing(committed) as session:
                    for ticket in batch:
                        running = ticket
                        before = len(session.info.get("exchange_events", ()))
                        ticket.value = ticket.unit(session)
                        spans.append((before, len(session.info.get("exchange_events", ()))))
                    running = None
            except BaseException as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                elif isinstance(exc, Exception):
                    for ticket in batch:
                        self._alone(ticket)
                elif running is not None:
                    # Not a unit's ordinary failure (an interruption): the unit that raised it gets
                    # it, and the rest are told they were not written (result() raises).
                    running.error = exc
            else:
                for ticket, (start, end) in zip(batch, spans):
                    ticket.ok, ticket.events = True, committed[start:end]
        finally:
            self.batches += 1
            self.units += len(batch)

    def _alone(self, ticket: _Ticket[Any]) -> None:
        committed: list[Any] = []
        try:
            with self._store.committing(committed) as session:
                value = ticket.unit(session)
        except BaseException as exc:  # handed to whoever waits for the unit
            ticket.error = exc
        else:
            ticket.value, ticket.ok, ticket.events = value, True, committed

    def _hand_back(self, batch: list[_Ticket[Any]]) -> None:
        """Every ticket is answered — written, failed, or "not written" — never a silent success;
        each waiting thread is woken once, each event loop once per batch."""
        futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for ticket in batch:
            ticket.done = True
            waiter = ticket.waiter
            waiter.remaining -= 1
            if waiter.remaining:
                continue
            if waiter.event is not None:
                waiter.event.set()
            elif waiter.loop is not None and waiter.future is not None:
                futures.setdefault(waiter.loop, []).append(waiter.future)
        for loop, waiting in futures.items():
            try:
                loop.call_soon_threadsafe(_wake, waiting)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def _tell(self, tickets: list[_Ticket[Any]]) -> None:
        events = [event for ticket in tickets if ticket.ok for event in ticket.events]
        if events:
            self._store.tell_listeners(events)
