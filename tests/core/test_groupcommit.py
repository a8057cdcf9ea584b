"""Group commit: concurrent writers share commits, and one bad unit fails only itself."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from gateway.core import audit, audit_chain
from gateway.core.models import AuditEntry
from gateway.core.runtime import Gateway
from gateway.core.store import _WriterLock, upgrade
from tests.conftest import make_settings

ACTOR = audit.Actor("test-user", "hulpverlener")


@pytest.fixture
def gw(settings):
    gateway = Gateway(settings)
    upgrade(gateway.store.url)
    yield gateway
    gateway.store.dispose()


def details(gw: Gateway) -> list[str]:
    with gw.store.reading() as session:
        return sorted(session.scalars(select(AuditEntry.detail).where(AuditEntry.event_type == "test.unit")))


def writer(n: int):
    def unit(session):
        audit.record(session, "test.unit", actor=ACTOR, detail=f"unit {n:03d}")
        return n
    return unit


def test_units_queued_behind_a_commit_share_the_next_one_and_each_gets_its_own_result(gw):
    group = gw.store.group
    first_running, release_first = threading.Event(), threading.Event()

    def slow_first(session):
        first_running.set()
        release_first.wait(10)  # the leader holds the transaction while the others queue up
        audit.record(session, "test.unit", actor=ACTOR, detail="unit first")
        return "first"

    with ThreadPoolExecutor(max_workers=21) as pool:
        leader = pool.submit(gw.store.batched, slow_first)
        assert first_running.wait(10)
        followers = [pool.submit(gw.store.batched, writer(n)) for n in range(20)]
        while len(group._queue) < 20:  # every follower is waiting for the leader's commit
            threading.Event().wait(0.01)
        release_first.set()
        assert leader.result(10) == "first"
        assert sorted(f.result(10) for f in followers) == list(range(20))
    assert details(gw) == sorted(["unit first"] + [f"unit {n:03d}" for n in range(20)])
    # The first commit carried the leader alone; the twenty behind it went in one more.
    assert (group.batches, group.units) == (2, 21)
    with gw.store.reading() as session:
        assert audit_chain.verify(session).ok


def test_a_unit_that_fails_fails_alone_and_leaves_nothing_behind(gw):
    first_running, release_first = threading.Event(), threading.Event()

    def slow_first(session):
        first_running.set()
        release_first.wait(10)
        return "first"

    def bad(session):
        audit.record(session, "test.unit", actor=ACTOR, detail="unit bad")
        raise ValueError("this unit cannot be written")

    with ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(gw.store.batched, slow_first)
        assert first_running.wait(10)
        good = [pool.submit(gw.store.batched, writer(n)) for n in range(3)]
        failing = pool.submit(gw.store.batched, bad)
        good += [pool.submit(gw.store.batched, writer(n)) for n in range(3, 6)]
        while len(gw.store.group._queue) < 7:
            threading.Event().wait(0.01)
        release_first.set()
        assert leader.result(10) == "first"
        assert sorted(f.result(10) for f in good) == list(range(6))
        with pytest.raises(ValueError, match="cannot be written"):
            failing.result(10)
    assert details(gw) == [f"unit {n:03d}" for n in range(6)]
    with gw.store.reading() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 6
        assert audit_chain.verify(session).ok


def test_many_threads_writing_at_once_all_commit_on_an_intact_chain(gw):
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda n: gw.store.batched(writer(n)), range(200)))
    assert sorted(results) == list(range(200))
    assert details(gw) == [f"unit {n:03d}" for n in range(200)]
    assert gw.store.group.units == 200
    with gw.store.reading() as session:
        assert audit_chain.verify(session).ok


def test_a_listener_that_writes_again_is_told_after_the_commit_and_does_not_block_the_writers(gw):
    """An exchange_event observer may send a follow-up (a note back into the ECD): it is told once
    the thread that led the commit leads no more, so its own write gets a commit of its own."""
    followed_up = []

    def listener(events):
        for event in events:
            if event == "melding delivered":
                followed_up.append(gw.store.batched(writer(99)))

    def delivered(session):
        audit.record(session, "test.unit", actor=ACTOR, detail="unit delivered")
        session.info.setdefault("exchange_events", []).append("melding delivered")
        return "delivered"

    gw.store.listeners.append(listener)
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(gw.store.batched, delivered).result(10) == "delivered"
    assert followed_up == [99]
    assert details(gw) == ["unit 099", "unit delivered"]


def test_a_unit_that_starts_another_write_fails_loudly_instead_of_waiting_for_itself(gw):
    def nested(session):
        return gw.store.batched(writer(1))

    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(RuntimeError, match="may not start another write"):
            pool.submit(gw.store.batched, nested).result(10)
    assert details(gw) == []


class Interrupted(BaseException):
    """Stands in for KeyboardInterrupt or SystemExit arriving mid-commit."""


def test_an_interrupted_batch_answers_every_unit_and_none_is_told_it_was_written(gw):
    first_running, release_first = threading.Event(), threading.Event()

    def slow_first(session):
        first_running.set()
        release_first.wait(10)
        return "first"

    def interrupted(session):
        audit.record(session, "test.unit", actor=ACTOR, detail="unit interrupted")
        raise Interrupted()

    with ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(gw.store.batched, slow_first)
        assert first_running.wait(10)
        others = [pool.submit(gw.store.batched, unit) for unit in (writer(1), interrupted, writer(2))]
        while len(gw.store.group._queue) < 3:
            threading.Event().wait(0.01)
        release_first.set()
        assert leader.result(10) == "first"
        outcomes = []
        for future in others:
            try:
                outcomes.append(future.result(10))
            except (Interrupted, RuntimeError) as exc:
                outcomes.append(type(exc).__name__)
    # The thread that led the interrupted batch sees the interruption; the others are told their
    # unit was not written; nothing of the batch is in the store, and a later write still commits.
    assert sorted(map(str, outcomes)) == ["Interrupted", "RuntimeError", "RuntimeError"]
    assert details(gw) == []
    assert gw.store.batched(writer(3)) == 3
    with gw.store.reading() as session:
        assert audit_chain.verify(session).ok


# --- the writer on the event loop (SQLite only: PostgreSQL's store keeps its writer thread) ------------


@pytest.fixture
def sqlite_gw(tmp_path):
    gateway = Gateway(make_settings(f"sqlite:///{tmp_path / 'gateway.db'}", tmp_path))
    upgrade(gateway.store.url)
    yield gateway
    gateway.store.dispose()


@pytest.mark.postgres
def test_a_postgresql_store_does_not_attach_to_the_event_loop(postgres_url, tmp_path):
    gateway = Gateway(make_settings(postgres_url, tmp_path))

    async def main():
        gateway.store.group.attach(asyncio.get_running_loop())
        try:
            gateway.store.group.refuse_blocking_write()  # nothing to refuse: writes go to the writer thread
        finally:
            await gateway.store.group.detach()

    asyncio.run(main())
    gateway.store.dispose()


def test_on_its_event_loop_the_group_commit_runs_units_there_and_commits_concurrent_ones_together(sqlite_gw):
    gw = sqlite_gw
    group = gw.store.group
    loop_thread = []

    def unit(n):
        def write(session):
            loop_thread.append(threading.get_ident())
            audit.record(session, "test.unit", actor=ACTOR, detail=f"unit {n:03d}")
            return n
        return write

    async def main():
        group.attach(asyncio.get_running_loop())
        try:
            results = await asyncio.gather(*(gw.store.batched_async(unit(n)) for n in range(50)))
        finally:
            await group.detach()
        return results

    assert asyncio.run(main()) == list(range(50))
    assert set(loop_thread) == {threading.get_ident()}  # asyncio.run ran the loop on this thread
    assert details(gw) == [f"unit {n:03d}" for n in range(50)]
    assert group.units == 50 and group.batches < 50
    with gw.store.reading() as session:
        assert audit_chain.verify(session).ok


def while_another_process_writes(gw: Gateway, body):
    """Run ``await body(lock)`` on an event loop the group commit is attached to, while a second
    gateway process holds the write lock: the same advisory lock file, opened apart. The body lets
    go of it (``lock.release``) when it wants the other process done."""
    other_process = _WriterLock(f"{make_url(gw.store.url).database}.writelock")
    other_process.acquire()

    async def main():
        gw.store.group.attach(asyncio.get_running_loop())
        try:
            return await body(other_process)
        finally:
            await gw.store.group.detach()
            other_process.close()

    return asyncio.run(main())


def test_on_its_event_loop_units_queued_while_another_process_writes_go_in_one_batch_once_it_is_done(sqlite_gw):
    gw = sqlite_gw

    async def body(other_process):
        first = asyncio.ensure_future(gw.store.batched_async(writer(0)))
        await asyncio.sleep(0.05)  # the first unit is waiting for the lock
        rest = [asyncio.ensure_future(gw.store.batched_async(writer(n))) for n in range(1, 10)]
        await asyncio.sleep(0.05)
        assert not first.done()  # nothing is written while the other process holds the lock
        await asyncio.to_thread(other_process.release)
        return await asyncio.gather(first, *rest)

    assert while_another_process_writes(gw, body) == list(range(10))
    assert details(gw) == [f"unit {n:03d}" for n in range(10)]
    # The ten units came while the lock was taken: one batch, one hold of the lock.
    assert (gw.store.group.units, gw.store.group.batches) == (10, 1)


def test_on_its_event_loop_a_writer_stopped_while_waiting_for_the_lock_tells_its_units_they_were_not_written(sqlite_gw):
    gw = sqlite_gw

    async def body(other_process):
        waiting = asyncio.ensure_future(gw.store.batched_async(writer(1)))
        await asyncio.sleep(0.05)
        gw.store.group._drain.cancel()  # as at shutdown
        with pytest.raises(RuntimeError, match="not written"):
            await waiting
        await asyncio.to_thread(other_process.release)
        return await gw.store.batched_async(writer(2))  # the lock it got meanwhile was let go of

    assert while_another_process_writes(gw, body) == 2
    assert details(gw) == ["unit 002"]


def test_on_its_event_loop_a_write_lock_that_cannot_be_taken_is_the_error_of_every_unit_waiting_for_it(sqlite_gw,
                                                                                                          monkeypatch):
    gw = sqlite_gw
    lock = gw.store.write_lock
    failures = [OSError(37, "No locks available")]  # what flock can say, on a network file system
    try_acquire = lock.try_acquire

    def failing_once() -> bool:
        if failures:
            raise failures.pop()
        return try_acquire()

    monkeypatch.setattr(lock, "try_acquire", failing_once)

    async def main():
        gw.store.group.attach(asyncio.get_running_loop())
        try:
            failed = await asyncio.wait_for(asyncio.gather(*(gw.store.batched_async(writer(n)) for n in range(3)),
                                                           return_exceptions=True), timeout=10)
            return failed, await gw.store.batched_async(writer(9))  # the next write takes the lock again
        finally:
            await gw.store.group.detach()

    failed, later = asyncio.run(main())
    assert [type(outcome) for outcome in failed] == [OSError] * 3
    assert later == 9
    assert details(gw) == ["unit 009"]


def test_on_its_event_loop_a_failing_unit_fails_alone_and_a_blocking_write_is_refused(sqlite_gw):
    gw = sqlite_gw

    def bad(session):
        audit.record(session, "test.unit", actor=ACTOR, detail="unit bad")
        raise ValueError("this unit cannot be written")

    async def main():
        gw.store.group.attach(asyncio.get_running_loop())
        try:
            outcomes = await asyncio.gather(gw.store.batched_async(writer(1)), gw.store.batched_async(bad),
                                            gw.store.batched_async(writer(2)), return_exceptions=True)
            with pytest.raises(RuntimeError, match="would wait for itself"):
                gw.store.batched(writer(3))
            # Another thread still writes, through the writer thread, beside the loop's writes.
            from_thread = await asyncio.to_thread(gw.store.batched, writer(4))
        finally:
            await gw.store.group.detach()
        return outcomes, from_thread

    outcomes, from_thread = asyncio.run(main())
    assert outcomes[0] == 1 and outcomes[2] == 2 and isinstance(outcomes[1], ValueError)
    assert from_thread == 4
    assert details(gw) == ["unit 001", "unit 002", "unit 004"]
    assert gw.store.batched(writer(5)) == 5  # detached: the loop's thread may block on a write again


def test_a_key_taken_meanwhile_fails_only_its_own_unit_of_a_shared_batch(gw, monkeypatch):
    """On PostgreSQL the idempotency answers of a batch go to the server as one statement; one key
    that turns out taken makes the batch run again unit by unit, where only its unit fails."""
    from gateway.core import idempotency
    from gateway.core.sql import InsertUnlessTaken

    piped: list[int] = []
    send_many = InsertUnlessTaken.send_many
    monkeypatch.setattr(InsertUnlessTaken, "send_many",
                        lambda self, bind, params: piped.append(len(params)) or send_many(self, bind, params))

    def answer(key: str):
        def unit(session):
            idempotency.store_answer(session, "test-source", key, "sha256:same", 202, {"key": key},
                                     "application/json", None)
            audit.record(session, "test.unit", actor=ACTOR, detail=f"answer {key}")
            return key
        return unit

    gw.store.batched(answer("k-taken"))
    first, taken, second = gw.store.group.run_many([answer("k-1"), answer("k-taken"), answer("k-2")])
    assert (first.result(), second.result()) == ("k-1", "k-2")
    with pytest.raises(idempotency.Taken):
        taken.result()
    assert details(gw) == ["answer k-1", "answer k-2", "answer k-taken"]  # the second k-taken left nothing
    stored = idempotency.lookup(gw.store, "test-source", "k-taken", "sha256:same")
    assert stored is not None and stored.body == {"key": "k-taken"}
    assert piped == ([3] if gw.store.is_postgres else [])  # tried as one statement first, on PostgreSQL only


# The partner a re-checked message is for: the consents below are for any webhook partner.
WEBHOOK_PARTNER = SimpleNamespace(id="partner-a", connector_type="webhook")


def test_a_consent_withdrawn_before_a_shared_batch_commits_refuses_only_what_relies_on_it(gw):
    """On PostgreSQL a batch's consent re-checks are read (under a share lock) as one pipeline just
    before the commit; a consent no longer valid then makes the batch run unit by unit, and only
    the message relying on it is refused."""
    from types import SimpleNamespace

    from gateway.core import consent as consents

    def given(client: str) -> str:
        with gw.store.transaction() as session:
            data = consents.ConsentIn(client_id=client, partner_kind="webhook", purpose="signalering",
                                      evidence_reference="test: fictief formulier")
            return consents.record(session, data, gw.pseudonymise(client), ACTOR).id

    kept, withdrawn = given("C-7001"), given("C-7002")
    with gw.store.transaction() as session:
        consents.withdraw(session, withdrawn, "cliënt trekt toestemming in", ACTOR)

    def recheck(consent_id: str):
        exchange = SimpleNamespace(route_id="webhook.notice", legal_basis="toestemming", consent_id=consent_id)
        return lambda session: gw.policy.recheck(session, exchange, WEBHOOK_PARTNER)

    first, refused, last = (ticket.result() for ticket in gw.store.group.run_many(
        [recheck(kept), recheck(withdrawn), recheck(kept)]))
    assert first.allowed and last.allowed and first.consent_id == kept
    assert not refused.allowed and "withdrawn" in refused.reason



@pytest.mark.postgres
def test_on_postgresql_a_batch_reads_each_consent_it_rechecks_once_and_every_unit_still_decides(postgres_url, tmp_path,
                                                                                                  monkeypatch):
    """A batch's messages about one client re-check the same consent: it is read (under its share
    lock) once, and each unit's check is made on that row — the kept consent lets its units through
    and the withdrawn one still sends its unit to run alone and be refused."""
    from types import SimpleNamespace

    from gateway.core import consent as consents
    from gateway.core import policy
    from gateway.core.sql import Statement

    gateway = Gateway(make_settings(postgres_url, tmp_path))
    upgrade(gateway.store.url)
    ids = {}
    for client in ("C-7101", "C-7102"):
        with gateway.store.transaction() as session:
            data = consents.ConsentIn(client_id=client, partner_kind="webhook", purpose="signalering",
                                      evidence_reference="test: fictief formulier")
            ids[client] = consents.record(session, data, gateway.pseudonymise(client), ACTOR).id
    kept, withdrawn = ids["C-7101"], ids["C-7102"]
    sent: list[int] = []
    send_many = Statement.send_many

    def counted(statement, bind, params):
        if statement is policy._CONSENT_SHARED:
            sent.append(len(params))
        return send_many(statement, bind, params)

    monkeypatch.setattr(Statement, "send_many", counted)

    def recheck(consent_id: str):
        exchange = SimpleNamespace(route_id="webhook.notice", legal_basis="toestemming", consent_id=consent_id)
        return lambda session: gateway.policy.recheck(session, exchange, WEBHOOK_PARTNER)

    try:
        decisions = [ticket.result() for ticket in gateway.store.group.run_many([recheck(kept)] * 5)]
        assert all(decision.allowed for decision in decisions)
        assert sent == [1]  # five checks, one read

        with gateway.store.transaction() as session:
            consents.withdraw(session, withdrawn, "cliënt trekt toestemming in", ACTOR)
        sent.clear()
        decisions = [ticket.result() for ticket in gateway.store.group.run_many(
            [recheck(kept), recheck(withdrawn), recheck(kept), recheck(withdrawn)])]
        assert [decision.allowed for decision in decisions] == [True, False, True, False]
        assert sent[0] == 2  # two consents read once each; then each unit ran alone
    finally:
        gateway.store.dispose()