"""Submitting messages over HTTP: accepted once, idempotent, and refused cleanly when wrong."""

from __future__ import annotations

import json

import httpx

from tests.helpers import eventually, exchange_state, notice, sink_stats, submit

PROBLEM = "application/problem+json"


def test_a_submitted_notice_is_queued_then_delivered_with_only_mapped_fields(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as client:
        response = submit(client, notice("ref-1", text="Moeder en kinderen veilig"), key="key-1")
        assert response.status_code == 202
        body = response.json()
        assert body["state"] == "queued"
        assert body["fields"] == ["category", "reference", "text"]
        assert response.headers["Location"] == f"/api/v1/exchanges/{body['exchange_id']}"
        eventually(lambda: exchange_state(client, body["exchange_id"]) == "delivered")
    received = httpx.get(sink.url + "/_received").json()["items"]
    (only,) = received.values()
    assert json.loads(only["body"]) == {"reference": "ref-1", "category": "signaal", "text": "Moeder en kinderen veilig"}
    # The client number is not in the mapping, so it never left.
    assert "C-1001" not in only["body"]


def test_the_same_key_and_body_gets_the_stored_answer_and_makes_one_exchange(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as client:
        first = submit(client, notice("ref-2"), key="same-key")
        second = submit(client, notice("ref-2"), key="same-key")
        assert first.status_code == second.status_code == 202
        assert second.json() == first.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        listed = client.get("/api/v1/exchanges").json()["items"]
        assert [item["id"] for item in listed] == [first.json()["exchange_id"]]
        eventually(lambda: sink_stats(sink.url)["unique"] == 1)


def test_the_same_key_with_another_body_is_a_422_problem(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as client:
        assert submit(client, notice("ref-3"), key="reused").status_code == 202
        response = submit(client, notice("ref-3", text="iets anders"), key="reused")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/idempotency-key-reused"


def test_an_empty_key_is_refused_rather_than_taken_for_no_key(live_gateway, sink):
    """A sender who believes it gave a key must not get a second exchange for a repeat."""
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as client:
        for _ in range(2):
            response = client.post("/api/v1/routes/webhook.notice/messages", json=notice("ref-empty"),
                                   headers={"Idempotency-Key": ""})
            assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
            assert response.json()["type"] == "/problems/bad-request"
            assert "idempotency key is 1 to" in response.json()["detail"]
        assert client.get("/api/v1/exchanges").json()["items"] == []


def test_concurrent_requests_with_one_key_make_one_exchange_and_all_get_its_answer(live_gateway, sink):
    """A client retrying while its first request is still in flight: whichever commits first
    wins, the others write nothing and answer with the winner's stored answer."""
    from concurrent.futures import ThreadPoolExecutor

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as client:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: submit(client, notice("ref-race"), key="raced-key"), range(8)))
        assert {answer.status_code for answer in answers} == {202}
        assert len({answer.json()["exchange_id"] for answer in answers}) == 1
        listed = client.get("/api/v1/exchanges").json()["items"]
        assert [item["id"] for item in listed] == [answers[0].json()["exchange_id"]]
        eventually(lambda: sink_stats(sink.url)["unique"] == 1)
    assert sink_stats(sink.url)["unique"] == 1


def test_a_key_still_being_handled_is_a_409_problem(live_gateway, sink):
    from gateway.core import idempotency

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    body = json.dumps(notice("ref-4")).encode()
    with live_gateway.client("hulpverlener") as client:
        # Another request holds the claim (as if it were still being handled elsewhere).
        principal_source = "hulpverlener:test-hulpverlener-staff"
        assert idempotency.claim(live_gateway.gw.store, principal_source, "busy-key", idempotency.fingerprint(body), 60) is None
        response = client.post("/api/v1/routes/webhook.notice/messages", content=body,
                               headers={"Idempotency-Key": "busy-key", "Content-Type": "application/json"})
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/idempotency-conflict"
    assert response.headers["Retry-After"] == "1"


def test_bad_input_gets_a_problem_that_never_echoes_the_value(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    secret = "Jansen-Geheimadres-12"
    with live_gateway.client("hulpverlener") as client:
        not_json = client.post("/api/v1/routes/webhook.notice/messages", content=b"{not json",
                               headers={"Content-Type": "application/json"})
        wrong_field = submit(client, {**notice("ref-5"), "surname": secret})
        too_long = submit(client, notice("r" * 100, text=secret))
        unknown_route = submit(client, notice("ref-6"), route="no.such.route")
        no_partner = submit(client, notice("ref-7", partner="nobody"))
    for response, slug in ((not_json, "message-invalid"), (wrong_field, "message-invalid"), (too_long, "message-invalid"),
                           (unknown_route, "unknown-route"), (no_partner, "no-partner")):
        assert response.headers["content-type"] == PROBLEM, response.text
        assert response.json()["type"] == f"/problems/{slug}"
        assert secret not in response.text
    assert wrong_field.json()["errors"] == [{"location": ["surname"], "reason": "extra_forbidden"}]
    with live_gateway.client() as admin:
        assert admin.get("/api/v1/exchanges").json()["items"] == []


def test_oversized_and_compressed_bodies_are_refused_before_they_are_read(live_gateway):
    limit = live_gateway.gw.settings.max_body_bytes
    with live_gateway.client("hulpverlener") as client:
        big = client.post("/api/v1/routes/webhook.notice/messages", content=b"x" * (limit + 1),
                          headers={"Content-Type": "application/json"})
        gzipped = client.post("/api/v1/routes/webhook.notice/messages", content=b"\x1f\x8b\x08\x00",
                              headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

        def chunks():
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536

        streamed = client.post("/api/v1/routes/webhook.notice/messages", content=chunks(),
                               headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["type"] == "/problems/payload-too-large"
    assert gzipped.status_code == 415 and gzipped.json()["type"] == "/problems/unsupported-media-type"
    assert streamed.status_code == 413 and streamed.json()["type"] == "/problems/payload-too-large"


def test_without_a_token_or_with_a_bad_one_it_is_401(live_gateway):
    no_token = httpx.post(live_gateway.url + "/api/v1/routes/webhook.notice/messages", json=notice("x"))
    bad_token = httpx.get(live_gateway.url + "/api/v1/exchanges", headers={"Authorization": "Bearer sk_nonsense"})
    assert no_token.status_code == bad_token.status_code == 401
    assert no_token.json()["type"] == "/problems/unauthenticated"
    assert no_token.headers["WWW-Authenticate"] == "Bearer"


def test_unknown_paths_and_methods_are_problems_too(live_gateway):
    missing = httpx.get(live_gateway.url + "/api/v1/nothing-here")
    wrong_method = httpx.delete(live_gateway.url + "/health")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "/problems/method-not-allowed"
