"""The store's durability settings: no success is answered before it is on disk."""

from __future__ import annotations

import os

import pytest

from gateway.app import check_durability
from gateway.core.runtime import Gateway
from gateway.core.store import current_revision, head_revision, upgrade
from tests.conftest import settings_from_env


def test_durability_settings_are_the_safe_ones(settings):
    gw = Gateway(settings)
    upgrade(gw.store.url)
    try:
        durability = check_durability(gw)
        if gw.store.is_postgres:
            assert durability["synchronous_commit"] == "on"
            assert durability["fsync"] == "on"
        else:
            assert durability == {"journal_mode": "wal", "synchronous": "FULL"}
        assert current_revision(gw.store) == head_revision(gw.store.url)
    finally:
        gw.store.dispose()


def test_the_answer_comes_after_exchange_outbox_and_audit_are_committed(live_gateway, sink):
    """A 202 means all three rows are visible to a fresh connection."""
    from sqlalchemy import select

    from gateway.core.models import AuditEntry, Exchange, OutboxItem
    from gateway.core.store import Store
    from tests.helpers import notice, submit

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    live_gateway.gw.settings.worker_enabled = False
    for worker in live_gateway.gw.workers:
        worker._stop.set()
    with live_gateway.client("hulpverlener") as client:
        exchange_id = submit(client, notice("r-commit")).json()["exchange_id"]
    other = Store(live_gateway.gw.store.url)
    try:
        with other.reading() as session:
            assert session.get(Exchange, exchange_id) is not None
            assert session.get(OutboxItem, exchange_id) is not None
            events = list(session.scalars(select(AuditEntry.event_type).where(AuditEntry.exchange_id == exchange_id)))
        assert events == ["exchange.received", "exchange.validated", "exchange.authorised", "exchange.queued"]
    finally:
        other.dispose()


def _connector_states(store) -> set[str]:
    from sqlalchemy import select

    from gateway.core.models import ConnectorState

    with store.reading() as session:
        return set(session.scalars(select(ConnectorState.connector_type)))


def test_queued_changes_run_before_the_commit_and_a_step_taken_back_takes_its_changes_back(settings):
    """An outcome's outbox change waits in the session and runs with the batch's others in one
    executemany; a unit whose step is undone (undo_since) leaves nothing of it queued."""
    from sqlalchemy import bindparam, delete

    from gateway.core.models import ConnectorState
    from gateway.core.sql import Statement
    from gateway.core.store import mark, queue_change, undo_since

    gw = Gateway(settings)
    upgrade(gw.store.url)
    drop = Statement(delete(ConnectorState.__table__).where(ConnectorState.connector_type == bindparam("kind")))
    try:
        with gw.store.transaction() as session:
            session.add_all([ConnectorState(connector_type=kind) for kind in ("a", "b", "c")])
        with gw.store.transaction() as session:
            queue_change(session, drop, {"kind": "a"})
            marks = mark(session)
            queue_change(session, drop, {"kind": "b"})
            undo_since(session, marks)
            assert _connector_states(gw.store) == {"a", "b", "c"}  # nothing has run yet
        assert _connector_states(gw.store) == {"b", "c"}
    finally:
        gw.store.dispose()


def test_a_unit_that_reads_the_rows_runs_what_is_queued_first(settings):
    from sqlalchemy import bindparam, delete, select

    from gateway.core.models import ConnectorState
    from gateway.core.sql import Statement
    from gateway.core.store import queue_change, run_queued_changes

    gw = Gateway(settings)
    upgrade(gw.store.url)
    drop = Statement(delete(ConnectorState.__table__).where(ConnectorState.connector_type == bindparam("kind")))
    try:
        with gw.store.transaction() as session:
            session.add_all([ConnectorState(connector_type=kind) for kind in ("a", "b")])
        with gw.store.transaction() as session:
            queue_change(session, drop, {"kind": "a"})
            run_queued_changes(session)
            assert set(session.scalars(select(ConnectorState.connector_type))) == {"b"}
            assert "changes_pending" not in session.info  # and the commit does not run it again
        assert _connector_states(gw.store) == {"b"}
    finally:
        gw.store.dispose()


def test_the_event_loop_keeps_one_read_connection_that_sees_every_commit_and_never_serves_a_writer(settings):
    """The loop's thread reads with a connection of its own. On PostgreSQL it reads in autocommit
    (no ROLLBACK round trip per request), so it must never go back to the pool, where a writer
    would take it and commit statement by statement."""
    import asyncio

    from gateway.core import partners as partner_registry
    from gateway.core.models import ConnectorState

    gw = Gateway(settings)
    upgrade(gw.store.url)
    store = gw.store

    async def reads() -> object:
        store.group.attach(asyncio.get_running_loop())
        try:
            with store.reading_rows() as first:
                assert not partner_registry.is_connector_paused(first, "webhook")
                kept = first.driver
            # Committed by another connection between two reads of the loop: the next read sees it.
            await asyncio.to_thread(_pause_webhook, store)
            with store.reading_rows() as second:
                assert second.driver is kept
                assert partner_registry.is_connector_paused(second, "webhook")
            if store.is_postgres:
                assert kept.autocommit
            return kept
        finally:
            await store.group.detach()

    try:
        kept = asyncio.run(reads())
        if store.is_postgres:
            assert kept.closed  # let go of at detach by closing it, not by handing it to the pool
            for _ in range(3):
                with store.transaction() as session:
                    assert not session.connection().connection.driver_connection.autocommit
                    session.get(ConnectorState, "webhook")
    finally:
        store.dispose()


def _pause_webhook(store) -> None:
    from gateway.core.models import ConnectorState

    with store.transaction() as session:
        session.add(ConnectorState(connector_type="webhook", state="paused"))


@pytest.mark.parametrize("pipelined", [True, False], ids=["libpq pipelines", "a libpq without pipelines"])
def test_on_postgresql_a_shared_batch_finishes_with_two_waits_for_the_server(postgres_url, monkeypatch, pipelined):
    """Before its commit a batch sends what it queued — the checked statements, the changes, the
    inserts and the audit chain's lock and head — as one pipeline, then its chained audit entries:
    the writer waits for the server twice, however many statements and tables that is. Everything
    lands, and the chain verifies. With a client library that cannot pipeline (libpq before 14) the
    same batch goes statement by statement, and lands all the same."""
    from sqlalchemy import bindparam, delete, select

    from gateway.core import audit, audit_chain, idempotency
    from gateway.core import partners as partner_registry
    from gateway.core.models import AuditEntry, ConnectorState, InboundRequest
    from gateway.core.sql import Statement
    from gateway.core.store import Store, queue_change, queue_insert
    from tests.core.test_sql import round_trips

    upgrade(postgres_url)
    store = Store(postgres_url)
    drop = Statement(delete(ConnectorState.__table__).where(ConnectorState.connector_type == bindparam("kind")))
    waits: list[int] = []
    finish = Store.finish_batch

    def traced(session):
        with round_trips(session.info["driver"]) as counted:
            finish(session)
        waits.extend(counted)

    def unit(n: int):
        def write(session):
            # As on the hot path, where the connector's pause is read first: the transaction's
            # BEGIN goes with that read (psycopg waits for a BEGIN sent in a pipeline on its own).
            partner_registry.is_connector_paused(session, "webhook")
            idempotency.store_answer(session, "test-source", f"k-{n}", "sha256:same", 202, {"n": n},
                                     "application/json", None)  # a checked insert
            queue_insert(session, ConnectorState, {"connector_type": f"kind-{n}"})
            queue_change(session, drop, {"kind": "old"})
            audit.record(session, "test.unit", actor=audit.Actor("test-user", "hulpverlener"), detail=f"unit {n}")
            return n
        return write

    try:
        with store.transaction() as session:
            session.add(ConnectorState(connector_type="old"))
        monkeypatch.setattr(Store, "finish_batch", staticmethod(traced))
        monkeypatch.setattr("gateway.core.store.pipelines", lambda: pipelined)
        tickets = store.group.run_many([unit(n) for n in range(4)])
        assert [ticket.result() for ticket in tickets] == [0, 1, 2, 3]
        assert waits == [2] if pipelined else waits[0] > 2
        with store.reading() as session:
            assert set(session.scalars(select(ConnectorState.connector_type))) == {f"kind-{n}" for n in range(4)}
            assert len(session.scalars(select(InboundRequest.key)).all()) == 4
            assert sorted(session.scalars(select(AuditEntry.detail))) == [f"unit {n}" for n in range(4)]
            assert audit_chain.verify(session).ok
    finally:
        store.dispose()


def test_a_queued_insert_the_database_refuses_fails_only_its_own_unit_of_a_shared_batch(settings):
    """A row refused when the batch's queued statements go to the server (on PostgreSQL, inside
    their pipeline) rolls the batch back; run again unit by unit, only the unit that queued it
    fails, and nothing of it is written."""
    from sqlalchemy import select

    from gateway.core import audit
    from gateway.core.models import AuditEntry, ConnectorState
    from gateway.core.store import queue_insert

    gw = Gateway(settings)
    upgrade(gw.store.url)

    def unit(kind: str, detail: str):
        def write(session):
            queue_insert(session, ConnectorState, {"connector_type": kind})
            audit.record(session, "test.unit", actor=audit.Actor("test-user", "hulpverlener"), detail=detail)
            return detail
        return write

    try:
        first, twice, last = gw.store.group.run_many([unit("a", "first"), unit("a", "twice"), unit("b", "last")])
        assert (first.result(), last.result()) == ("first", "last")
        assert twice.error is not None and "unique" in str(twice.error).lower()
        with gw.store.reading() as session:
            assert set(session.scalars(select(ConnectorState.connector_type))) == {"a", "b"}
            assert sorted(session.scalars(select(AuditEntry.detail))) == ["first", "last"]
    finally:
        gw.store.dispose()


def test_the_migrations_build_exactly_the_schema_the_models_describe(database_url):
    """A column or index added to a model needs its migration (an existing database only ever gets
    what the migrations add); alembic's comparison finds any difference, on both backends."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from gateway.core.models import Base

    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_messages_pending_at_the_upgrade_to_outbox_lines_keep_their_clients_order(database_url):
    """Which routes are ordered is configuration, which the migration cannot see: every message
    pending when the outbox gets its line column is put in its client's line."""
    from datetime import datetime

    from sqlalchemy import create_engine, text

    upgrade(database_url, "0003")
    engine = create_engine(database_url)
    at = datetime(2026, 12, 1, 9, 0)
    try:
        with engine.begin() as connection:
            for exchange_id, subject in (("e-1", "pseudonym-1"), ("e-2", None)):
                connection.execute(text(
                    "INSERT INTO exchanges (id, correlation_id, route_id, message_type, source, connector_type, "
                    "partner_id, subject, purpose, state, idempotency_key, content_type, payload_digest, fields_out, "
                    "retry_policy, created_by, created_at, updated_at, retry_started_at, attempts, replays) VALUES "
                    "(:id, 'c', 'wmo.wmo301', 'WMO301', 'm', 'care4', 'p-1', :subject, 'zorg', 'queued', :key, "
                    "'application/xml', 'd', '[]', 'standard', 'test', :at, :at, :at, 0, 0)"),
                    {"id": exchange_id, "subject": subject, "key": f"schakel-{exchange_id}", "at": at})
                connection.execute(text(
                    "INSERT INTO outbox (exchange_id, partner_id, connector_type, due_at, held, created_at) "
                    "VALUES (:id, 'p-1', 'care4', :at, :held, :at)"), {"id": exchange_id, "at": at, "held": False})
        upgrade(database_url)
        with engine.connect() as connection:
            lines = dict(connection.execute(text("SELECT exchange_id, line FROM outbox")).all())
    finally:
        engine.dispose()
    assert lines == {"e-1": "pseudonym-1", "e-2": None}


def test_a_database_a_newer_version_migrated_is_refused_at_start(database_url, tmp_path):
    """An older process must not run beside newer ones (it would write rows without what the newer
    schema relies on): ``gateway serve`` exits at start and says why, and writes nothing."""
    import subprocess
    import sys

    from sqlalchemy import text

    from tests.conftest import test_env
    from tests.servers import ROOT, free_port

    env = test_env(database_url, tmp_path)
    gw = Gateway(settings_from_env(env))
    upgrade(gw.store.url)
    with gw.store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_from_a_newer_version'"))
    gw.store.dispose()

    started = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
                             env={**os.environ, **env}, cwd=ROOT, capture_output=True, timeout=120)

    assert started.returncode != 0
    said = (started.stdout + started.stderr).decode()
    assert "0099_from_a_newer_version" in said and "does not know" in said
    gw = Gateway(settings_from_env(env))
    try:
        assert current_revision(gw.store) == "0099_from_a_newer_version"  # left as the newer version left it
    finally:
        gw.store.dispose()
