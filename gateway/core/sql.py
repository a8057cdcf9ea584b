"""Statements on the hot paths, compiled once and run on the driver's own cursor.

SQLAlchemy builds these statements, from the same table definitions as everything else, and
compiles them once per dialect. Running a compiled Core statement still costs some 45 µs of Python
per call on the machines we measure on (an execution context, a result object, row processing);
the driver itself (sqlite3, psycopg) needs about 5. The statements every message runs — the
look-ups before it is accepted, the claim and the outcome of each attempt — are run here instead:
the SQL text, the parameter order and the type conversions (JSON, UTC timestamps) are SQLAlchemy's
own, taken from the compiled statement and its column types, so a row reads exactly as it would
through :meth:`Connection.execute`; only the per-call machinery is left out.

They run on the DBAPI connection of a SQLAlchemy ``Connection`` or ``Session``, inside whatever
transaction that holds, or on a :class:`DriverConnection` straight from the pool. Statements
with an expanding ``IN`` are not supported (their SQL changes with each call); write those as
ordinary Core statements.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, insert
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any]


class DriverConnection:
    """A DBAPI connection checked out of an engine's pool, with the engine's dialect: what
    :meth:`gateway.core.store.Store.reading_rows` hands out, for statements and nothing else."""

    __slots__ = ("driver", "dialect", "prefetched")

    def __init__(self, driver: Any, dialect: Dialect) -> None:
        self.driver = driver
        self.dialect = dialect
        self.prefetched: dict[Any, list[Any]] = {}  # Read.key -> its rows (see prefetch)


Bind = Connection | Session | DriverConnection


def driver_connection(bind: Bind) -> Any:
    """The DBAPI connection under a Connection, under the Session's connection (which begins
    the Session's transaction if it has none yet), or a :class:`DriverConnection`'s."""
    if isinstance(bind, DriverConnection):
        return bind.driver
    if isinstance(bind, Session):
        # A write batch's session notes its driver connection (Store.open_batch): it holds one
        # transaction on one connection, and asking the Session each time costs more than the statement.
        return bind.info.get("driver") or bind.connection().connection.driver_connection
    return bind.connection.driver_connection


def dialect_of(bind: Bind) -> Dialect:
    return bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect


class _Compiled:
    __slots__ = ("sql", "names", "positional", "plan", "row", "results")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("a statement with an expanding IN cannot be compiled once")
        self.sql = compiled.string
        self.positional = bool(dialect.positional)
        self.names: list[str] = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        # Per parameter, in the order the driver wants them: its conversion (None: none) and the
        # value it has when the caller gives none (a literal in the statement, or NULL).
        self.plan: list[tuple[str, Processor | None, Any]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect), compiled.params.get(name))
            for name in self.names]
        columns = list(getattr(statement, "exported_columns", ()))  # a SELECT's columns, or what it RETURNs
        self.row: Any = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None  # type: ignore[misc]
        self.results: list[tuple[int, Processor]] = []
        for index, column in enumerate(columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                self.results.append((index, processor))

    def arguments(self, params: Mapping[str, Any]) -> Any:
        get = params.get
        values = [get(name, default) if processor is None else processor(get(name, default))
                  for name, processor, default in self.plan]
        return tuple(values) if self.positional else dict(zip(self.names, values))

    def rows(self, raw: Iterable[tuple[Any, ...]]) -> list[Any]:
        make, results = self.row, self.results
        if not results:
            return [make._make(values) for values in raw]
        out = []
        for values in raw:
            values = list(values)
            for index, processor in results:
                values[index] = processor(values[index])
            out.append(make._make(values))
        return out


class Statement:
    """One statement, compiled for each dialect it meets, run on the driver's cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, bind: Bind) -> tuple[_Compiled, Any]:
        driver = driver_connection(bind)
        dialect = dialect_of(bind)
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        return compiled, driver

    def all(self, bind: Bind, **params: Any) -> list[Any]:
        """Every row, as named tuples with the statement's column keys."""
        compiled, driver = self._for(bind)
        cursor = driver.cursor()
        try:
            cursor.execute(compiled.sql, compiled.arguments(params))
            return compiled.rows(cursor.fetchall())
        finally:
            cursor.close()

    def first(self, bind: Bind, **params: Any) -> Any:
        rows = self.all(bind, **params)
        return rows[0] if rows else None

    def run(self, bind: Bind, **params: Any) -> int:
        """A statement without rows to read; how many rows it changed."""
        compiled, driver = self._for(bind)
        cursor = driver.cursor()
        try:
            cursor.execute(compiled.sql, compiled.arguments(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def many_first(self, bind: Bind, params: list[dict[str, Any]]) -> list[Any]:
        """The statement once for each parameter set, in one driver call (psycopg sends them as one
        pipeline), and the first row each one returned (``None`` where it returned none): for a
        statement with ``RETURNING``, which of them changed their row. PostgreSQL only."""
        return self.send_many(bind, params).firsts()

    def send(self, bind: Bind, **params: Any) -> "Sent":
        """Execute the statement and leave its answer to be read later (:meth:`Sent.rows`). Inside
        a psycopg pipeline nothing waits for the server here: the answers of everything sent come
        back together at the pipeline's next sync."""
        compiled, driver = self._for(bind)
        cursor = driver.cursor()
        sent = Sent(compiled, cursor)
        try:
            cursor.execute(compiled.sql, compiled.arguments(params))
        except BaseException:
            sent.close()
            raise
        return sent

    def send_many(self, bind: Bind, params: list[dict[str, Any]]) -> "Sent":
        """:meth:`send` once for each parameter set, in one driver call, keeping every answer
        (:meth:`Sent.firsts`). PostgreSQL only."""
        compiled, driver = self._for(bind)
        cursor = driver.cursor()
        sent = Sent(compiled, cursor)
        try:
            cursor.executemany(compiled.sql, [compiled.arguments(p) for p in params], returning=True)
        except BaseException:
            sent.close()
            raise
        return sent

    def many(self, bind: Bind, params: list[dict[str, Any]]) -> int:
        """The statement once for each parameter set, in one driver call; rows changed in all."""
        if not params:
            return 0
        compiled, driver = self._for(bind)
        cursor = driver.cursor()
        try:
            cursor.executemany(compiled.sql, [compiled.arguments(p) for p in params])
            return int(cursor.rowcount)
        finally:
            cursor.close()


_BASE_TYPE = re.compile(r"\([^)]*\)")  # VARCHAR(36) -> VARCHAR: the length is checked on assignment


def _json_converter(type_: Any) -> Processor | None:
    """How a value the driver would bind for a column of this type goes into the JSON document of
    :class:`Insert`, so that PostgreSQL reads it back into the column's type; None: as it is."""
    affinity = type_._type_affinity
    if affinity is None:
        return None
    if issubclass(affinity, sqltypes.DateTime):
        return lambda value: None if value is None else value.isoformat()
    if issubclass(affinity, sqltypes._Binary):
        # psycopg's Binary wrapper (or the bytes); bytea's hex input format
        return lambda value: None if value is None else "\\x" + bytes(getattr(value, "obj", value)).hex()
    if issubclass(affinity, sqltypes.JSON):
        # psycopg's Json wrapper: the value stays JSON, nested in the document
        return lambda value: getattr(value, "obj", value)
    return None


class Insert(Statement):
    """An ``INSERT`` of one row, and of many: on PostgreSQL many rows go as one statement whose one
    parameter is a JSON document of the rows, read back into typed columns by the server
    (``json_to_recordset``) in the order given (``WITH ORDINALITY``, so serial columns such as the
    audit log's ``seq`` follow it). The server then plans and runs one statement for a batch's rows
    of a table instead of one per row — per row, that per-statement work cost it several times the
    insert itself — and the client encodes the rows with the ``json`` module's C encoder instead of
    dumping an array per column value by value in Python, which cost the event loop more than
    everything else the insert did. The columns are read as their base types (``VARCHAR``, not
    ``VARCHAR(36)``), so a value that does not fit is refused on assignment, as it is by the
    one-row form, never cut short. A JSON ``null`` in a JSON column is stored as SQL ``NULL``; both
    read back as ``None``. Elsewhere (SQLite answers in-process) many rows go as one
    ``executemany``."""

    def __init__(self, table: Any, names: list[str]) -> None:
        super().__init__(insert(table).values({name: bindparam(name) for name in names}))
        self.table, self.names = table, names
        self._from_json: str | None = None
        # Bind names are the column keys given, so the conversions follow from the table alone.
        self._converters = [(name, convert) for name in names
                            if (convert := _json_converter(table.c[name].type)) is not None]

    def many(self, bind: Bind, params: list[dict[str, Any]]) -> int:
        if len(params) < 2 or dialect_of(bind).name != "postgresql":
            return super().many(bind, params)
        cursor = self._execute_from_json(bind, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _execute_from_json(self, bind: Bind, params: list[dict[str, Any]]) -> Any:
        """The rows as one statement on PostgreSQL; the cursor, its answer unread."""
        compiled, driver = self._for(bind)
        rows = []
        for p in params:
            values = compiled.arguments(p)
            for name, convert in self._converters:
                values[name] = convert(values[name])
            rows.append(values)
        document = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
        cursor = driver.cursor()
        try:
            cursor.execute(self._from_json or self._statement(dialect_of(bind), compiled.names), (document,))
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _statement(self, dialect: Dialect, keys: list[str]) -> str:
        # The document's keys are the bind names the rows were converted under; a bind name is the
        # column's key, which need not be its name in the database.
        quote = dialect.identifier_preparer.quote
        columns = [self.table.c[name] for name in self.names]
        targets = ", ".join(quote(column.name) for column in columns)
        definitions = ", ".join(f"{quote(key)} {_BASE_TYPE.sub('', self.table.c[key].type.compile(dialect=dialect))}"
                                for key in keys)
        selected = ", ".join(quote(name) for name in self.names)
        self._from_json = (f"INSERT INTO {quote(self.table.name)} ({targets}) SELECT {selected} FROM "
                           f"ROWS FROM (json_to_recordset(%s::json) AS ({definitions})) "
                           f"WITH ORDINALITY AS given({', '.join(quote(key) for key in keys)}, position) "
                           f"ORDER BY position{self._after(dialect)}")
        return self._from_json

    def _after(self, dialect: Dialect) -> str:
        """What follows the rows in the statement (a subclass's conflict clause)."""
        return ""


class InsertUnlessTaken(Insert):
    """Many rows each inserted unless its key is taken (``ON CONFLICT DO NOTHING``), as one
    statement on PostgreSQL, saying for each row whether it went in: :meth:`send_many`'s
    :meth:`Sent.firsts` has the row's key where it was inserted and ``None`` where it was not. Of two
    rows with one key the first goes in, as it would row by row. PostgreSQL only: it is for a
    batch's checked statements (:func:`gateway.core.store.queue_checked`)."""

    def __init__(self, table: Any, names: list[str], key: tuple[str, ...]) -> None:
        super().__init__(table, names)
        self.key = key

    def _after(self, dialect: Dialect) -> str:
        quote = dialect.identifier_preparer.quote
        return f" ON CONFLICT DO NOTHING RETURNING {', '.join(quote(self.table.c[name].name) for name in self.key)}"

    def send_many(self, bind: Bind, params: list[dict[str, Any]]) -> "Sent":
        return _Inserted(self._execute_from_json(bind, params), [tuple(p[name] for name in self.key) for p in params])


class _Inserted:
    """:class:`Sent` for :class:`InsertUnlessTaken`: which of the rows, in the order given, went in."""

    __slots__ = ("cursor", "keys")

    def __init__(self, cursor: Any, keys: list[tuple[Any, ...]]) -> None:
        self.cursor, self.keys = cursor, keys

    def firsts(self) -> list[Any]:
        try:
            inserted = {tuple(row) for row in self.cursor.fetchall()}
        finally:
            self.close()
        firsts: list[Any] = []
        for key in self.keys:
            firsts.append(key if key in inserted else None)
            inserted.discard(key)  # a second row with this key was not the one inserted
        return firsts

    def close(self) -> None:
        self.cursor.close()


class Sent:
    """A statement sent with :meth:`Statement.send` or :meth:`Statement.send_many`, its answer not
    read yet. Reading it closes its cursor."""

    __slots__ = ("compiled", "cursor")

    def __init__(self, compiled: _Compiled, cursor: Any) -> None:
        self.compiled, self.cursor = compiled, cursor

    def rows(self) -> list[Any]:
        try:
            return self.compiled.rows(self.cursor.fetchall())
        finally:
            self.close()

    def firsts(self) -> list[Any]:
        """The first row of each parameter set's answer (``None`` where it had none)."""
        try:
            firsts: list[Any] = []
            while True:
                row = self.cursor.fetchone()
                firsts.append(None if row is None else self.compiled.rows([row])[0])
                if not self.cursor.nextset():
                    return firsts
        finally:
            self.close()

    def close(self) -> None:
        self.cursor.close()


class Read:
    """One look-up: a statement and its parameters. A module that reads a row on a hot path
    builds its :class:`Read` in a function of its own and runs it with :meth:`all` or
    :meth:`first`, so that a caller about to make several look-ups can :func:`prefetch` exactly
    the reads the module will make."""

    __slots__ = ("statement", "params", "key")

    def __init__(self, statement: Statement, **params: Any) -> None:
        self.statement, self.params = statement, params
        self.key = (id(statement), tuple(params.items()))

    def all(self, bind: Bind) -> list[Any]:
        if isinstance(bind, DriverConnection) and bind.prefetched:
            rows = bind.prefetched.pop(self.key, None)
            if rows is not None:
                return rows
        return self.statement.all(bind, **self.params)

    def first(self, bind: Bind) -> Any:
        rows = self.all(bind)
        return rows[0] if rows else None


@cache
def pipelines() -> bool:
    """Whether the PostgreSQL client library can pipeline (libpq 14 and later; the binary wheel
    the project depends on brings its own). Where it cannot, statements go one at a time, as they
    did before pipelines were used: slower, never wrong."""
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def prefetch(bind: Bind, reads: Iterable[Read]) -> None:
    """Run these reads now, in one round trip, and keep their rows on ``bind`` for the
    :meth:`Read.all` that asks for each (once).

    On PostgreSQL every statement is a round trip to the server, and the event loop's reads block
    it until the answer comes (see :meth:`gateway.core.store.Store.reading_rows`): a request's
    independent look-ups sent as one pipeline cost one wait instead of one each. Each still runs
    as its own statement, so it sees what it would have seen a moment later (under READ COMMITTED,
    each statement reads the latest commits). SQLite answers in-process: nothing to save there,
    and nothing is done."""
    if not isinstance(bind, DriverConnection) or bind.dialect.name != "postgresql" or not pipelines():
        return
    wanted = list({read.key: read for read in reads}.values())
    if len(wanted) < 2:
        return
    sent: list[tuple[Read, Sent]] = []
    try:
        with bind.driver.pipeline():
            for read in wanted:
                sent.append((read, read.statement.send(bind, **read.params)))
        for read, answer in sent:
            bind.prefetched[read.key] = answer.rows()
    finally:
        for _, answer in sent:
            answer.close()
