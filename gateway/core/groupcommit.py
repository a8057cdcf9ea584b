"""Group commit: many small write transactions from many threads share one durable commit.

Each accepted message is a small write, and every commit waits for the disk (SQLite with
``synchronous=FULL``, PostgreSQL with ``synchronous_commit=on``); on SQLite they also queue behind
the one writer. So the first thread to arrive leads: it runs its own unit of work and the units
queued behind it in one transaction, seals their audit entries in one go (one hold of the chain
lock), commits once and hands every thread its own result. No thread returns before the commit
that holds its change, so an answer still means "durably stored".

A unit that raises makes the leader roll the batch back and run each of its units alone, in its
own transaction: one bad unit fails only itself, and the others keep their all-or-nothing
transaction. Units must therefore be safe to run twice after a rollback (they only write through
the session they are given).
"""

from __future__ import annotations

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


class _Ticket(Generic[T]):
    __slots__ = ("unit", "done", "ok", "value", "error")

    def __init__(self, unit: Callable[[Session], T]) -> None:
        self.unit = unit
        self.done = False
        self.ok = False  # only a commit that holds the unit's change sets it
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        if not self.ok:
            raise RuntimeError("not written: the group commit carrying this unit was interrupted")
        return self.value  # type: ignore[no-any-return]


class GroupCommit:
    def __init__(self, store: "Store", max_units: int = MAX_UNITS) -> None:
        self._store = store
        self._max_units = max_units
        self._cv = threading.Condition()
        self._queue: deque[_Ticket[Any]] = deque()
        self._leading = False
        self._leader = threading.local()
        self.batches = 0  # for the tests: how many commits served how many units
        self.units = 0

    def run(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit(session)`` in a write transaction shared with other threads' units; return
        its result (or raise its error) once that transaction has committed (or rolled back)."""
        (ticket,) = self.run_many([unit])
        return ticket.result()

    def run_many(self, units: list[Callable[[Session], Any]]) -> list[_Ticket[Any]]:
        """Run several units at once (the delivery worker's outcomes): each succeeds or fails on
        its own, as with :meth:`run`; the tickets hold each one's result or error."""
        if getattr(self._leader, "active", False):
            # A unit (or something it calls) writing again would wait for its own commit forever.
            raise RuntimeError("a group-commit unit may not start another write; it has the session it was given")
        tickets: list[_Ticket[Any]] = [_Ticket(unit) for unit in units]
        with self._cv:
            self._queue.extend(tickets)
            while True:
                while self._leading and not all(ticket.done for ticket in tickets):
                    self._cv.wait()
                if all(ticket.done for ticket in tickets):
                    return tickets
                events: list[Any] = []
                self._leading = True
                try:
                    batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_units))]
                    self._cv.release()
                    self._leader.active = True
                    try:
                        self._commit(batch, events)
                    finally:
                        self._leader.active = False
                        self._cv.acquire()
                finally:
                    self._leading = False
                    self._cv.notify_all()
                if events:
                    # Told once this thread leads no more: a listener may write (a note back to the ECD).
                    self._cv.release()
                    try:
                        self._store.tell_listeners(events)
                    finally:
                        self._cv.acquire()

    def _commit(self, batch: list[_Ticket[Any]], events: list[Any]) -> None:
        try:
            try:
                values = []
                committed: list[Any] = []
                with self._store.committing(committed) as session:
                    for ticket in batch:
                        values.append(ticket.unit(session))
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                else:
                    for ticket in batch:
                        self._alone(ticket, events)
            else:
                events.extend(committed)
                for ticket, value in zip(batch, values):
                    ticket.value, ticket.ok = value, True
        finally:
            # Whatever stopped this (KeyboardInterrupt, say), every ticket is answered: written,
            # failed, or "not written" (result() raises for those), never a silent success.
            self.batches += 1
            self.units += len(batch)
            for ticket in batch:
                ticket.done = True

    def _alone(self, ticket: _Ticket[Any], events: list[Any]) -> None:
        committed: list[Any] = []
        try:
            with self._store.committing(committed) as session:
                value = ticket.unit(session)
        except Exception as exc:  # handed to the thread that owns the unit
            ticket.error = exc
        else:
            events.extend(committed)
            ticket.value, ticket.ok = value, True
