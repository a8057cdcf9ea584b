"""Hot statements run on the driver's cursor read and write exactly what SQLAlchemy would, on
SQLite and on PostgreSQL: the same rows, the same types (JSON, UTC timestamps, bytes), the same
row counts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, delete, insert, select, update

from gateway.core.models import AuditEntry, InboundRequest, Partner, utcnow
from gateway.core.sql import Insert, InsertUnlessTaken, Read, Statement, prefetch
from gateway.core.store import Store, upgrade

PARTNERS = Partner.__table__
REQUESTS = InboundRequest.__table__
AUDIT = AuditEntry.__table__


@pytest.fixture
def store(database_url):
    upgrade(database_url)
    store = Store(database_url)
    yield store
    store.dispose()


def add_partner(store: Store, partner_id: str, **extra) -> None:
    with store.transaction() as session:
        session.add(Partner(id=partner_id, connector_type="webhook", name=f"Partner {partner_id}",
                            endpoint="http://127.0.0.1:9/inbox", identifiers={"gemeentecode": "0363"},
                            config={"path": "/x", "n": 1}, credentials_encrypted=b"\x00\x01secret", **extra))


def test_a_row_reads_as_it_does_through_sqlalchemy(store):
    add_partner(store, "p-one", state_changed_at=datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc))
    query = select(PARTNERS).where(PARTNERS.c.id == bindparam("id"))
    with store.read_engine.connect() as connection:
        expected = connection.execute(query, {"id": "p-one"}).one()
        through_connection = Statement(query).first(connection, id="p-one")
    with store.reading_rows() as driver:
        row = Statement(query).first(driver, id="p-one")
    assert row == through_connection
    assert tuple(row) == tuple(expected)
    assert row._fields == tuple(expected._fields)
    assert row.identifiers == {"gemeentecode": "0363"} and row.config == {"path": "/x", "n": 1}
    assert row.credentials_encrypted == b"\x00\x01secret"
    assert row.state_changed_at == datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)
    assert row.created_at.tzinfo == timezone.utc


@contextmanager
def round_trips(driver) -> Iterator[list[int]]:
    """How many times the client waited for PostgreSQL (each wait ends with the server's
    ReadyForQuery), from libpq's own trace of the protocol."""
    counted: list[int] = []
    with tempfile.TemporaryFile("w+") as trace:
        driver.pgconn.trace(trace.fileno())
        try:
            yield counted
        finally:
            driver.pgconn.untrace()
            trace.seek(0)
            counted.append(sum(1 for line in trace if "\tReadyForQuery" in line))


BY_ID = Statement(select(PARTNERS).where(PARTNERS.c.id == bindparam("id")))
BY_TYPE = Statement(select(PARTNERS.c.id).where(PARTNERS.c.connector_type == bindparam("kind")).order_by(PARTNERS.c.id))


def store_at(url: str) -> Iterator[Store]:
    upgrade(url)
    store = Store(url)
    yield store
    store.dispose()


@pytest.fixture
def postgres_store(postgres_url):
    yield from store_at(postgres_url)


@pytest.fixture
def sqlite_store(tmp_path):
    yield from store_at(f"sqlite:///{tmp_path / 'schakel.db'}")


def test_prefetched_reads_on_postgresql_wait_once_for_all_of_them_and_read_what_each_would_have(postgres_store):
    store = postgres_store
    for n in range(3):
        add_partner(store, f"p-{n}")
    reads = [Read(BY_ID, id="p-1"), Read(BY_TYPE, kind="webhook"), Read(BY_ID, id="nobody")]
    with store.reading_rows() as connection:
        expected = [read.statement.all(connection, **read.params) for read in reads]
        with round_trips(connection.driver) as alone:
            for read in reads:
                read.statement.all(connection, **read.params)
        with round_trips(connection.driver) as together:
            prefetch(connection, reads)
        with round_trips(connection.driver) as afterwards:
            got = [read.all(connection) for read in reads]
        assert got == expected and expected[2] == [] and len(expected[1]) == 3
        assert (alone, together, afterwards) == ([3], [1], [0])
        # Each prefetched answer is used once: asked again, the read goes to the server.
        with round_trips(connection.driver) as again:
            assert reads[0].first(connection).id == "p-1"
        assert again == [1]


def prefetch_leaves_every_read_to_run_when_it_is_asked(store: Store) -> None:
    add_partner(store, "p-1")
    read = Read(BY_ID, id="p-1")
    with store.reading_rows() as connection:
        prefetch(connection, [read, Read(BY_TYPE, kind="webhook")])
        assert connection.prefetched == {}
        assert read.first(connection).name == "Partner p-1"


def test_on_sqlite_prefetch_leaves_every_read_to_run_when_it_is_asked(sqlite_store):
    prefetch_leaves_every_read_to_run_when_it_is_asked(sqlite_store)


def test_without_pipelines_in_libpq_prefetch_leaves_every_read_to_run_when_it_is_asked(postgres_store, monkeypatch):
    monkeypatch.setattr("gateway.core.sql.pipelines", lambda: False)
    prefetch_leaves_every_read_to_run_when_it_is_asked(postgres_store)


def test_literals_in_a_statement_and_a_limit_are_bound_like_parameters(store):
    for n in range(3):
        add_partner(store, f"p-{n}")
    query = Statement(select(PARTNERS.c.id).where(PARTNERS.c.connector_type == "webhook",
                                                  PARTNERS.c.state == bindparam("state"))
                      .order_by(PARTNERS.c.id).limit(2))
    with store.reading_rows() as connection:
        assert [row.id for row in query.all(connection, state="active")] == ["p-0", "p-1"]
        assert query.all(connection, state="paused") == []
        assert query.first(connection, state="paused") is None


def test_writes_convert_json_and_times_on_the_way_in_and_count_the_rows_they_change(store):
    now = utcnow()
    add_row = Statement(insert(REQUESTS).values(
        {column: bindparam(column) for column in ("source", "key", "fingerprint", "status", "locked_until",
                                                  "response_body", "created_at")}))
    mark_done = Statement(update(REQUESTS).where(REQUESTS.c.source == bindparam("source"))
                          .values(status=bindparam("status")))
    with store.transaction() as session:
        add_row.many(session, [dict(source="s", key=f"k{n}", fingerprint="f", status="processing",
                                    locked_until=now + timedelta(seconds=n), response_body={"n": n, "ü": "é"},
                                    created_at=now) for n in range(3)])
        assert mark_done.run(session, source="s", status="done") == 3
        assert mark_done.run(session, source="nobody", status="done") == 0
        assert Statement(delete(REQUESTS).where(REQUESTS.c.key == bindparam("key"))).many(
            session, [{"key": "k0"}, {"key": "k1"}]) == 2
    with store.reading() as session:
        rows = session.execute(select(REQUESTS)).all()
    assert [(row.key, row.status, row.response_body) for row in rows] == [("k2", "done", {"n": 2, "ü": "é"})]
    assert rows[0].locked_until == now + timedelta(seconds=2)
    assert rows[0].created_at == now


def test_many_rows_inserted_at_once_read_back_as_sqlalchemy_wrote_them_in_the_order_given(store):
    now = utcnow()
    names = ["source", "key", "fingerprint", "status", "locked_until", "response_status", "response_body",
             "response_media_type", "exchange_id", "created_at"]
    given = [dict(source="s", key=f"k{n:02d}", fingerprint="f", status="done",
                  locked_until=None if n % 2 else now + timedelta(seconds=n), response_status=None if n % 3 else 202,
                  response_body=None if n == 4 else {"n": n, "ü": "é", "list": [1, None]},
                  response_media_type="application/json", exchange_id=None, created_at=now)
             for n in range(12)]
    entries = [dict(event_id=f"e-{n:02d}", event_type="test.order", action_code="E", occurred_at=now, outcome=0,
                    user_id="u", role="r", fields=["b", "a"] if n % 2 else [], prev_hash="0" * 64, hash=f"{n:064d}")
               for n in range(40)]
    with store.transaction() as session:
        assert Insert(REQUESTS, names).many(session, given) == 12
        assert Insert(AUDIT, list(entries[0])).many(session, entries) == 40
        assert Insert(REQUESTS, names).many(session, [{**given[0], "key": "alone"}]) == 1
    with store.reading() as session:
        rows = session.execute(select(REQUESTS).where(REQUESTS.c.key != "alone").order_by(REQUESTS.c.key)).all()
        order = session.scalars(select(AUDIT.c.event_id).where(AUDIT.c.event_type == "test.order")
                                .order_by(AUDIT.c.seq)).all()
        fields = session.scalars(select(AUDIT.c.fields).where(AUDIT.c.event_id == "e-01")).one()
    assert [{name: getattr(row, name) for name in names} for row in rows] == given
    # The audit log's sequence follows the order the rows were given in: the chain depends on it.
    assert order == [entry["event_id"] for entry in entries]
    assert fields == ["b", "a"]


def test_many_rows_with_bytes_json_and_awkward_text_read_back_exactly_as_given(store):
    """Every kind of value a hot table holds survives the many-row insert (on PostgreSQL one JSON
    document of the rows): bytes with NUL and high bytes, nested JSON with quotes and backslashes,
    text with quotes, backslashes, newlines and non-ASCII, and times to the microsecond."""
    now = utcnow()
    names = ["id", "connector_type", "name", "identifiers", "endpoint", "config", "credentials_encrypted", "state",
             "state_reason", "state_changed_at", "state_changed_by", "created_at", "updated_at"]
    given = [dict(id=f"p-{n}", connector_type="webhook", name=f'Partner "{n}" \\ ü\nnext line',
                  identifiers={"gemeentecode": f"{n:04d}", "nested": {"a": [1, 2.5, None, True, "x\"y\\z"]}},
                  endpoint="http://127.0.0.1:9/inbox", config={} if n % 2 else {"ü": "é", "empty": ""},
                  credentials_encrypted=None if n == 3 else bytes(range(256)) + bytes([n]), state="active",
                  state_reason=None if n % 2 else "paused \\N '' \t", state_changed_at=None if n % 2 else now,
                  state_changed_by=None, created_at=now - timedelta(microseconds=n),
                  updated_at=datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=timezone.utc))
             for n in range(6)]
    with store.transaction() as session:
        assert Insert(PARTNERS, names).many(session, given) == 6
    with store.reading() as session:
        rows = session.execute(select(PARTNERS).order_by(PARTNERS.c.id)).all()
    assert [{name: getattr(row, name) for name in names} for row in rows] == given


def test_a_value_too_long_for_its_column_is_refused_in_a_many_row_insert_not_cut_short(postgres_store):
    rows = [dict(source="s", key=f"k{n}", fingerprint="f", status="done" if n else "x" * 17, created_at=utcnow())
            for n in range(3)]
    import psycopg

    with pytest.raises(psycopg.errors.StringDataRightTruncation), postgres_store.transaction() as session:
        Insert(REQUESTS, list(rows[0])).many(session, rows)


def test_many_rows_inserted_unless_taken_say_each_whether_it_went_in(postgres_store):
    """As row by row: a key already there is not inserted, and of two rows with one key only the
    first goes in; each answer is in the order the rows were given."""
    names = ["source", "key", "fingerprint", "status", "created_at"]
    unless_taken = InsertUnlessTaken(REQUESTS, names, key=("source", "key"))
    now = utcnow()

    def row(key: str, fingerprint: str) -> dict:
        return dict(source="s", key=key, fingerprint=fingerprint, status="done", created_at=now)

    with postgres_store.transaction() as session:
        Insert(REQUESTS, names).many(session, [row("there", "old")])
        sent = unless_taken.send_many(session, [row("a", "1"), row("there", "2"), row("b", "3"), row("a", "4")])
        assert sent.firsts() == [("s", "a"), None, ("s", "b"), None]
    with postgres_store.reading() as session:
        stored = dict(session.execute(select(REQUESTS.c.key, REQUESTS.c.fingerprint)).all())
    assert stored == {"there": "old", "a": "1", "b": "3"}


def test_an_insert_that_returns_says_whether_it_inserted(store, database_url):
    from sqlalchemy.dialects.postgresql import insert as postgres_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    maker = sqlite_insert if database_url.startswith("sqlite") else postgres_insert
    unless_taken = Statement(maker(REQUESTS).values(source=bindparam("source"), key=bindparam("key"),
                                                    fingerprint="f", status="done", created_at=bindparam("at"))
                             .on_conflict_do_nothing().returning(REQUESTS.c.key))
    with store.transaction() as session:
        assert unless_taken.first(session, source="s", key="k", at=utcnow()).key == "k"
        assert unless_taken.first(session, source="s", key="k", at=utcnow()) is None


def test_a_statement_whose_sql_changes_per_call_is_refused():
    with pytest.raises(ValueError, match="expanding IN"):
        from sqlalchemy.dialects import sqlite

        from gateway.core.sql import _Compiled

        _Compiled(select(PARTNERS).where(PARTNERS.c.id.in_(bindparam("ids", expanding=True))), sqlite.dialect())


def test_utc_timestamps_are_stored_in_sqlalchemys_sqlite_format_and_read_back_in_utc(tmp_path):
    """The fused SQLite conversion of UTCDateTime writes what SQLAlchemy's own would, to the
    microsecond, from any zone, and refuses naive times."""
    from datetime import timedelta

    from sqlalchemy.dialects import sqlite
    from sqlalchemy.dialects.sqlite.base import DATETIME

    from gateway.core.models import UTCDateTime

    dialect = sqlite.dialect()
    write = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    read = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    sqlalchemys = DATETIME().bind_processor(dialect)
    for moment in (datetime(2026, 12, 5, 0, 45, 26, 681170, tzinfo=timezone.utc), datetime(1, 1, 1, tzinfo=timezone.utc),
                   datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
                   datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2)))):
        stored = write(moment)
        assert stored == sqlalchemys(moment.astimezone(timezone.utc).replace(tzinfo=None))
        assert read(stored) == moment and read(stored).tzinfo == timezone.utc
    assert write(None) is None and read(None) is None
    with pytest.raises(ValueError, match="naive"):
        write(datetime(2026, 1, 1))


def test_a_prefetched_read_the_database_refuses_raises_and_leaves_the_loops_connection_serving(postgres_store):
    """A value PostgreSQL cannot take (a NUL in text) fails the whole prefetch with the driver's
    DataError — the API answers that with a 422 — and the event loop's kept read connection, which
    the next request reuses, still reads."""
    import asyncio

    import psycopg

    store = postgres_store
    add_partner(store, "p-1")

    async def on_the_loop() -> list[object]:
        store.group.attach(asyncio.get_running_loop())
        try:
            for _ in range(2):
                with pytest.raises(psycopg.DataError):
                    with store.reading_rows() as connection:
                        prefetch(connection, [Read(BY_ID, id="a\x00b"), Read(BY_TYPE, kind="webhook")])
            with store.reading_rows() as connection:
                reads = [Read(BY_ID, id="p-1"), Read(BY_TYPE, kind="webhook")]
                prefetch(connection, reads)
                return [read.first(connection) for read in reads]
        finally:
            await store.group.detach()

    partner, first_of_kind = asyncio.run(on_the_loop())
    assert partner.id == "p-1" and first_of_kind.id == "p-1"
