"""Nothing leaves without a basis: consent, or a named legal ground with its evidence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from tests.helpers import eventually, exchange_state, notice, sink_control, sink_stats, submit

PSEUDONYM_PREFIX = "psn:"


def _hours_ago(hours: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=hours)).astimezone(timezone(timedelta(hours=1))).isoformat()


def _audit(client: httpx.Client, exchange_id: str) -> list[dict]:
    return client.get("/api/v1/audit", params={"exchange": exchange_id}).json()["items"]


def _sent_on_consent(live_gateway, sink, reference: str, status: int, until: str) -> tuple[str, str]:
    """A worker records the client's consent for partner-a and sends a notice there while the
    partner answers ``status``; once the exchange is ``until``: the consent's id and the exchange's."""
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    sink_control(sink.url, mode="status", status=status)
    with live_gateway.client("hulpverlener") as worker:
        consent_id = worker.post("/api/v1/consents", json={
            "client_id": "C-1001", "partner_id": "partner-a", "purpose": "signalering"}).json()["id"]
        exchange_id = submit(worker, notice(reference)).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == until)
    return consent_id, exchange_id


def test_without_consent_the_exchange_is_refused_with_a_clear_reason_and_audited(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    with live_gateway.client("hulpverlener") as worker:
        refused = submit(worker, notice("r-none"))
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["type"] == "/problems/refused"
    assert problem["missing_basis"] == ["toestemming", "vitaal_belang"]
    assert "no active consent of the client for partner partner-a and purpose signalering" in problem["detail"]
    assert "vitaal_belang requires a recorded decided_by, decided_at, reason" in problem["basis_reasons"]["vitaal_belang"]
    with live_gateway.client("privacy") as officer:
        events = _audit(officer, problem["exchange_id"])
    assert [e["event_type"] for e in events] == ["exchange.received", "exchange.validated", "exchange.refused"]
    assert events[-1]["outcome"] == 8 and "no active consent" in events[-1]["detail"]
    assert sink_stats(sink.url)["requests"] == 0


def test_with_consent_it_is_sent_and_the_audit_names_the_consent(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    with live_gateway.client("hulpverlener") as worker:
        consent = worker.post("/api/v1/consents", json={
            "client_id": "C-1001", "partner_id": "partner-a", "purpose": "signalering",
            "evidence_reference": "formulier 2026-11 (fictief)"})
        assert consent.status_code == 201
        assert consent.json()["subject"].startswith(PSEUDONYM_PREFIX) and "C-1001" not in consent.text
        sent = submit(worker, notice("r-consent"))
        assert sent.status_code == 202
        eventually(lambda: exchange_state(worker, sent.json()["exchange_id"]) == "delivered")
    with live_gateway.client("privacy") as officer:
        delivered = [e for e in _audit(officer, sent.json()["exchange_id"]) if e["event_type"] == "exchange.delivered"]
    assert delivered[0]["legal_basis"] == "toestemming" and delivered[0]["consent_id"] == consent.json()["id"]
    assert delivered[0]["fields"] == ["category", "reference", "text"]
    assert delivered[0]["payload_digest"].startswith("sha256:")


def test_consent_for_another_partner_or_purpose_does_not_count(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    live_gateway.add_partner("partner-b", sink.url + "/inbox/b", consenting_clients=())
    with live_gateway.client("hulpverlener") as worker:
        worker.post("/api/v1/consents", json={"client_id": "C-1001", "partner_id": "partner-b", "purpose": "signalering"})
        worker.post("/api/v1/consents", json={"client_id": "C-1001", "partner_id": "partner-a", "purpose": "onderzoek"})
        worker.post("/api/v1/consents", json={"client_id": "C-2002", "partner_id": "partner-a", "purpose": "signalering"})
        assert submit(worker, notice("r-other")).status_code == 403
        assert submit(worker, notice("r-b", partner="partner-b")).status_code == 202


def test_withdrawing_consent_while_the_partner_is_down_means_it_is_never_sent(live_gateway, sink):
    consent_id, exchange_id = _sent_on_consent(live_gateway, sink, "r-withdraw", status=503, until="failed")
    with live_gateway.client("hulpverlener") as worker:
        withdrawn = worker.post(f"/api/v1/consents/{consent_id}/withdraw", json={"reason": "cliënt trekt toestemming in"})
        assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "inactive"
        sink_control(sink.url, mode="ok")
        eventually(lambda: exchange_state(worker, exchange_id) == "refused")
        detail = worker.get(f"/api/v1/exchanges/{exchange_id}").json()
    assert "was withdrawn at" in detail["state_reason"]
    import time

    time.sleep(0.5)
    assert sink_stats(sink.url)["unique"] == 0
    with live_gateway.client("privacy") as officer:
        refusal = [e for e in _audit(officer, exchange_id) if e["event_type"] == "exchange.refused"]
        withdrawal = officer.get("/api/v1/audit", params={"event_type": "consent.withdrawn"}).json()["items"]
    assert refusal and "withdrawn" in refusal[0]["detail"] and refusal[0]["consent_id"] == consent_id
    assert withdrawal[0]["detail"] == "cliënt trekt toestemming in"


def test_a_consent_that_expires_while_a_message_waits_stops_it_before_the_next_attempt(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    sink_control(sink.url, mode="status", status=503)
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    with live_gateway.client("hulpverlener") as worker:
        worker.post("/api/v1/consents", json={"client_id": "C-1001", "partner_id": "partner-a", "purpose": "signalering",
                                              "valid_to": soon.isoformat()})
        exchange_id = submit(worker, notice("r-expire")).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "refused", timeout=30)
        reason = worker.get(f"/api/v1/exchanges/{exchange_id}").json()["state_reason"]
    assert "expired at" in reason


def test_vital_interest_needs_its_evidence_and_then_is_audited_with_that_basis(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    evidence = {"decided_by": "teamleider (fictief)", "decided_at": _hours_ago(1),
                "reason": "acuut gevaar voor moeder en kinderen"}
    headers = {"Schakel-Legal-Basis": "vitaal_belang"}
    with live_gateway.client("hulpverlener") as worker:
        incomplete = worker.post("/api/v1/routes/webhook.notice/messages", headers=headers,
                                 json=notice("r-vital-1", evidence={"vitaal_belang": {"decided_by": "x"}}))
        unaccepted = worker.post("/api/v1/routes/webhook.notice/messages", headers={"Schakel-Legal-Basis": "meldrecht"},
                                 json=notice("r-vital-2"))
        sent = worker.post("/api/v1/routes/webhook.notice/messages", headers=headers,
                           json=notice("r-vital-3", evidence={"vitaal_belang": evidence}))
        eventually(lambda: exchange_state(worker, sent.json()["exchange_id"]) == "delivered")
    assert incomplete.status_code == 403 and incomplete.json()["missing_basis"] == ["vitaal_belang"]
    assert "requires a recorded decided_at, reason" in incomplete.json()["detail"]
    assert unaccepted.status_code == 403 and "does not accept the basis meldrecht" in unaccepted.json()["detail"]
    assert sent.status_code == 202
    (received,) = httpx.get(sink.url + "/_received").json()["items"].values()
    assert "acuut gevaar" not in received["body"]  # the evidence is recorded, not sent
    with live_gateway.client("privacy") as officer:
        events = _audit(officer, sent.json()["exchange_id"])
    assert {e["legal_basis"] for e in events if e["event_type"] != "exchange.received"} == {"vitaal_belang"}


def test_a_vital_interest_decision_taken_too_long_ago_is_refused_with_what_to_do(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    headers = {"Schakel-Legal-Basis": "vitaal_belang"}
    stale = {"decided_by": "teamleider (fictief)", "decided_at": _hours_ago(25), "reason": "acuut gevaar"}
    ahead = {**stale, "decided_at": _hours_ago(-2)}
    with live_gateway.client("hulpverlener") as worker:
        old = worker.post("/api/v1/routes/webhook.notice/messages", headers=headers,
                          json=notice("r-vital-old", evidence={"vitaal_belang": stale}))
        future = worker.post("/api/v1/routes/webhook.notice/messages", headers=headers,
                             json=notice("r-vital-ahead", evidence={"vitaal_belang": ahead}))
    assert old.status_code == 403 and old.headers["content-type"] == "application/problem+json"
    assert old.json()["type"] == "/problems/refused" and old.json()["missing_basis"] == ["vitaal_belang"]
    assert old.json()["basis_reasons"]["vitaal_belang"] == (
        "the vitaal_belang decision is more than 24 hours old; a new decision has to be recorded")
    assert future.status_code == 403
    assert future.json()["basis_reasons"]["vitaal_belang"] == "vitaal_belang: decided_at lies in the future"
    assert sink_stats(sink.url)["unique"] == 0


def test_a_vital_interest_decision_that_lapses_while_the_message_waits_stops_its_next_attempt(database_url, tmp_path,
                                                                                              sink):
    from gateway.app import create_app
    from tests.conftest import LiveGateway, make_settings
    from tests.servers import ThreadServer

    # A decision that holds for four seconds, and a partner that is down meanwhile.
    settings = make_settings(database_url, tmp_path, vitaal_belang_hours=4 / 3600)
    sink_control(sink.url, mode="status", status=503)
    with ThreadServer(create_app(settings)) as server:
        live = LiveGateway(server)
        live.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
        with live.client("hulpverlener") as worker:
            decided = datetime.now(timezone.utc)
            evidence = {"decided_by": "teamleider (fictief)", "decided_at": decided.isoformat(), "reason": "acuut gevaar"}
            sent = worker.post("/api/v1/routes/webhook.notice/messages", headers={"Schakel-Legal-Basis": "vitaal_belang"},
                               json=notice("r-vital-lapse", evidence={"vitaal_belang": evidence}))
            assert sent.status_code == 202
            exchange_id = sent.json()["exchange_id"]
            eventually(lambda: exchange_state(worker, exchange_id) == "refused", timeout=30)
            detail = worker.get(f"/api/v1/exchanges/{exchange_id}").json()
        with live.client("privacy") as officer:
            refusal = [e for e in _audit(officer, exchange_id) if e["event_type"] == "exchange.refused"]
    assert "the basis vitaal_belang no longer holds: the vitaal_belang decision is more than" in detail["state_reason"]
    attempts = [datetime.fromisoformat(t["at"]) for t in detail["timeline"] if t["to_state"] == "sending"]
    # Tried while the decision held, and never after it lapsed.
    assert attempts and sink_stats(sink.url)["requests"] == len(attempts)
    assert all(at <= decided + timedelta(seconds=4) for at in attempts)
    assert refusal and refusal[0]["legal_basis"] == "vitaal_belang" and "acuut gevaar" not in str(refusal)


def test_a_dead_letter_whose_consent_was_withdrawn_is_not_replayed_and_the_administrator_is_told_why(live_gateway,
                                                                                                      sink):
    consent_id, exchange_id = _sent_on_consent(live_gateway, sink, "r-replay-withdrawn", status=422, until="dead")
    with live_gateway.client("hulpverlener") as worker:
        worker.post(f"/api/v1/consents/{consent_id}/withdraw", json={"reason": "cliënt trekt toestemming in"})
    sink_control(sink.url, mode="ok")
    with live_gateway.client("beheerder") as admin:
        one = admin.post(f"/api/v1/exchanges/{exchange_id}/replay", json={"reason": "partner hersteld"})
        many = admin.post("/api/v1/dead-letters/replay", json={"all": True, "reason": "partner hersteld"}).json()
        detail = admin.get(f"/api/v1/exchanges/{exchange_id}").json()
    assert one.status_code == 403 and one.headers["content-type"] == "application/problem+json"
    assert one.json()["type"] == "/problems/refused"
    assert one.json()["detail"].startswith("Not replayed: ") and "was withdrawn at" in one.json()["detail"]
    assert many["replayed"] == [] and [s["exchange_id"] for s in many["skipped"]] == [exchange_id]
    assert "was withdrawn at" in many["skipped"][0]["reason"]
    # The dead letter stays as it was: nothing replayed, queued or sent.
    assert detail["state"] == "dead" and detail["replays"] == 0
    assert "replayed" not in [step["to_state"] for step in detail["timeline"]]
    assert sink_stats(sink.url)["requests"] == 1


def test_a_dead_letter_on_a_vital_interest_decision_that_has_lapsed_is_not_replayed(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    sink_control(sink.url, mode="status", status=422)
    decided = datetime.now(timezone.utc)
    evidence = {"decided_by": "teamleider (fictief)", "decided_at": decided.isoformat(), "reason": "acuut gevaar"}
    with live_gateway.client("hulpverlener") as worker:
        sent = worker.post("/api/v1/routes/webhook.notice/messages", headers={"Schakel-Legal-Basis": "vitaal_belang"},
                           json=notice("r-vital-replay", evidence={"vitaal_belang": evidence}))
        exchange_id = sent.json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "dead")
    sink_control(sink.url, mode="ok")
    # Later: the decision no longer holds (here by shortening the window it holds for, to a second).
    live_gateway.gw.settings.vitaal_belang_hours = 1 / 3600
    eventually(lambda: datetime.now(timezone.utc) > decided + timedelta(seconds=1.5), timeout=5)
    with live_gateway.client("beheerder") as admin:
        lapsed = admin.post(f"/api/v1/exchanges/{exchange_id}/replay", json={"reason": "partner hersteld"})
        detail = admin.get(f"/api/v1/exchanges/{exchange_id}").json()
    with live_gateway.client("privacy") as officer:
        refusals = [e for e in _audit(officer, exchange_id) if e["event_type"] == "exchange.replay_refused"]
    assert sent.status_code == 202
    assert lapsed.status_code == 403 and lapsed.json()["type"] == "/problems/refused"
    assert "the vitaal_belang decision is more than" in lapsed.json()["detail"]
    assert lapsed.json()["exchange_id"] == exchange_id and "acuut gevaar" not in lapsed.text
    assert detail["state"] == "dead" and detail["replays"] == 0
    # The administrator's attempt is in the audit trail, under her name, with the basis it lacked.
    assert [(e["user_id"], e["legal_basis"], e["outcome"]) for e in refusals] == [("test-beheerder-staff", "vitaal_belang", 8)]
    assert "acuut gevaar" not in str(refusals)
    assert sink_stats(sink.url)["requests"] == 1


def test_the_consent_register_keeps_history_and_speaks_fhir(live_gateway):
    with live_gateway.client("hulpverlener") as worker:
        first = worker.post("/api/v1/consents", json={"client_id": "C-3003", "partner_kind": "webhook",
                                                      "purpose": "signalering", "data_categories": ["signalen"]}).json()
        worker.post(f"/api/v1/consents/{first['id']}/withdraw", json={"reason": "ingetrokken"})
        second = worker.post("/api/v1/consents", json={"client_id": "C-3003", "partner_kind": "webhook",
                                                       "purpose": "signalering"}).json()
        subject = worker.post("/api/v1/pseudonyms", json={"client_id": "C-3003"}).json()["subject"]
        history = worker.get("/api/v1/consents", params={"subject": subject}).json()
        fhir = worker.get(f"/api/v1/consents/{first['id']}", params={"format": "fhir"}).json()
        again = worker.post(f"/api/v1/consents/{first['id']}/withdraw", json={"reason": "nog eens"})
        both = worker.post("/api/v1/consents", json={"client_id": "C-3003", "partner_id": "p", "partner_kind": "webhook",
                                                     "purpose": "signalering"})
    assert [(c["id"], c["status"]) for c in history] == [(second["id"], "active"), (first["id"], "inactive")]
    assert fhir["resourceType"] == "Consent" and fhir["status"] == "inactive"
    assert fhir["patient"]["identifier"]["value"] == subject
    assert fhir["provision"]["purpose"][0]["code"] == "signalering"
    assert fhir["provision"]["class"][0]["code"] == "signalen"
    assert again.status_code == 409 and both.status_code == 422


def test_reading_the_register_or_the_trail_is_itself_audited_and_a_worker_reads_one_clients_consents(live_gateway):
    """NEN 7513: a read of personal data by a person is logged, the privacy officer's too."""
    with live_gateway.client("hulpverlener") as worker:
        consent = worker.post("/api/v1/consents", json={"client_id": "C-4004", "partner_kind": "webhook",
                                                        "purpose": "signalering"}).json()
        subject = consent["client"] if "client" in consent else worker.post(
            "/api/v1/pseudonyms", json={"client_id": "C-4004"}).json()["subject"]
        everyone = worker.get("/api/v1/consents")
        hers = worker.get("/api/v1/consents", params={"subject": subject})
    assert everyone.status_code == 403 and everyone.headers["content-type"] == "application/problem+json"
    assert [c["id"] for c in hers.json()] == [consent["id"]]
    with live_gateway.client("privacy") as officer:
        assert officer.get("/api/v1/consents").status_code == 200
        searched = officer.get("/api/v1/audit", params={"subject": subject, "event_type": "consent.recorded"}).json()
        reads = officer.get("/api/v1/audit", params={"subject": subject, "event_type": "consents.read"}).json()["items"]
        searches = officer.get("/api/v1/audit", params={"event_type": "audit.searched"}).json()["items"]
    assert [e["event_type"] for e in searched["items"]] == ["consent.recorded"]  # a search never finds itself
    assert [(e["role"], e["action_code"], e["client"]) for e in reads] == [("hulpverlener", "R", subject)]
    with live_gateway.client("privacy") as officer:
        # Paging through a search ends: its later pages are not recorded as searches of their own.
        after, pages = 0, 0
        while after is not None and pages < 1000:
            after = officer.get("/api/v1/audit", params={"after_seq": after, "limit": 1}).json()["next_after_seq"]
            pages += 1
    assert after is None
    first = searches[0]
    assert (first["role"], first["action_code"], first["client"]) == ("privacy", "R", subject)
    assert first["detail"] == "event_type=consent.recorded (1 entries on the first page)"


def test_a_consent_limited_to_some_kinds_of_data_covers_only_a_route_that_carries_no_others(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=())
    with live_gateway.client("hulpverlener") as worker:
        unknown = worker.post("/api/v1/consents", json={"client_id": "C-1001", "partner_id": "partner-a",
                                                        "purpose": "signalering", "data_categories": ["alleen_naam"]})
        narrow = worker.post("/api/v1/consents", json={"client_id": "C-1001", "partner_id": "partner-a",
                                                       "purpose": "signalering", "data_categories": ["personalia"]})
        # The notice carries signalen; a consent to share personalia only does not cover it.
        refused = submit(worker, notice("r-narrow"))
        worker.post("/api/v1/consents", json={"client_id": "C-1001", "partner_id": "partner-a",
                                              "purpose": "signalering", "data_categories": ["personalia", "signalen"]})
        allowed = submit(worker, notice("r-covered"))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["location"] == ["body", "data_categories"]
    assert narrow.status_code == 201
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/refused"
    assert allowed.status_code == 202 and allowed.json()["state"] == "queued"


def test_a_route_reconfigured_to_another_purpose_while_a_message_waits_stops_it(live_gateway, sink):
    """The consent was for signalering; the route now serves something else: what waits may not go."""
    from dataclasses import replace

    routes = live_gateway.gw.registry.routes
    original = routes["webhook.notice"]
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="status", status=503)
    with live_gateway.client("hulpverlener") as worker:
        exchange_id = submit(worker, notice("r-repurposed")).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "failed")
        routes["webhook.notice"] = replace(original, purpose="trajectbegeleiding")
        try:
            sink_control(sink.url, mode="ok")
            eventually(lambda: exchange_state(worker, exchange_id) == "refused", timeout=30)
            reason = worker.get(f"/api/v1/exchanges/{exchange_id}").json()["state_reason"]
        finally:
            routes["webhook.notice"] = original
    assert reason == "the consent is for signalering; route webhook.notice now serves trajectbegeleiding"
    assert sink_stats(sink.url)["unique"] == 0
