"""The pipeline hands a message it accepts on the event loop straight to its process's delivery
worker when a slot is free: the commit that queues it also marks it sending, after the checks a
claim would make, and the attempt starts with what the pipeline already holds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.auth import Principal
from gateway.core.consent import withdraw
from gateway.core.models import AuditEntry, Exchange, OutboxItem, Transition
from gateway.core.outbox import start_now
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from gateway.core.store import upgrade
from tests.conftest import grant_consent
from tests.helpers import notice

WORKER = Principal("t-1", "test-hulpverlener", "hulpverlener")


class FakeWorker:
    """Stands in for the delivery worker: says whether it has a slot, and keeps what it is given."""

    owner = "test-host:1:fake"
    running = True

    def __init__(self, free: bool = True) -> None:
        self.free = free
        self.reserved: list[str] = []
        self.released: list[str] = []
        self.started: list[Any] = []

    def reserve(self, partner_id: str) -> bool:
        if self.free:
            self.reserved.append(partner_id)
        return self.free

    def unreserve(self, partner_id: str) -> None:
        self.released.append(partner_id)

    def start(self, attempt: Any) -> None:
        self.started.append(attempt)

    def wake(self) -> None:
        pass


@pytest.fixture
def gw(settings):
    gateway = Gateway(settings)
    upgrade(gateway.store.url)
    with gateway.store.transaction() as session:
        partner_registry.create(session, partner_registry.PartnerIn(
            id="partner-a", connector_type="webhook", name="Partner A", endpoint="http://127.0.0.1:9/inbox"),
            gateway.registry.connectors["webhook"].manifest, gateway.box, audit.Actor.system("test"))
    yield gateway
    gateway.store.dispose()


def accept(gw: Gateway, worker: FakeWorker, reference: str) -> Any:
    gw.workers.append(worker)
    try:
        return asyncio.run(gw.pipeline.submit_async("webhook.notice", json.dumps(notice(reference)).encode(),
                                                    "application/json", WORKER))
    finally:
        gw.workers.remove(worker)


def stored(gw: Gateway, exchange_id: str) -> tuple[Any, Any, list[str], list[str]]:
    with gw.store.reading() as session:
        exchange = session.get(Exchange, exchange_id)
        item = session.get(OutboxItem, exchange_id)
        steps = list(session.scalars(select(Transition.to_state).where(Transition.exchange_id == exchange_id)
                                     .order_by(Transition.id)))
        events = list(session.scalars(select(AuditEntry.event_type).where(AuditEntry.exchange_id == exchange_id)
                                      .order_by(AuditEntry.seq)))
        return exchange, item, steps, events


def test_with_a_slot_free_the_commit_that_queues_a_message_marks_it_sending_and_the_attempt_starts(gw):
    grant_consent(gw, "C-1001", partner_id="partner-a")
    worker = FakeWorker()
    answer = accept(gw, worker, "r-now")
    assert answer.status == 202 and answer.body["state"] == "queued"
    exchange_id = answer.body["exchange_id"]
    exchange, item, steps, events = stored(gw, exchange_id)
    assert steps == ["received", "validated", "authorised", "queued", "sending"]
    assert events == ["exchange.received", "exchange.validated", "exchange.authorised", "exchange.queued",
                      "exchange.sending"]
    assert (exchange.state, exchange.attempts) == ("sending", 1)
    # Leased to the worker like a claimed message: if this process dies, the lease runs out and
    # another worker takes it over as an attempt whose outcome is unknown.
    assert item.lease_owner == worker.owner and item.lease_until is not None
    (attempt,) = worker.started
    assert (attempt.exchange_id, attempt.attempt, attempt.partner.id) == (exchange_id, 1, "partner-a")
    assert json.loads(attempt.body)["reference"] == "r-now"
    assert attempt.idempotency_key == f"schakel-{exchange_id}"
    assert worker.reserved == ["partner-a"] and worker.released == []


def test_without_a_free_slot_the_message_waits_for_a_claim(gw):
    grant_consent(gw, "C-1001", partner_id="partner-a")
    worker = FakeWorker(free=False)
    exchange_id = accept(gw, worker, "r-later").body["exchange_id"]
    exchange, item, steps, _ = stored(gw, exchange_id)
    assert steps[-1] == "queued" and exchange.state == "queued" and item.lease_owner is None
    assert worker.started == []


@pytest.mark.parametrize("paused", ["partner", "connector"])
def test_a_paused_partner_or_connector_keeps_the_message_queued_and_the_slot_is_given_back(gw, paused):
    grant_consent(gw, "C-1001", partner_id="partner-a")
    with gw.store.transaction() as session:
        if paused == "partner":
            partner_registry.set_partner_state(session, partner_registry.get(session, "partner-a"), "paused",
                                               "onderhoud", audit.Actor.system("test"))
        else:
            partner_registry.set_connector_state(session, "webhook", "paused", "onderhoud", audit.Actor.system("test"))
    worker = FakeWorker()
    exchange_id = accept(gw, worker, "r-paused").body["exchange_id"]
    exchange, item, _, _ = stored(gw, exchange_id)
    assert exchange.state == "queued" and item.lease_owner is None
    assert worker.started == [] and worker.released == ["partner-a"]


@pytest.mark.parametrize("writer", ["on-the-loop", "thread"])
def test_a_request_cancelled_while_its_write_is_queued_still_has_its_attempt_started(gw, writer):
    """The request goes away (cancelled) but the write it queued commits all the same: the message
    marked sending and leased to this process must not wait for its lease to run out (and then go
    as an attempt whose outcome is unknown), and what was committed is still told."""
    grant_consent(gw, "C-1001", partner_id="partner-a")
    worker = FakeWorker()
    heard: list[Any] = []
    gw.store.listeners.append(heard.extend)
    gw.workers.append(worker)

    async def cancelled_request() -> None:
        if writer == "on-the-loop":
            gw.store.group.attach(asyncio.get_running_loop())
        try:
            request = asyncio.create_task(gw.pipeline.submit_async(
                "webhook.notice", json.dumps(notice("r-gone")).encode(), "application/json", WORKER))
            await asyncio.sleep(0)  # it has read, checked and queued its write
            assert not request.done()
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            for _ in range(500):
                if worker.started:
                    break
                await asyncio.sleep(0.01)
        finally:
            if writer == "on-the-loop":
                await gw.store.group.detach()

    try:
        asyncio.run(cancelled_request())
    finally:
        gw.workers.remove(worker)
    (attempt,) = worker.started
    exchange, item, steps, _ = stored(gw, attempt.exchange_id)
    assert steps[-1] == "sending" and item.lease_owner == worker.owner
    assert worker.released == []  # its slot is the attempt's
    assert [event.to_state for event in heard if event.exchange_id == attempt.exchange_id][-1] == "sending"


def test_a_hand_off_is_decided_afresh_when_its_unit_runs_again(database_url, tmp_path):
    """Found in review: a group commit that gives up a batch runs its units again one by one. A
    message on an ordered route handed to the worker in the first run, whose client meanwhile has
    another message pending, must not keep that first run's attempt (it would be sent unleased,
    beside the claim of the other)."""
    from tests.conftest import make_settings
    from tests.helpers import ordered_notice_route

    settings = make_settings(database_url, tmp_path, routes_file=str(ordered_notice_route(tmp_path)))
    gateway = Gateway(settings)
    upgrade(gateway.store.url)
    try:
        with gateway.store.transaction() as session:
            partner_registry.create(session, partner_registry.PartnerIn(
                id="partner-a", connector_type="webhook", name="Partner A", endpoint="http://127.0.0.1:9/inbox"),
                gateway.registry.connectors["webhook"].manifest, gateway.box, audit.Actor.system("test"))
        grant_consent(gateway, "C-1001", partner_id="partner-a")
        body = json.dumps(notice("r-rerun")).encode()
        prepared = gateway.pipeline._prepare("webhook.notice-ordered", body, "application/json", WORKER, None, None,
                                             None, False, None, FakeWorker())

        class GivenUp(Exception):
            pass

        with pytest.raises(GivenUp), gateway.store.transaction() as session:
            prepared.persist(session)
            assert prepared.sending.attempt is not None  # the first run hands it to the worker
            raise GivenUp  # the batch is given up: nothing of it is written
        gateway.workers.append(FakeWorker(free=False))
        other = asyncio.run(gateway.pipeline.submit_async("webhook.notice-ordered",
                                                          json.dumps(notice("r-other")).encode(),
                                                          "application/json", WORKER))
        assert other.status == 202  # queued for a claim: now the client has a message pending
        with gateway.store.transaction() as session:
            prepared.persist(session)
        assert prepared.sending.attempt is None
    finally:
        gateway.store.dispose()


def test_the_hand_off_checks_the_basis_again_inside_its_own_transaction(gw):
    """What a claim would find, the hand-off finds: a consent withdrawn after the message was
    authorised keeps it from being marked sending (the claim then refuses it)."""
    consent_id = grant_consent(gw, "C-1001", partner_id="partner-a")
    exchange_id = accept(gw, FakeWorker(free=False), "r-withdrawn").body["exchange_id"]
    with gw.store.transaction() as session:
        withdraw(session, consent_id, "cliënt trekt toestemming in", audit.Actor("t", "hulpverlener"))
    with gw.store.reading() as session:
        exchange = session.get(Exchange, exchange_id)
        partner = partner_registry.find(session, "partner-a")
        draft = type("Draft", (), {c.key: getattr(exchange, c.key) for c in Exchange.__table__.columns})()
    draft.state = "queued"  # as the hand-off sees it, in the transaction that queues it
    with gw.store.transaction() as session:
        assert start_now(gw, session, draft, partner, b"{}", partner_registry.view(partner, gw.box)) is None


def test_the_look_ups_before_a_message_is_accepted_are_prefetched_and_each_answer_is_the_one_read(gw, monkeypatch):
    """Whether the key was answered before, the partner and the consent: on PostgreSQL the three
    go to the server as one pipeline, and each module then reads exactly what was prefetched for
    it (none is left over, none read again). On SQLite nothing is prefetched."""
    import gateway.core.pipeline as pipeline_module

    grant_consent(gw, "C-1001", partner_id="partner-a")
    seen: list[tuple[Any, list[Any], int]] = []
    real_prefetch = pipeline_module.prefetch

    def watched(bind, reads):
        reads = list(reads)
        real_prefetch(bind, reads)
        seen.append((bind, reads, len(bind.prefetched)))

    monkeypatch.setattr(pipeline_module, "prefetch", watched)
    answer = asyncio.run(gw.pipeline.submit_async("webhook.notice", json.dumps(notice("r-pre")).encode(),
                                                  "application/json", WORKER, idempotency_key="k-pre"))
    assert answer.status == 202 and answer.body["state"] == "queued"
    ((bind, reads, prefetched),) = seen
    assert sorted(read.statement.statement.get_final_froms()[0].name for read in reads) == [
        "consents", "inbound_requests", "partners"]
    assert prefetched == (3 if gw.store.dialect == "postgresql" else 0)
    assert bind.prefetched == {}


@pytest.mark.parametrize("shape", ["names its partner", "routed by an attribute", "the only partner of its kind",
                                   "no attribute to route by"])
def test_the_partner_look_up_prefetched_is_the_one_the_pipeline_makes_for_every_kind_of_route(gw, monkeypatch, shape):
    """_partner_reads mirrors _resolve_partner's choice of look-up; were the two to drift apart, the
    prefetched rows would go unread and the look-up would wait for the server after all."""
    from types import SimpleNamespace

    from gateway.core import sql

    route = SimpleNamespace(target="webhook", partner_attribute=None if shape in (
        "names its partner", "the only partner of its kind") else "gemeentecode")
    parsed = SimpleNamespace(partner_id="partner-a" if shape == "names its partner" else None,
                             attributes={"gemeentecode": "0384"} if shape == "routed by an attribute" else {})
    made: list[Any] = []
    real_all = sql.Read.all

    def recorded(read, bind):
        made.append(read.key)
        return real_all(read, bind)

    monkeypatch.setattr(sql.Read, "all", recorded)
    with gw.store.reading_rows() as bind:
        try:
            gw.pipeline._resolve_partner(bind, route, parsed)
        except Problem as refused:  # no partner serves it here: the look-up was made all the same
            assert refused.slug == "no-partner"
    assert made == [read.key for read in gw.pipeline._partner_reads(route, parsed)]
    assert made or shape == "no attribute to route by"


def test_a_write_that_fails_with_a_cancellation_of_its_own_gives_the_worker_slot_back(gw, monkeypatch):
    """Not every CancelledError is this request being cancelled: one the unit itself raised is its
    failure, and nothing follows it that would give the slot back."""
    from gateway.core import pipeline

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise asyncio.CancelledError()

    grant_consent(gw, "C-1001", partner_id="partner-a")
    monkeypatch.setattr(pipeline, "queue_insert", interrupted)
    worker = FakeWorker()
    with pytest.raises(asyncio.CancelledError):
        accept(gw, worker, "r-interrupted")
    assert worker.reserved == ["partner-a"] and worker.released == ["partner-a"] and worker.started == []
