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
import concurrent.futures
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


def _commit_and_release(session: Session, lock: Any) -> list[Any]:
    try:
        try:
            session.commit()
            return list(session.info.pop("exchange_events", []))
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
    finally:
        if lock is not None:
            lock.release()


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
        # The writer on an event loop (attach()): its own queue, drained by a task on that loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._reads_thread: int | None = None
        self._loop_queue: deque[_Ticket[Any]] = deque()
        self._drain: asyncio.Task[None] | None = None
        self._committer: concurrent.futures.ThreadPoolExecutor | None = None
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
        self.refuse_blocking_write()
        waiter = _Waiter(len(units))
        tickets = self._enqueue(units, waiter)
        assert waiter.event is not None
        waiter.event.wait()
        self._tell(tickets)
        return tickets

    async def run_async(self, unit: Callable[[Session], T],
                        abandoned: Callable[[_Ticket[T]], None] | None = None) -> T:
        """:meth:`run` for a coroutine: the event loop goes on while the writer works.
        ``abandoned``: as for :meth:`run_many_async`, with the unit's one ticket."""
        (ticket,) = await self.run_many_async(
            [unit], None if abandoned is None else lambda tickets: abandoned(tickets[0]))
        return ticket.result()

    async def run_many_async(self, units: list[Callable[[Session], Any]],
                             abandoned: Callable[[list[_Ticket[Any]]], None] | None = None) -> list[_Ticket[Any]]:
        """:meth:`run_many` for a coroutine. ``abandoned``: called on the loop with the tickets once
        they are answered, if the caller gave up waiting (was cancelled) before — for whatever must
        follow a commit whether or not anybody waits for it."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(len(units), loop)
        if loop is self._loop:
            tickets = [_Ticket(unit, waiter) for unit in units]
            self._loop_queue.extend(tickets)
            if self._drain is None or self._drain.done():
                self._drain = loop.create_task(self._drain_on_loop(), name="group-commit")
        else:
            tickets = self._enqueue(units, waiter)
        future = waiter.future
        assert future is not None
        # A caller that gives up (its client went away) cancels only its wait: the unit is queued
        # and commits or fails all the same, and only the answer is lost — not what follows it:
        # the listeners still hear of what was committed, and ``abandoned`` of the outcome.
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(lambda _: self._after_abandoned(tickets, abandoned))
            raise
        self._tell(tickets)
        return tickets

    def _after_abandoned(self, tickets: list[_Ticket[Any]],
                         abandoned: Callable[[list[_Ticket[Any]]], None] | None) -> None:
        try:
            self._tell(tickets)
        finally:
            if abandoned is not None:
                abandoned(tickets)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write on this event loop from now on: the units of coroutines running on it are run by a
        task of the loop itself, and only the commit — the wait for the disk — goes to a thread.
        For SQLite, whose statements take microseconds: run on a writer thread instead, each one
        would hand the interpreter lock back and forth with the loop, and that cost more CPU than
        the statements. A thread that is not the loop's keeps using the writer thread.

        While attached, the loop's thread must not write synchronously (it would wait for a lock
        that only the loop itself can let go of): :meth:`refuse_blocking_write` says so at once.

        Only SQLite's store attaches; PostgreSQL's statements wait on the network, and there the
        writer thread lets the loop run meanwhile."""
        self._reads_thread = threading.get_ident()
        if self._store.dialect != "sqlite":
            return
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._committer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="schakel-commit")

    async def detach(self) -> None:
        """Finish what is queued on the loop and write from the writer thread again."""
        while self._drain is not None and not self._drain.done():
            await asyncio.shield(self._drain)
        self._loop = self._loop_thread = self._reads_thread = None
        self._store.let_go_of_loop_reader()
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None

    def reads_on_loop_thread(self) -> bool:
        """Whether this is the thread of the event loop the store was attached to, whatever the
        database: that thread keeps a read connection of its own (Store.reading_rows)."""
        return self._reads_thread is not None and threading.get_ident() == self._reads_thread

    def on_loop_thread(self) -> bool:
        """Whether this is the thread of the event loop the group commit is attached to."""
        return self._loop_thread is not None and threading.get_ident() == self._loop_thread

    def refuse_blocking_write(self) -> None:
        if self._loop_thread is not None and threading.get_ident() == self._loop_thread:
            raise RuntimeError("a synchronous write on the event loop's thread would wait for itself; "
                               "use Store.batched_async (or run the write in a worker thread)")

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
                    # Shared by several units: they may queue checked statements (store.defer_checks).
                    session.info["shared"] = len(batch) > 1
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

    async def _drain_on_loop(self) -> None:
        cancelled = False
        while self._loop_queue:
            # The write lock first, then the batch: whatever queued while another process held the
            # lock (or this one's last commit did) joins this batch, so a busy lock is taken fewer
            # times for more units, rather than once per small batch.
            # Nothing is written without the lock, and nobody may be left waiting without an answer.
            try:
                await self._acquire_on_loop()
            except Exception as exc:  # a lock that cannot be taken (an flock error): every waiting unit's error
                self._hand_back(self._take_all(exc))
                continue
            except BaseException:  # interrupted: every waiting unit is told "not written" (result() raises)
                self._hand_back(self._take_all(None))
                raise
            batch = self._take_batch()
            try:
                cancelled = await self._commit_on_loop(batch) or cancelled
            finally:
                self.batches += 1
                self.units += len(batch)
                self._hand_back(batch)
        if cancelled:
            raise asyncio.CancelledError()

    def _take_batch(self) -> list[_Ticket[Any]]:
        return [self._loop_queue.popleft() for _ in range(min(len(self._loop_queue), self._max_units))]

    def _take_all(self, error: BaseException | None) -> list[_Ticket[Any]]:
        waiting = list(self._loop_queue)
        self._loop_queue.clear()
        for ticket in waiting:
            ticket.error = error
        return waiting

    async def _acquire_on_loop(self) -> None:
        """Take the store's write lock without blocking the loop: at once if it is free, else on
        the commit thread (which waits for it without the interpreter lock)."""
        lock, loop, committer = self._store.write_lock, self._loop, self._committer
        if lock is None or lock.try_acquire():
            return
        assert loop is not None and committer is not None
        acquiring = loop.run_in_executor(committer, lock.acquire)
        try:
            await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            acquiring.add_done_callback(lambda done: lock.release() if done.exception() is None else None)
            raise

    async def _commit_on_loop(self, batch: list[_Ticket[Any]]) -> bool:
        """Commit a batch (each unit alone if one fails); True if the task was asked to stop
        meanwhile, which it does once every unit of the batch knows its fate. The caller holds the
        write lock, and hands it over."""
        spans: list[tuple[int, int]] = []
        try:
            committed, cancelled = await self._write_on_loop(batch, spans, locked=True)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return False
            cancelled = False
            for ticket in batch:
                try:
                    ticket.events, stop = await self._write_on_loop([ticket], [])
                    ticket.ok, cancelled = True, cancelled or stop
                except Exception as alone:
                    ticket.error = alone
            return cancelled
        except asyncio.CancelledError:
            raise
        except BaseException:
            # An interruption leaves every unit of the batch unwritten: the unit that raised it
            # has it as its error (_write_on_loop), the others are told "not written".
            return False
        for ticket, (start, end) in zip(batch, spans):
            ticket.ok, ticket.events = True, committed[start:end]
        return cancelled

    async def _write_on_loop(self, batch: list[_Ticket[Any]], spans: list[tuple[int, int]],
                             locked: bool = False) -> tuple[list[Any], bool]:
        """Run the units on the loop and commit on the commit thread: the exchange events committed,
        and whether the task was asked to stop while the commit went on. ``locked``: the caller
        holds the write lock and hands it over; otherwise it is taken here. Either way it is let
        go of once the batch has committed or failed."""
        loop, committer, lock = self._loop, self._committer, self._store.write_lock
        assert loop is not None and committer is not None
        if not locked:
            await self._acquire_on_loop()
        session = None
        handed_over = False
        try:
            session = self._store.open_batch()
            for ticket in batch:
                before = len(session.info.get("exchange_events", ()))
                try:
                    ticket.value = ticket.unit(session)
                except BaseException as exc:
                    if not isinstance(exc, Exception):
                        ticket.error = exc
                    raise
                spans.append((before, len(session.info.get("exchange_events", ()))))
            self._store.finish_batch(session)
            # From here the commit thread owns the session and the lock: it commits, lets go of
            # the lock and closes the session, whatever becomes of this coroutine meanwhile.
            handed_over = True
            outcome = loop.run_in_executor(committer, _commit_and_release, session, lock)
            try:
                return await asyncio.shield(outcome), False
            except asyncio.CancelledError:
                # The commit goes on regardless: wait for it, so nobody hears "not written" about
                # a unit that was.
                return await outcome, True
        finally:
            if not handed_over:
                try:
                    if session is not None:
                        session.rollback()
                        session.close()
                finally:
                    if lock is not None:
                        lock.release()

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
            if loop is self._loop and threading.get_ident() == self._loop_thread:
                _wake(waiting)
                continue
            try:
                loop.call_soon_threadsafe(_wake, waiting)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def _tell(self, tickets: list[_Ticket[Any]]) -> None:
        events = [event for ticket in tickets if ticket.ok for event in ticket.events]
        if events:
            self._store.tell_listeners(events)
