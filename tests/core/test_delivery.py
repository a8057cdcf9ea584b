"""Delivery through the outbox when partners fail, stall, refuse or are paused."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from gateway.builtin.webhook.simulator import create_app as create_sink
from tests.conftest import grant_consent
from tests.helpers import eventually, exchange_state, notice, ordered_notice_route, sink_control, sink_stats, submit
from tests.servers import ROOT, ThreadServer


def _detail(client, exchange_id):
    return client.get(f"/api/v1/exchanges/{exchange_id}").json()


def test_a_partner_answering_503_for_a_while_gets_the_message_after_it_recovers(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="status", status=503, count=4)
    with live_gateway.client("hulpverlener") as client:
        exchange_id = submit(client, notice("r-503")).json()["exchange_id"]
        eventually(lambda: exchange_state(client, exchange_id) == "delivered")
        detail = _detail(client, exchange_id)
    assert detail["attempts"] == 5
    failed = [step for step in detail["timeline"] if step["to_state"] == "failed"]
    assert len(failed) == 4 and all(step["reason"] == "HTTP 503 from partner" for step in failed)
    assert sink_stats(sink.url) == {"unique": 1, "duplicates": 0, "requests": 5}


def test_a_partner_answering_422_forever_dead_letters_the_message_which_can_be_replayed(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="status", status=422)
    with live_gateway.client("beheerder") as client:
        exchange_id = submit(client, notice("r-422")).json()["exchange_id"]
        eventually(lambda: exchange_state(client, exchange_id) == "dead")
        dead = client.get("/api/v1/dead-letters").json()["items"]
        assert [(d["id"], d["last_error"]) for d in dead] == [(exchange_id, "HTTP 422 from partner")]
        assert sink_stats(sink.url)["unique"] == 0

        sink_control(sink.url, mode="ok")
        replayed = client.post(f"/api/v1/exchanges/{exchange_id}/replay", json={"reason": "partner fixed its schema"})
        assert replayed.status_code == 200 and replayed.json()["state"] == "queued"
        eventually(lambda: exchange_state(client, exchange_id) == "delivered")
        states = [step["to_state"] for step in _detail(client, exchange_id)["timeline"]]
        again = client.post(f"/api/v1/exchanges/{exchange_id}/replay", json={"reason": "twice"})
    assert states[-5:] == ["dead", "replayed", "queued", "sending", "delivered"]
    assert again.status_code == 409 and again.json()["type"] == "/problems/state-conflict"
    assert sink_stats(sink.url)["unique"] == 1


def test_a_dead_letter_says_so_when_the_partner_may_have_the_message_after_all(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="late", delay=3, count=1)  # applied, but answered after the attempt deadline
    with live_gateway.client("beheerder") as client:
        maybe = submit(client, notice("r-late-then-422")).json()["exchange_id"]
        # While the partner sits on its late answer, it starts refusing: the retry is refused for certain.
        eventually(lambda: sink_stats(sink.url)["requests"] == 1)
        sink_control(sink.url, mode="status", status=422)
        eventually(lambda: exchange_state(client, maybe) == "dead", timeout=30)
        never = submit(client, notice("r-422-only")).json()["exchange_id"]
        eventually(lambda: exchange_state(client, never) == "dead")
        warned, plain = _detail(client, maybe)["state_reason"], _detail(client, never)["state_reason"]
    assert warned.startswith("HTTP 422 from partner; an earlier attempt's outcome unknown")
    assert "may have this message" in warned and "same Idempotency-Key" in warned
    assert plain == "HTTP 422 from partner"  # every attempt failed for certain: nothing to warn about
    assert sink_stats(sink.url)["unique"] == 1  # the partner does have the first one


def test_many_dead_letters_are_replayed_at_once_by_api(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="status", status=400)
    with live_gateway.client("beheerder") as client:
        ids = [submit(client, notice(f"r-many-{i}")).json()["exchange_id"] for i in range(5)]
        eventually(lambda: all(exchange_state(client, i) == "dead" for i in ids))
        sink_control(sink.url, mode="ok")
        answer = client.post("/api/v1/dead-letters/replay", json={"all": True, "reason": "partner back"}).json()
        assert sorted(answer["replayed"]) == sorted(ids) and answer["skipped"] == []
        eventually(lambda: all(exchange_state(client, i) == "delivered" for i in ids))
    assert sink_stats(sink.url)["unique"] == 5


def test_a_message_that_always_fails_does_not_hold_up_the_others(live_gateway, sink):
    with ThreadServer(create_sink(), ready_path="/_stats") as broken:
        sink_control(broken.url, mode="status", status=503)
        live_gateway.add_partner("broken", broken.url + "/inbox")
        live_gateway.add_partner("partner-a", sink.url + "/inbox")
        with live_gateway.client("hulpverlener") as client:
            stuck = submit(client, notice("r-stuck", partner="broken")).json()["exchange_id"]
            good = [submit(client, notice(f"r-good-{i}")).json()["exchange_id"] for i in range(20)]
            eventually(lambda: all(exchange_state(client, i) == "delivered" for i in good), timeout=15)
            assert exchange_state(client, stuck) in {"failed", "sending", "queued"}


def test_a_partner_that_trickles_its_answer_holds_a_worker_only_until_the_deadline(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="trickle", delay=0.5, count=1)
    deadline = live_gateway.gw.settings.attempt_deadline_seconds
    with live_gateway.client("hulpverlener") as client:
        started = time.monotonic()
        slow = submit(client, notice("r-trickle")).json()["exchange_id"]
        eventually(lambda: any(s["to_state"] == "failed" for s in _detail(client, slow)["timeline"]), timeout=deadline + 5)
        assert time.monotonic() - started < deadline + 3
        failed = next(s for s in _detail(client, slow)["timeline"] if s["to_state"] == "failed")
        assert "outcome unknown" in failed["reason"]
        eventually(lambda: exchange_state(client, slow) == "delivered")
    # The trickled attempt took effect; the retry carried the same Idempotency-Key and was absorbed.
    stats = sink_stats(sink.url)
    assert stats["unique"] == 1 and stats["duplicates"] >= 1


def test_every_attempt_carries_the_same_idempotency_key(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="late", delay=3, count=2)  # applied, but answered after the deadline
    with live_gateway.client("hulpverlener") as client:
        exchange_id = submit(client, notice("r-late")).json()["exchange_id"]
        eventually(lambda: exchange_state(client, exchange_id) == "delivered", timeout=30)
        key = _detail(client, exchange_id)["idempotency_key"]
    assert key == f"schakel-{exchange_id}"
    stats = sink_stats(sink.url)
    assert stats["unique"] == 1 and stats["duplicates"] == 2


@pytest.mark.parametrize("level", ["partner", "connector"])
def test_a_paused_partner_or_connector_holds_messages_and_they_flow_on_resume(live_gateway, sink, level):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    path = "/api/v1/partners/partner-a" if level == "partner" else "/api/v1/connectors/webhook"
    with live_gateway.client("beheerder") as admin:
        paused = admin.post(f"{path}/pause", json={"reason": "partner onderhoud"})
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        ids = [submit(admin, notice(f"r-pause-{i}")).json()["exchange_id"] for i in range(3)]
        eventually(lambda: all(exchange_state(admin, i) == "parked" for i in ids))
        time.sleep(0.5)
        assert sink_stats(sink.url)["requests"] == 0
        shown = admin.get(path).json()
        assert shown["parked"] == 3 and shown["state_reason"] == "partner onderhoud"
        resumed = admin.post(f"{path}/resume", json={"reason": "onderhoud klaar"})
        assert resumed.status_code == 200 and resumed.json()["state"] == "active"
        eventually(lambda: all(exchange_state(admin, i) == "delivered" for i in ids))
        twice = admin.post(f"{path}/resume", json={"reason": "nog eens"})
    assert twice.status_code == 409
    assert sink_stats(sink.url)["unique"] == 3


def test_pause_resume_and_replay_work_from_the_cli(live_gateway, sink, tmp_path):
    gw = live_gateway.gw
    env = {"GATEWAY_DATABASE_URL": gw.settings.database_url, "GATEWAY_DATA_DIR": str(tmp_path),
           "GATEWAY_ENCRYPTION_KEYS": ",".join(k.get_secret_value() for k in gw.settings.encryption_keys),
           "GATEWAY_PSEUDONYM_KEY": gw.settings.pseudonym_key.get_secret_value(),
           "GATEWAY_AUDIT_SIGNING_KEY": gw.settings.audit_signing_key.get_secret_value(),
           "GATEWAY_ENVIRONMENT": "test", "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    assert cli("partners", "pause", "partner-a", "--reason", "storing bij partner").returncode == 0
    with live_gateway.client("beheerder") as admin:
        held = submit(admin, notice("r-cli")).json()["exchange_id"]
        eventually(lambda: exchange_state(admin, held) == "parked")
        assert cli("partners", "resume", "partner-a", "--reason", "storing voorbij").returncode == 0
        eventually(lambda: exchange_state(admin, held) == "delivered")

        sink_control(sink.url, mode="status", status=410)
        dead = submit(admin, notice("r-cli-dead")).json()["exchange_id"]
        eventually(lambda: exchange_state(admin, dead) == "dead")
        sink_control(sink.url, mode="ok")
        replay = cli("dead-letters", "replay", "--reason", "partner hersteld")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "replayed 1, skipped 0" in replay.stdout
        eventually(lambda: exchange_state(admin, dead) == "delivered")
        shown = cli("exchanges", "show", dead)
    assert shown.returncode == 0 and "replayed" in shown.stdout
    assert cli("connectors", "pause", "nonexistent", "--reason", "xyz").returncode == 1

    # A dead letter whose consent was withdrawn meanwhile: not replayed, and the CLI says why.
    live_gateway.add_partner("partner-b", sink.url + "/inbox", consenting_clients=())
    consent_id = grant_consent(gw, "C-1001", partner_id="partner-b")
    sink_control(sink.url, mode="status", status=410)
    with live_gateway.client("hulpverlener") as worker:
        without = submit(worker, notice("r-cli-withdrawn", partner="partner-b")).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, without) == "dead")
        worker.post(f"/api/v1/consents/{consent_id}/withdraw", json={"reason": "ingetrokken"})
    sink_control(sink.url, mode="ok")
    refused = cli("exchanges", "replay", without, "--reason", "partner hersteld")
    assert refused.returncode == 1 and "replayed 0, skipped 1" in refused.stdout
    assert f"{without}: consent {consent_id} was withdrawn at" in " ".join(refused.stdout.split())


def _three_claimed_by_hand(live_gateway, sink, reference):
    """Three notices to one partner, claimed by the test instead of the stopped workers."""
    from gateway.core import outbox

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    for worker in live_gateway.gw.workers:
        worker._stop.set()
    eventually(lambda: not any(worker.running for worker in live_gateway.gw.workers))
    with live_gateway.client("hulpverlener") as client:
        ids = [submit(client, notice(f"{reference}-{i}")).json()["exchange_id"] for i in range(3)]
    attempts, _ = outbox.take(live_gateway.gw, "test-owner", 32, per_partner=32)
    return ids, attempts


def _timeline_reasons(client, exchange_id):
    return [step["reason"] or "" for step in _detail(client, exchange_id)["timeline"] if step["to_state"] == "failed"]


def test_a_partner_that_was_down_gets_its_waiting_messages_at_once_when_it_answers_again(live_gateway, sink):
    from gateway.core import outbox
    from gateway.core.connectors import DeliveryResult

    gw = live_gateway.gw
    ids, attempts = _three_claimed_by_hand(live_gateway, sink, "r-back")  # so that the back-off can be seen
    for attempt in attempts:
        # Retry-After: 1000 s (10 s at the tests' retry scale), so the back-off cannot run out here.
        busy = DeliveryResult("retry", "HTTP 503 from partner", 503, retry_after=1000)
        assert outbox.record(gw, attempt, busy) == "failed"
    assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)  # each waits out its back-off
    assert outbox.release_waiting(gw, "partner-a") == 3
    released, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
    assert sorted(attempt.exchange_id for attempt in released) == sorted(ids)


def test_a_stalling_partner_holds_only_its_share_of_the_slots_and_the_others_keep_flowing(database_url, tmp_path):
    from gateway.app import create_app
    from tests.conftest import LiveGateway, make_settings

    settings = make_settings(database_url, tmp_path, worker_concurrency=4, attempt_deadline_seconds=3)
    with ThreadServer(create_app(settings)) as server, ThreadServer(create_sink(), ready_path="/_stats") as slow, \
            ThreadServer(create_sink(), ready_path="/_stats") as fast:
        live = LiveGateway(server)
        live.add_partner("partner-slow", slow.url + "/inbox")
        live.add_partner("partner-fast", fast.url + "/inbox")
        sink_control(slow.url, mode="late", delay=30)  # applies, answers long after the deadline
        with live.client("hulpverlener") as client:
            slow_ids = [submit(client, notice(f"r-slow-{i}", partner="partner-slow")).json()["exchange_id"]
                        for i in range(10)]
            eventually(lambda: sink_stats(slow.url)["requests"] >= 2)
            fast_ids = [submit(client, notice(f"r-fast-{i}", partner="partner-fast")).json()["exchange_id"]
                        for i in range(5)]
            eventually(lambda: all(exchange_state(client, i) == "delivered" for i in fast_ids), timeout=30)
            # Served beside the slow partner's first two attempts (its share of four slots), not
            # after rounds of its ten taking every slot for a 3 s deadline each.
            assert sink_stats(slow.url)["requests"] <= 4
            assert all(exchange_state(client, i) != "delivered" for i in slow_ids)
            sink_control(slow.url, mode="ok")


def test_a_claim_gives_a_partner_no_more_than_what_is_left_of_its_share(live_gateway, sink):
    from gateway.core import outbox

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    for worker in live_gateway.gw.workers:  # claim by hand, not by the running worker
        worker._stop.set()
    eventually(lambda: not any(worker.running for worker in live_gateway.gw.workers))
    with live_gateway.client("hulpverlener") as client:
        for i in range(6):
            assert submit(client, notice(f"r-share-{i}")).status_code == 202
    attempts, claimed = outbox.take(live_gateway.gw, "test-owner", 32, per_partner=4, in_flight={"partner-a": 3})
    assert (len(attempts), claimed) == (1, 1)  # three already out: one more makes its share of four
    attempts, claimed = outbox.take(live_gateway.gw, "test-owner", 32, per_partner=4, in_flight={"partner-a": 4})
    assert (attempts, claimed) == ([], 0)
    attempts, claimed = outbox.take(live_gateway.gw, "test-owner", 32, per_partner=4, in_flight={})
    assert len(attempts) == 4


def _end_consent(gw, consent_id: str) -> None:
    """The consent's term ends (a second ago): the messages waiting on it are refused when a claim
    checks their basis again."""
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.core.models import Consent, utcnow

    with gw.store.transaction() as session:
        session.execute(update(Consent).where(Consent.id == consent_id).values(valid_to=utcnow() - timedelta(seconds=1)))


def test_a_claim_reports_a_partner_full_when_its_share_went_on_messages_refused_on_the_re_check(live_gateway, sink):
    """What a claim chose for a partner counts against its share whether or not it needed an
    attempt, and the worker is told the partner is full: it may have more due. Judged by the
    attempts alone, a claim whose choices were refused left the partner looking short of its share,
    and the worker waited for its poll before claiming the rest."""
    import asyncio

    from gateway.core import outbox
    from tests.conftest import CLIENT, grant_consent

    gw = live_gateway.gw
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    consent_id = grant_consent(gw, CLIENT, partner_id="partner-a")
    for worker in gw.workers:  # claim by hand, not by the running worker
        worker._stop.set()
    eventually(lambda: not any(worker.running for worker in gw.workers))
    with live_gateway.client("hulpverlener") as client:
        ids = [submit(client, notice(f"r-refused-{i}")).json()["exchange_id"] for i in range(3)]
        _end_consent(gw, consent_id)  # while the three wait in the outbox

        first = asyncio.run(outbox.take_async(gw, "test-owner", 32, per_partner=2, in_flight={}))
        assert (first.attempts, first.claimed, first.full) == ([], 2, frozenset({"partner-a"}))
        last = asyncio.run(outbox.take_async(gw, "test-owner", 32, per_partner=2, in_flight={}))
        assert (last.attempts, last.claimed, last.full) == ([], 1, frozenset())  # the third was still due
        assert [exchange_state(client, i) for i in ids] == ["refused"] * 3
        at_share = asyncio.run(outbox.take_async(gw, "test-owner", 32, per_partner=2, in_flight={"partner-a": 2}))
        assert at_share == ([], 0, frozenset({"partner-a"}))


def test_messages_refused_on_the_re_check_do_not_leave_the_rest_of_their_partners_backlog_waiting_for_the_poll(
        database_url, tmp_path):
    """The worker's side of the test above: a claim whose share for a partner went on messages
    refused at the re-check starts no attempt, so no slot frees up later to wake the worker; it
    claims the partner's other due messages at once instead of at its next poll."""
    import asyncio
    import time

    from gateway.app import create_app
    from gateway.core.delivery import DeliveryWorker
    from tests.conftest import CLIENT, LiveGateway, grant_consent, make_settings

    # Two slots a partner (a share of 0.5 of four), and a poll that the test would notice.
    settings = make_settings(database_url, tmp_path, worker_enabled=False, worker_concurrency=4,
                             worker_poll_interval=30)
    with ThreadServer(create_app(settings)) as server:
        live = LiveGateway(server)
        gw = live.gw
        live.add_partner("partner-a", "http://127.0.0.1:9/unused", consenting_clients=())
        consent_id = grant_consent(gw, CLIENT, partner_id="partner-a")
        with live.client("hulpverlener") as client:
            ids = [submit(client, notice(f"r-recheck-{i}")).json()["exchange_id"] for i in range(5)]
            _end_consent(gw, consent_id)  # while the five wait in the outbox

            async def run_worker_until_all_refused() -> float:
                worker = DeliveryWorker(gw)
                running = asyncio.create_task(worker.run())
                began = time.monotonic()
                try:
                    async with asyncio.timeout(40):
                        while not all(state == "refused" for state in
                                      await asyncio.to_thread(lambda: [exchange_state(client, i) for i in ids])):
                            await asyncio.sleep(0.05)
                    return time.monotonic() - began
                finally:
                    await worker.stop()
                    await asyncio.wait_for(running, timeout=5)

            # Three claims of at most two each, one after the other, not one per 30 s poll.
            assert asyncio.run(run_worker_until_all_refused()) < 5


@contextmanager
def _ordered_gateway_without_worker(database_url, tmp_path):
    """A gateway with the ordered notice route whose worker does not run (the test claims and
    records), a partner nobody answers at, and a worker's client; the gateway and that client."""
    from gateway.app import create_app
    from tests.conftest import LiveGateway, make_settings

    settings = make_settings(database_url, tmp_path, routes_file=str(ordered_notice_route(tmp_path)),
                             worker_enabled=False)
    with ThreadServer(create_app(settings)) as server:
        live = LiveGateway(server)
        live.add_partner("partner-a", "http://127.0.0.1:9/unused")
        with live.client("hulpverlener") as client:
            yield live.gw, client


def test_on_an_ordered_route_a_clients_next_message_waits_until_the_one_before_is_done(database_url, tmp_path):
    """Two WMO301s about one client must not be attempted at once: each reads the client's
    arrangements and then writes, and an older one could leave in force what a newer one ended."""
    from gateway.core import outbox
    from gateway.core.connectors import DeliveryResult

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        ids = [submit(client, notice(f"r-ordered-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(3)]
        plain = submit(client, notice("r-plain")).json()["exchange_id"]
        first, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        # The oldest of the client's ordered messages, and the unordered one beside it.
        assert sorted(attempt.exchange_id for attempt in first) == sorted([ids[0], plain])
        assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)  # the client's first is still out
        by_id = {attempt.exchange_id: attempt for attempt in first}
        assert outbox.record(gw, by_id[ids[0]], DeliveryResult("delivered", "ok", 200)) == "delivered"
        second, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert [attempt.exchange_id for attempt in second] == [ids[1]]


def test_on_an_ordered_route_a_clients_message_waiting_for_its_retry_holds_back_the_younger_ones(database_url, tmp_path):
    """A failed attempt reschedules the message, and a younger one of the same client is due
    before it: the younger one must still wait, or the partner gets the client's messages out of
    order (an older WMO301 written over a newer one)."""
    from sqlalchemy import update

    from gateway.core import outbox
    from gateway.core.connectors import DeliveryResult
    from gateway.core.models import OutboxItem, utcnow

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        ids = [submit(client, notice(f"r-ordered-retry-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(2)]
        (first,), _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert first.exchange_id == ids[0]
        assert outbox.record(gw, first, DeliveryResult("retry", "HTTP 503", 503)) == "failed"
        # The first waits for its retry, not leased and not due; the second is due.
        assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)
        with gw.store.transaction() as session:  # the retry falls due
            session.execute(update(OutboxItem).where(OutboxItem.exchange_id == ids[0]).values(due_at=utcnow()))
        again, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert [attempt.exchange_id for attempt in again] == [ids[0]]
        assert outbox.record(gw, again[0], DeliveryResult("delivered", "ok", 200)) == "delivered"
        last, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert [attempt.exchange_id for attempt in last] == [ids[1]]


def test_on_an_ordered_route_a_clients_older_message_waits_while_a_younger_one_is_out(database_url, tmp_path):
    """Two processes may accept a client's messages at nearly the same time, and the younger one's
    transaction can hand it to its worker before the older one's commits. The older one is then
    the client's oldest pending message, but must still wait until the younger one is back: never
    two of one client's messages out at once."""
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.core import outbox
    from gateway.core.models import OutboxItem, utcnow

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        ids = [submit(client, notice(f"r-ordered-out-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(2)]
        with gw.store.transaction() as session:  # the younger one out with another process's worker
            session.execute(update(OutboxItem).where(OutboxItem.exchange_id == ids[1]).values(
                lease_owner="other-host:2:worker", lease_until=utcnow() + timedelta(seconds=60)))
        assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)
        with gw.store.transaction() as session:  # its lease runs out: the older one goes first
            session.execute(update(OutboxItem).where(OutboxItem.exchange_id == ids[1]).values(
                lease_until=utcnow() - timedelta(seconds=1)))
        taken, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert [attempt.exchange_id for attempt in taken] == [ids[0]]


def test_on_an_ordered_route_the_messages_behind_a_clients_waiting_one_never_crowd_out_the_partners_others(
        database_url, tmp_path):
    """Found in review: a claim looks at each partner's first few due messages. A message back from
    its retry is due later than the younger ones of its client queued behind it; were those
    candidates, they would fill the partner's share, all be passed over, and nothing of the
    partner would be claimed again — not that message, nor another client's."""
    from sqlalchemy import update

    from gateway.core import outbox
    from gateway.core.connectors import DeliveryResult
    from gateway.core.models import OutboxItem, utcnow
    from tests.conftest import grant_consent

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        grant_consent(gw, "C-2002", partner_id="partner-a")
        ids = [submit(client, notice(f"r-ordered-crowd-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(3)]
        (first,), _ = outbox.take(gw, "test-owner", 32, per_partner=2)
        assert outbox.record(gw, first, DeliveryResult("retry", "HTTP 503", 503)) == "failed"
        other = submit(client, notice("r-ordered-crowd-other", client_id="C-2002"),
                       route="webhook.notice-ordered").json()["exchange_id"]
        with gw.store.transaction() as session:  # the retry falls due, after the two behind it
            session.execute(update(OutboxItem).where(OutboxItem.exchange_id == ids[0]).values(due_at=utcnow()))
        taken, _ = outbox.take(gw, "test-owner", 32, per_partner=2)
        assert sorted(attempt.exchange_id for attempt in taken) == sorted([ids[0], other])


def test_on_an_ordered_route_a_replayed_message_queues_behind_the_clients_pending_ones(database_url, tmp_path):
    """A dead letter replayed while a younger message of its client is out waits for it (never two
    of a client's messages out at once), and goes after what of theirs was already queued."""
    from gateway.core import audit, outbox
    from gateway.core.connectors import DeliveryResult

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        ids = [submit(client, notice(f"r-ordered-replay-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(3)]
        (first,), _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert outbox.record(gw, first, DeliveryResult("reject", "HTTP 422", 422)) == "dead"
        (second,), _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert second.exchange_id == ids[1]  # out
        assert outbox.replay_many(gw, [ids[0]], audit.Actor.system("test"), "mapping fixed")[0] == [ids[0]]
        assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)
        order, attempt = [], second
        while attempt is not None:  # one at a time, each once the one before is recorded
            order.append(attempt.exchange_id)
            assert outbox.record(gw, attempt, DeliveryResult("delivered", "ok", 200)) == "delivered"
            taken, _ = outbox.take(gw, "test-owner", 32, per_partner=32)
            assert len(taken) <= 1
            attempt = taken[0] if taken else None
        assert order == [ids[1], ids[2], ids[0]]


def test_on_an_ordered_route_a_clients_next_message_goes_as_soon_as_the_one_before_is_recorded(database_url, tmp_path):
    """Not at the worker's next poll: a recorded outcome on an ordered route wakes the worker,
    even after a claim that found the client busy and concluded nothing else was due."""
    from gateway.app import create_app
    from tests.conftest import LiveGateway, make_settings

    routes = ordered_notice_route(tmp_path)
    settings = make_settings(database_url, tmp_path, routes_file=str(routes), worker_poll_interval=60)
    with ThreadServer(create_app(settings)) as server, ThreadServer(create_sink(), ready_path="/_stats") as partner:
        live = LiveGateway(server)
        live.add_partner("partner-a", partner.url + "/inbox")
        with live.client("hulpverlener") as client:
            began = time.monotonic()
            ids = [submit(client, notice(f"r-ordered-now-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
                   for i in range(4)]
            eventually(lambda: all(exchange_state(client, i) == "delivered" for i in ids), timeout=50)
            assert time.monotonic() - began < 20  # one poll interval would be 60 s
        assert sink_stats(partner.url)["requests"] == 4


@contextmanager
def _ordered_gateway(database_url, tmp_path, monkeypatch):
    """A gateway with the ordered notice route, its worker running (polling only once a minute),
    a partner, and the claims its worker makes: how many messages each took."""
    from gateway.app import create_app
    from gateway.core import outbox
    from tests.conftest import LiveGateway, make_settings

    claimed: list[int] = []
    take = outbox._take
    monkeypatch.setattr(outbox, "_take", lambda *args, **kwargs: (found := take(*args, **kwargs)) and (
        claimed.append(found[1]) or found))
    # A deadline longer than the late answer below: its attempt must end delivered, not timed out.
    settings = make_settings(database_url, tmp_path, routes_file=str(ordered_notice_route(tmp_path)),
                             worker_poll_interval=60, attempt_deadline_seconds=15)
    with ThreadServer(create_app(settings)) as server, ThreadServer(create_sink(), ready_path="/_stats") as partner:
        live = LiveGateway(server)
        live.add_partner("partner-a", partner.url + "/inbox")
        with live.client("hulpverlener") as client:
            yield client, partner.url, claimed


def test_on_an_ordered_route_a_clients_only_pending_message_goes_to_the_worker_without_a_claim(
        database_url, tmp_path, monkeypatch):
    with _ordered_gateway(database_url, tmp_path, monkeypatch) as (client, partner, claimed):
        first = submit(client, notice("r-ordered-alone"), route="webhook.notice-ordered").json()["exchange_id"]
        eventually(lambda: exchange_state(client, first) == "delivered", timeout=20)
        assert sink_stats(partner)["requests"] == 1
    assert sum(claimed) == 0  # marked sending and leased in the commit that queued it


def test_on_an_ordered_route_a_message_behind_the_clients_pending_one_waits_for_it_and_a_claim(
        database_url, tmp_path, monkeypatch):
    with _ordered_gateway(database_url, tmp_path, monkeypatch) as (client, partner, claimed):
        sink_control(partner, mode="late", delay=6, count=1)  # the first is applied, answered late
        first = submit(client, notice("r-ordered-held-1"), route="webhook.notice-ordered").json()["exchange_id"]
        eventually(lambda: sink_stats(partner)["requests"] == 1)
        second = submit(client, notice("r-ordered-held-2"), route="webhook.notice-ordered").json()["exchange_id"]
        assert (exchange_state(client, first), exchange_state(client, second)) == ("sending", "queued")
        time.sleep(0.5)  # the worker has a slot free: only the order holds the second back
        assert exchange_state(client, second) == "queued" and sink_stats(partner)["requests"] == 1
        eventually(lambda: exchange_state(client, second) == "delivered", timeout=20)
        assert exchange_state(client, first) == "delivered"
        assert sink_stats(partner)["requests"] == 2
    assert sum(claimed) == 1  # the second, claimed once the first was recorded


def test_only_the_first_of_a_clients_ordered_messages_in_one_transaction_may_skip_the_claim(live_gateway):
    from gateway.core import outbox

    with live_gateway.gw.store.transaction() as session:
        assert outbox.first_in_line(session, "partner-a", "client-pseudonym-1") is True
        assert outbox.first_in_line(session, "partner-a", "client-pseudonym-1") is False
        assert outbox.first_in_line(session, "partner-b", "client-pseudonym-1") is True
        assert outbox.first_in_line(session, "partner-a", "client-pseudonym-2") is True
        assert outbox.first_in_line(session, "partner-a", None) is False  # no client to order by: a claim decides


@pytest.mark.postgres
def test_on_postgresql_a_client_another_transaction_is_deciding_on_waits_for_a_claim(postgres_url, tmp_path):
    """Other processes write at once: two transactions must not both start a message of one
    client. The second is told no at once (never a wait that two batches could deadlock on)."""
    from gateway.app import create_app
    from gateway.core import outbox
    from tests.conftest import make_settings

    with ThreadServer(create_app(make_settings(postgres_url, tmp_path, worker_enabled=False))) as server:
        store = server.app.state.gateway.store
        one, other = store.open_batch(), store.open_batch()
        try:
            assert outbox.first_in_line(one, "partner-a", "client-pseudonym-1") is True
            assert outbox.first_in_line(other, "partner-a", "client-pseudonym-1") is False
            assert outbox.first_in_line(other, "partner-a", "client-pseudonym-2") is True
            one.rollback()  # the lock goes with its transaction
            again = store.open_batch()
            try:
                assert outbox.first_in_line(again, "partner-a", "client-pseudonym-1") is True
            finally:
                again.rollback()
                again.close()
        finally:
            for session in (one, other):
                session.rollback()
                session.close()


@contextmanager
def _one_waiting_ordered_message(database_url, tmp_path):
    """A gateway whose worker does not run, with one ordered message of the notices' client queued
    (nothing has claimed it); the gateway and that client's pseudonym."""
    from gateway.core.models import Exchange

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        waiting = submit(client, notice("r-ordered-waiting"), route="webhook.notice-ordered").json()["exchange_id"]
        with gw.store.reading() as session:
            subject = session.get(Exchange, waiting).subject
        yield gw, subject


def test_a_claim_leaves_alone_a_client_whose_message_its_own_transaction_queued(database_url, tmp_path):
    """A group commit may put a claim in the same transaction as the units that queue messages:
    a message of the client queued (and perhaps handed to the worker) earlier in it is not in the
    table yet, so the claim must not take another of theirs meanwhile."""
    from gateway.core import outbox

    with _one_waiting_ordered_message(database_url, tmp_path) as (gw, subject):
        with gw.store.transaction() as session:
            outbox.first_in_line(session, "partner-a", subject)  # as the unit queueing a message does
            assert outbox._take(gw, session, "test-owner", 32, 32, {}) == ([], 0, frozenset())
        assert outbox.take(gw, "test-owner", 32, per_partner=32)[1] == 1  # alone, the claim takes it


@pytest.mark.postgres
def test_on_postgresql_a_claim_leaves_alone_a_client_another_transaction_is_deciding_on(postgres_url, tmp_path):
    """Found in review: a message handed to the worker by a transaction not yet committed is
    invisible to a claim in another process, which could take an older one of the same client at
    the same time. The claim takes the client's lock too, without waiting, and passes over a
    client whose lock another transaction holds."""
    from gateway.core import outbox

    with _one_waiting_ordered_message(postgres_url, tmp_path) as (gw, subject):
        deciding = gw.store.open_batch()
        try:
            assert outbox.first_in_line(deciding, "partner-a", subject) is False  # pending, but it holds the lock
            assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)
        finally:
            deciding.rollback()
            deciding.close()
        assert outbox.take(gw, "test-owner", 32, per_partner=32)[1] == 1


def test_an_outcome_another_attempt_already_recorded_is_not_written_again_and_the_batch_others_are(
        live_gateway, sink, monkeypatch):
    """A batch of outcomes goes to PostgreSQL as one pipeline of conditional updates. Where one
    exchange was moved on meanwhile (its lease ran out and another attempt decided), that update
    changes nothing, the batch runs again unit by unit, and the others are recorded all the same."""
    from gateway.core import outbox
    from gateway.core.connectors import DeliveryResult
    from gateway.core.models import OutboxItem, Transition
    from gateway.core.sql import Statement
    from sqlalchemy import select

    gw = live_gateway.gw
    ids, attempts = _three_claimed_by_hand(live_gateway, sink, "r-race")  # so that two attempts can race
    assert sorted(attempt.exchange_id for attempt in attempts) == sorted(ids)
    ok = DeliveryResult("delivered", "HTTP 200", 200)
    raced = attempts[0]
    assert outbox.record(gw, raced, ok) == "delivered"  # the other attempt's outcome, first

    piped: list[int] = []
    send_many = Statement.send_many
    monkeypatch.setattr(Statement, "send_many",
                        lambda self, bind, params: piped.append(len(params)) or send_many(self, bind, params))
    tickets = gw.store.group.run_many(
        [lambda session, a=attempt: outbox._record(gw, session, a, ok) for attempt in attempts])
    assert [ticket.result() for ticket in tickets] == ["delivered"] * 3
    with gw.store.reading() as session:
        delivered = session.scalars(select(Transition.exchange_id).where(Transition.to_state == "delivered")).all()
        assert sorted(delivered) == sorted(ids)  # once each: the raced one not twice
        assert session.scalars(select(OutboxItem.exchange_id)).all() == []
    assert piped == ([3] if gw.store.is_postgres else [])


def test_a_stopping_worker_starts_no_attempt_and_gives_its_slot_back(settings):
    """Found in review: a request cancelled at shutdown has its write committed while the worker
    is stopping, and the attempt it prepared must not start then — nobody would wait for its
    outcome, and the shared client may be closed. The slot is given back; the lease runs out."""
    import asyncio
    from types import SimpleNamespace

    from gateway.core.delivery import DeliveryWorker
    from gateway.core.runtime import Gateway

    async def stopping() -> None:
        worker = DeliveryWorker(Gateway(settings))
        worker.running = True
        assert worker.reserve("partner-a")
        await worker.stop()
        worker.start(SimpleNamespace(exchange_id="e-1", partner=SimpleNamespace(id="partner-a")))
        assert not worker._tasks and sum(worker._in_flight.values()) == 0

    asyncio.run(stopping())


def test_a_partner_filled_to_its_share_by_a_claim_gets_the_next_claim_as_soon_as_its_slots_free(
        database_url, tmp_path, monkeypatch):
    """Found with the bench at 64 connections: a backlog drained at one claim per poll interval
    (about 130 messages a second instead of 600). A claim that filled a partner's share was judged
    by the counts after it, and attempts that had ended while it ran made the partner look short
    of its share, so the worker concluded nothing more was due and freed slots no longer woke it.
    And a wake-up that came while a claim ran (a slot freed, a message queued) was cleared after it."""
    import asyncio
    from types import SimpleNamespace

    from gateway.core import outbox
    from gateway.core.delivery import DeliveryWorker
    from gateway.core.runtime import Gateway
    from tests.conftest import make_settings

    settings = make_settings(database_url, tmp_path, worker_concurrency=8, worker_poll_interval=30)

    async def scenario() -> list[dict[str, int]]:
        worker = DeliveryWorker(Gateway(settings))  # a share of 4 slots per partner
        worker.start = lambda attempt: None  # the attempts stay out until the test ends them
        claims: list[dict[str, int]] = []

        async def take(gw, owner, limit, per_partner, in_flight):
            claims.append(dict(in_flight))
            left = per_partner - in_flight.get("partner-a", 0)  # the partner has a long backlog
            if len(claims) == 3:
                worker._release_slot("partner-a")  # an attempt ends while this claim runs
            taken = min(left, limit)
            # As the real claim reports it: the partner is full if what it had out when the claim
            # was asked for and what the claim took for it make its share.
            return outbox.Claim([SimpleNamespace(exchange_id=f"e-{len(claims)}-{i}", partner=SimpleNamespace(id="partner-a"))
                                 for i in range(taken)], taken,
                                frozenset({"partner-a"}) if in_flight.get("partner-a", 0) + taken >= per_partner
                                else frozenset())

        async def until_claim(n: int) -> None:
            # The stand-in claim does not suspend, so once it is counted the worker has also
            # handled its answer and is waiting again: each step below starts from a settled loop.
            async with asyncio.timeout(5):
                while len(claims) < n:
                    await asyncio.sleep(0.01)

        monkeypatch.setattr(outbox, "take_async", take)
        running = asyncio.create_task(worker.run())
        await until_claim(1)  # it fills the partner's share
        worker._release_slot("partner-a")  # two attempts end: the worker claims two more
        worker._release_slot("partner-a")
        await until_claim(2)
        worker._release_slot("partner-a")  # one more ends, and another ends while claim 3 runs:
        await until_claim(4)  # the slot freed meanwhile starts claim 4 at once
        worker._release_slot("partner-a")  # and the next freed slot claim 5, not the 30 s poll
        await until_claim(5)
        await worker.stop()
        await asyncio.wait_for(running, timeout=5)
        return claims

    claims = asyncio.run(scenario())
    assert claims == [{}, {"partner-a": 2}, {"partner-a": 3}, {"partner-a": 3}, {"partner-a": 3}]


@pytest.mark.postgres
def test_on_postgresql_a_partner_resumed_while_a_claim_reads_it_as_paused_gets_its_message(
        postgres_url, tmp_path, monkeypatch):
    """Found in review: a claim read the partner as paused, a resume committed meanwhile (finding
    nothing parked yet to release), and the claim then parked the message — held for good while the
    partner was active, and on an ordered route the client's whole line behind it. A claim now
    reads the state again under a share lock before it parks anything."""
    from sqlalchemy import select

    from gateway.core import audit, outbox
    from gateway.core import partners as registry
    from gateway.core.models import OutboxItem, Partner

    def set_partner(gw, state):
        with gw.store.transaction() as session:
            registry.set_partner_state(session, session.get(Partner, "partner-a"), state, "onderhoud",
                                       audit.Actor.system("test"))

    with _ordered_gateway_without_worker(postgres_url, tmp_path) as (gw, client):
        set_partner(gw, "paused")
        ids = [submit(client, notice(f"r-resumed-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(2)]
        read = registry.find_many

        def read_then_resume(session, partner_ids):
            rows = read(session, partner_ids)  # the claim has read the partner: paused
            set_partner(gw, "active")  # an administrator's resume, committed meanwhile
            return rows

        monkeypatch.setattr(registry, "find_many", read_then_resume)
        taken, claimed = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert [attempt.exchange_id for attempt in taken] == [ids[0]] and claimed == 1
        with gw.store.reading() as session:
            assert not any(session.scalars(select(OutboxItem.held)))


def test_on_an_ordered_route_two_messages_queued_at_the_same_instant_go_in_one_order_everywhere(database_url, tmp_path):
    """Rows queued in the same microsecond (one group commit can) are ordered by exchange id, so
    every process's claim agrees on which one the line waits for."""
    from sqlalchemy import select, update

    from gateway.core import outbox
    from gateway.core.models import OutboxItem

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        ids = [submit(client, notice(f"r-ordered-tie-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(2)]
        with gw.store.transaction() as session:
            at = session.scalar(select(OutboxItem.created_at).where(OutboxItem.exchange_id == ids[1]))
            session.execute(update(OutboxItem).where(OutboxItem.exchange_id.in_(ids)).values(created_at=at))
        (taken,), _ = outbox.take(gw, "test-owner", 32, per_partner=32)
        assert taken.exchange_id == min(ids)


@pytest.mark.postgres
def test_on_postgresql_a_claim_sees_a_hand_off_committed_after_it_chose_its_candidates(postgres_url, tmp_path, monkeypatch):
    """Another process may commit a younger message of the client, handed to its worker, after this
    claim read its candidates and before it took the client's lock: the claim reads the client's
    line again after the lock, and leaves the older one for later."""
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.core import outbox
    from gateway.core.models import OutboxItem, utcnow

    with _ordered_gateway_without_worker(postgres_url, tmp_path) as (gw, client):
        ids = [submit(client, notice(f"r-ordered-late-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(2)]
        take_locks = outbox._clients_taken

        def locks_after_a_hand_off(session, clients):
            with gw.store.transaction() as other:  # the other process's hand-off commits meanwhile
                other.execute(update(OutboxItem).where(OutboxItem.exchange_id == ids[1]).values(
                    lease_owner="other-host:2:worker", lease_until=utcnow() + timedelta(seconds=60)))
            return take_locks(session, clients)

        monkeypatch.setattr(outbox, "_clients_taken", locks_after_a_hand_off)
        assert outbox.take(gw, "test-owner", 32, per_partner=32) == ([], 0)


def test_on_an_ordered_route_a_client_with_a_message_out_takes_no_other_clients_place(database_url, tmp_path):
    """A line with a message out is not a candidate at all: in a partner's share of candidates it
    would push out a client whose message could go."""
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.core import outbox
    from gateway.core.models import OutboxItem, utcnow
    from tests.conftest import grant_consent

    with _ordered_gateway_without_worker(database_url, tmp_path) as (gw, client):
        grant_consent(gw, "C-2002", partner_id="partner-a")
        ids = [submit(client, notice(f"r-ordered-place-{i}"), route="webhook.notice-ordered").json()["exchange_id"]
               for i in range(2)]
        other = submit(client, notice("r-ordered-place-other", client_id="C-2002"),
                       route="webhook.notice-ordered").json()["exchange_id"]
        with gw.store.transaction() as session:  # the first client's younger one is out
            session.execute(update(OutboxItem).where(OutboxItem.exchange_id == ids[1]).values(
                lease_owner="other-host:2:worker", lease_until=utcnow() + timedelta(seconds=60)))
        (taken,), _ = outbox.take(gw, "test-owner", 32, per_partner=1)
        assert taken.exchange_id == other
