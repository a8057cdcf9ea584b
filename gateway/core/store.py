"""The database: engines, sessions, migrations and the durability guarantees.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``; every write transaction
starts with ``BEGIN IMMEDIATE`` so that two writers never deadlock upgrading a read lock, and
reads use a second engine whose deferred transactions see a consistent snapshot beside the writer.
PostgreSQL runs with ``synchronous_commit=on`` so a commit the gateway acknowledges is on disk.
"""

from __future__ import annotations

import fcntl
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.groupcommit import GroupCommit
from gateway.core.sql import DriverConnection, pipelines

T = TypeVar("T")


def _data_errors() -> tuple[type[Exception], ...]:
    """The errors that say a value cannot be stored, from SQLAlchemy and from each driver (the
    hot statements run on the driver's own cursor, unwrapped)."""
    import sqlite3

    from sqlalchemy.exc import DataError

    found: list[type[Exception]] = [DataError, sqlite3.DataError]
    try:
        import psycopg
    except ImportError:  # SQLite only
        pass
    else:
        found.append(psycopg.DataError)
    return tuple(found)


DATA_ERRORS = _data_errors()

log = structlog.get_logger("gateway.store")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # On the driver's connection: SQLAlchemy's own execution path costs more than the BEGIN.
        connection.connection.driver_connection.execute(begin)

    return engine


def _postgres_engine(url: str) -> Engine:
    return create_engine(
        url,
        pool_size=20,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"options": "-c synchronous_commit=on -c timezone=UTC"},
    )


class _WriterLock:
    """A thread lock, and across processes an exclusive ``flock`` on a file beside the database.
    Either may be let go by another thread than the one that took it (the store's commit thread
    lets go of what the event loop took)."""

    def __init__(self, path: str | None) -> None:
        self._threads = threading.Lock()
        self._file = open(path, "a+b") if path else None  # noqa: SIM115 - held for the store's life

    def acquire(self) -> None:
        self._threads.acquire()
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)  # blocks without the GIL
            except BaseException:
                self._threads.release()
                raise

    def try_acquire(self) -> bool:
        """Take it if nobody holds it; never waits."""
        if not self._threads.acquire(blocking=False):
            return False
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._threads.release()
                return False
            except BaseException:
                self._threads.release()
                raise
        return True

    def release(self) -> None:
        try:
            if self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def queue_insert(session: Session, model: Any, values: dict[str, Any]) -> None:
    """Queue a row for insertion just before the transaction commits, with the other rows of its
    table in one executemany (in foreign-key order, after the ORM's own changes). For the hot
    paths' many small inserts that nothing reads back in the same transaction: a group commit
    then writes a batch's exchanges, outbox rows and transitions in three statements."""
    session.info.setdefault("inserts_pending", {}).setdefault(model.__table__, []).append(values)


def pending_inserts(session: Session, model: Any) -> list[dict[str, Any]]:
    """The rows of ``model`` that :func:`queue_insert` queued in this transaction and that are not
    inserted yet: a read in the same transaction does not see them. For a check that must also
    count what a shared batch's earlier units queued (a huisverbod withdrawn in the same group
    commit as an answer given on it)."""
    return list(session.info.get("inserts_pending", {}).get(model.__table__, ()))


def queue_change(session: Session, statement: Any, params: dict[str, Any]) -> None:
    """Queue a change to a row an earlier transaction wrote (a :class:`gateway.core.sql.Statement`
    whose outcome nothing waits for), to run with the others of its statement in one executemany
    before the transaction commits: an outcome's outbox row, say, is dropped with the batch's
    others in one round trip instead of one each. A unit that reads or changes such rows runs
    what is queued first (:func:`run_queued_changes`), so it sees them as if they had run at once."""
    session.info.setdefault("changes_pending", {}).setdefault(statement, []).append(params)


class Contended(Exception):
    """A checked statement of a shared transaction found its row changed by someone else: the group
    commit runs the batch again unit by unit, where each unit runs its statements at once and
    decides for itself (:func:`defer_checks`)."""


def defer_checks(session: Session) -> bool:
    """Whether a unit may queue a statement whose outcome it would otherwise wait for — a write
    that must change exactly its one row (:func:`queue_checked`). Only in a transaction that
    several units share, and only on PostgreSQL, where each statement waiting for its answer is a
    round trip to the server; on SQLite it costs microseconds and runs at once."""
    return bool(session.info.get("shared")) and session.get_bind().dialect.name == "postgresql"


def queue_checked(session: Session, statement: Any, params: dict[str, Any],
                  accept: Callable[[Any], bool] | None = None) -> None:
    """Queue a statement whose answer decides whether the transaction may commit — a write with
    ``RETURNING`` that must have changed the row it names, or a read whose row ``accept`` must
    accept — to run with the others of the batch as one pipeline before the commit. Where one
    fails its check, the whole transaction is given up (:class:`Contended`) and its units run alone."""
    session.info.setdefault("checked_pending", {}).setdefault(statement, []).append((params, accept))


def _checked_in_order(session: Session) -> list[tuple[Any, list[tuple[dict[str, Any], Any]]]]:
    checked = session.info.pop("checked_pending", None) or {}
    # Reads (a consent's share lock) before writes: a consent withdrawal locks the consent first
    # and the exchanges after it, and taking them in the same order leaves no cycle.
    return [(statement, params) for statement, params in
            sorted(checked.items(), key=lambda item: not any(accept for _, accept in item[1])) if params]


def _as_expected(rows: list[Any], params: list[tuple[dict[str, Any], Any]]) -> None:
    if any(row is None if accept is None else not accept(row) for row, (_, accept) in zip(rows, params)):
        raise Contended(f"{len(params)} checked statements, not all of them as expected")


def _distinct_reads(params: list[tuple[dict[str, Any], Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """What to send for one checked statement, and for each queued check the index of the answer
    it reads. A read (a check with ``accept``) queued again with the same parameters gets the same
    answer in the same transaction, so it is sent once — a batch's messages about one client share
    its consent's share lock; a write goes as often as it was queued."""
    if any(accept is None for _, accept in params):
        return [values for values, _ in params], list(range(len(params)))
    sent: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    answers = []
    for values, _ in params:
        key = tuple(values.items())
        if key not in seen:
            seen[key] = len(sent)
            sent.append(values)
        answers.append(seen[key])
    return sent, answers


def _answered(firsts: list[Any], answers: list[int]) -> list[Any]:
    return [firsts[index] for index in answers]


def run_queued_changes(session: Session) -> None:
    for statement, params in _checked_in_order(session):
        sent, answers = _distinct_reads(params)
        _as_expected(_answered(statement.many_first(session, sent), answers), params)
    pending = session.info.pop("changes_pending", None)
    if pending:
        for statement, params in pending.items():
            if params:
                statement.many(session, params)


def _finish_in_one_pipeline(session: Session) -> None:
    """:meth:`Store.finish_batch` on PostgreSQL with nothing left for the ORM to flush: the checked
    statements, the queued changes and inserts, and the audit chain's lock and head go to the
    server as one pipeline, in that order, so the batch waits for the server once here (and once
    more for its audit entries) instead of once per statement. The writer thread waiting for each
    answer also waits, each time, for the interpreter lock the event loop holds meanwhile; that, more
    than the network, is what a round trip costs it under load."""
    from gateway.core.audit import chain_and_insert, head_of, send_lock_and_head

    pending_audit: list[Any] = session.info.pop("audit_pending", [])
    inserts = session.info.pop("inserts_pending", None) or {}
    changes = session.info.pop("changes_pending", None) or {}
    checks: list[tuple[Any, list[tuple[dict[str, Any], Any]], list[int]]] = []
    head: Any = None
    try:
        with session.info["driver"].pipeline():
            for statement, params in _checked_in_order(session):
                sent, answers = _distinct_reads(params)
                checks.append((statement.send_many(session, sent), params, answers))
            for statement, params in changes.items():
                if params:
                    statement.many(session, params)
            for table in _tables_in_order():
                if inserts.get(table):
                    insert_rows(session, table, inserts[table])
            if pending_audit:
                head = send_lock_and_head(session)
        for checked, params, answers in checks:
            _as_expected(_answered(checked.firsts(), answers), params)
        if head is not None:
            chain_and_insert(session, head_of(head), pending_audit)
    finally:
        for sent in [*(checked for checked, _, _ in checks), *(head or ())]:
            sent.close()


def insert_queued(session: Session) -> None:
    pending = session.info.pop("inserts_pending", None)
    session.flush()
    if pending:
        for table in _tables_in_order():
            if pending.get(table):
                insert_rows(session, table, pending[table])


@functools.cache
def _tables_in_order() -> list[Any]:
    """The tables in foreign-key order (MetaData.sorted_tables sorts them anew on every call)."""
    from gateway.core.models import Base

    return list(Base.metadata.sorted_tables)


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert plain rows, one statement per set of columns on PostgreSQL and one driver
    executemany on SQLite (:class:`gateway.core.sql.Insert`); a column a row leaves out gets its
    Python-side default, as a Core insert would give it."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for keys, group in groups.items():
        statement, defaults = _inserter(table, keys)
        if defaults:
            group = [{**row, **{name: default.arg(None) if default.is_callable else default.arg
                                for name, default in defaults}} for row in group]
        statement.many(session, group)


_INSERTERS: dict[tuple[Any, tuple[str, ...]], tuple[Any, list[tuple[str, Any]]]] = {}


def _inserter(table: Any, keys: tuple[str, ...]) -> tuple[Any, list[tuple[str, Any]]]:
    from gateway.core.sql import Insert

    found = _INSERTERS.get((table, keys))
    if found is None:
        defaults = [(column.key, column.default) for column in table.columns
                    if column.key not in keys and column.default is not None
                    and (column.default.is_callable or column.default.is_scalar)]
        names = list(keys) + [name for name, _ in defaults]
        found = _INSERTERS[(table, keys)] = (Insert(table, names), defaults)
    return found


def mark(session: Session) -> dict[Any, int]:
    """Where this session's queued work stands (rows to insert, audit entries, exchange events), so a
    savepoint that rolls back can take back what was queued inside it (:func:`undo_since`)."""
    marks: dict[Any, int] = {key: len(session.info.get(key, [])) for key in ("audit_pending", "exchange_events")}
    for key in ("inserts_pending", "changes_pending", "checked_pending"):
        marks.update({(key, queued): len(rows) for queued, rows in session.info.get(key, {}).items()})
    return marks


def undo_since(session: Session, marks: dict[Any, int]) -> None:
    for key in ("audit_pending", "exchange_events"):
        del session.info.get(key, [])[marks.get(key, 0):]
    for key in ("inserts_pending", "changes_pending", "checked_pending"):
        for queued, rows in session.info.get(key, {}).items():
            del rows[marks.get((key, queued), 0):]


class Store:
    """Engines and session factories for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            self.engine = _postgres_engine(url)
            self.read_engine = self.engine
        # SQLite has one writer. Threads of this process queue on a lock instead of colliding on
        # BEGIN IMMEDIATE, where SQLite's busy handler would put them to sleep for up to 100 ms;
        # processes sharing the file queue on an advisory file lock beside it, for the same reason
        # (the kernel wakes the next one the moment the lock is free).
        self._write_lock: Any = None
        if self.dialect == "sqlite":
            database = make_url(url).database
            lock_path = f"{database}.writelock" if database and database != ":memory:" else None
            self._write_lock = _WriterLock(lock_path)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        # Called with the exchange events of each committed transaction (never on rollback).
        self.listeners: list[Callable[[list[Any]], None]] = []
        self.group = GroupCommit(self)
        self._loop_reader: Any = None  # reading_rows' connection on the event loop's thread
        self._loop_reading = False

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on any error; then the
        listeners hear of the exchange events it committed."""
        events: list[Any] = []
        with self.committing(events) as session:
            yield session
        self.tell_listeners(events)

    @contextmanager
    def committing(self, events: list[Any]) -> Iterator[Session]:
        """A write transaction that collects its committed exchange events into ``events`` instead
        of telling the listeners (:meth:`tell_listeners`), for a caller that must first let go of
        what it holds: a listener may well write again."""
        self.group.refuse_blocking_write()
        with self._write_lock or nullcontext(), self._write() as session:
            with session.begin():
                # As open_batch does: the hot statements find the driver here instead of asking the Session.
                session.info["driver"] = session.connection().connection.driver_connection
                yield session
                self.finish_batch(session)
            events.extend(session.info.pop("exchange_events", []))

    # The steps of :meth:`committing`, for a writer that takes them one at a time (the group
    # commit on the event loop, which commits on a thread of its own).

    @property
    def write_lock(self) -> "_WriterLock | None":
        return self._write_lock  # type: ignore[no-any-return]

    def open_batch(self) -> Session:
        """A write session with its transaction begun; the caller holds :attr:`write_lock`."""
        session = self._write()
        session.begin()
        session.info["driver"] = session.connection().connection.driver_connection
        return session

    @staticmethod
    def finish_batch(session: Session) -> None:
        """What goes in last before the commit: the queued rows, then the sealed audit entries."""
        from gateway.core.audit import seal

        if (session.get_bind().dialect.name == "postgresql" and not (session.new or session.dirty or session.deleted)
                and pipelines()):
            _finish_in_one_pipeline(session)
            return
        run_queued_changes(session)
        insert_queued(session)
        seal(session)

    def tell_listeners(self, events: list[Any]) -> None:
        if not events:
            return
        for listener in self.listeners:
            try:
                listener(events)
            except Exception as exc:  # the change is committed: an observer can neither undo nor fail it
                log.error("exchange_listener_failed", error_type=type(exc).__name__)

    def batched(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit(session)`` in a write transaction that may be shared with other units (group
        commit); returns once it has committed. For the many small writes of the hot paths; see
        :mod:`gateway.core.groupcommit` for what a unit may do."""
        return self.group.run(unit)

    async def batched_async(self, unit: Callable[[Session], T], abandoned: Callable[[Any], None] | None = None) -> T:
        """:meth:`batched` for a coroutine, which awaits the commit instead of blocking a thread.
        ``abandoned(ticket)``: what must follow the commit if the caller is cancelled before it
        (:meth:`gateway.core.groupcommit.GroupCommit.run_many_async`); ``ticket.ok`` says whether
        the unit was written."""
        return await self.group.run_async(unit, abandoned)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read transaction. It always rolls back, so nothing changed through it is ever written."""
        with self._read() as session:
            try:
                yield session
            finally:
                # Detach first, so rows read here keep their values for the caller after the rollback.
                session.expunge_all()
                session.rollback()

    @contextmanager
    def reading_rows(self) -> Iterator[DriverConnection]:
        """A read transaction on a pooled driver connection, for :mod:`gateway.core.sql`
        statements and nothing else (the look-ups before a message is accepted): without a
        Session's or a Connection's bookkeeping it costs a fraction of :meth:`reading`. It always
        rolls back."""
        # The event loop's thread reads one request at a time (nothing awaits inside), so it keeps
        # one connection rather than taking one from the pool and giving it back per request (on
        # PostgreSQL the pool's check before each use is a round trip to the server).
        kept = self.group.reads_on_loop_thread() and not self._loop_reading
        if kept:
            pooled, driver = self._loop_reader or self._loop_reader_connection()
            self._loop_reader, self._loop_reading = None, True
        else:
            pooled = self.read_engine.raw_connection()
            driver = pooled.driver_connection
        clean = False
        try:
            if self.dialect == "sqlite":
                driver.execute("BEGIN")  # the driver leaves transactions to us (isolation_level None)
            # psycopg begins one with the first statement, except on the loop's kept connection.
            yield DriverConnection(driver, self.read_engine.dialect)
        finally:
            try:
                driver.rollback()  # psycopg sends nothing when no transaction is open
                clean = True
            finally:
                if kept:
                    self._loop_reading = False
                if kept and clean:
                    self._loop_reader = pooled, driver
                else:
                    pooled.close()  # back to the pool, which throws a broken one away

    def _loop_reader_connection(self) -> tuple[Any, Any]:
        """The event loop's own read connection. On PostgreSQL it is taken out of the pool and
        reads in autocommit: under READ COMMITTED each statement sees the latest commits whether
        or not they share a transaction, so the transaction would only add a ROLLBACK round trip
        per request — and a connection in autocommit must never go back to the pool for a writer."""
        pooled = self.read_engine.raw_connection()
        driver = pooled.driver_connection
        if self.dialect != "sqlite":
            pooled.detach()  # closing it closes it, instead of handing it to the next writer
            driver.autocommit = True
        return pooled, driver

    def let_go_of_loop_reader(self) -> None:
        """Give the event loop's kept read connection back to the pool (at detach)."""
        reader, self._loop_reader = self._loop_reader, None
        if reader is not None:
            reader[0].close()

    def durability(self) -> dict[str, str]:
        """The settings that decide whether an acknowledged commit survives a crash."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                return {
                    "journal_mode": str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()),
                    # 2 is FULL in SQLite's numbering.
                    "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                        int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
                    ],
                }
            return {
                "synchronous_commit": str(conn.execute(text("SHOW synchronous_commit")).scalar()),
                "fsync": str(conn.execute(text("SHOW fsync")).scalar()),
            }

    def ping(self) -> None:
        with self.read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.group.close()
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(store: Store) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with store.read_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


class UnknownSchema(RuntimeError):
    """The database was migrated by a newer version of Schakel than this one."""


def refuse_unknown_schema(store: Store) -> None:
    """Refuse to run on a database whose migration this version does not know. A newer version
    has upgraded it, and this one would write rows that lack what the newer schema relies on (a
    process from before migration 0004 writes no outbox ``line``, so beside newer replicas its
    messages would not keep their client's order). A schema that is only behind is left to
    ``auto_migrate`` or ``gateway db upgrade``, and to ``/ready``."""
    from alembic.script import ScriptDirectory

    current = current_revision(store)
    script = ScriptDirectory.from_config(alembic_config(store.url))
    if current is None or current in {revision.revision for revision in script.walk_revisions()}:
        return
    raise UnknownSchema(f"the database is at migration {current}, which this version of Schakel does not know "
                        f"(its newest is {script.get_current_head()}): a newer version has upgraded it, so run "
                        "that version; older and newer versions must not share a database")
