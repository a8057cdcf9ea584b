"""The middleware around every request, as a caller over real HTTP meets it."""

from __future__ import annotations

import httpx


def test_head_is_answered_wherever_get_is_with_the_same_status_and_headers_and_no_body(live_gateway):
    """Uptime monitors check with HEAD; each GET endpoint used to answer it with 405."""
    for path in ("/health", "/ready", "/problems/refused", "/openapi.json"):
        get, head = httpx.get(live_gateway.url + path), httpx.head(live_gateway.url + path)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head.content == b"" and get.content != b"", path
        for header in ("content-type", "content-length"):
            assert head.headers[header] == get.headers[header], (path, header)
        assert head.headers["x-correlation-id"]


def test_head_gets_what_get_would_get_when_the_caller_may_not_read(live_gateway):
    refused = httpx.head(live_gateway.url + "/api/v1/exchanges")
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    assert refused.content == b""
    with live_gateway.client("beheerder") as admin:  # a role that may not read the consent register
        forbidden = admin.head("/api/v1/consents")
    assert forbidden.status_code == 403 and forbidden.content == b""
    # A path that has no GET answers HEAD as it answers GET: the method is not allowed.
    post_only = httpx.head(live_gateway.url + "/api/v1/routes/webhook.notice/messages")
    assert post_only.status_code == 405 and "POST" in post_only.headers["allow"]


def test_a_head_of_personal_data_is_a_read_and_is_audited_as_one(live_gateway):
    from tests.conftest import CLIENT

    subject = live_gateway.gw.pseudonymise(CLIENT)
    with live_gateway.client("hulpverlener") as worker:
        assert worker.head("/api/v1/consents", params={"subject": subject}).status_code == 200
    with live_gateway.client("privacy") as officer:
        reads = officer.get("/api/v1/audit", params={"event_type": "consents.read"}).json()["items"]
    assert len(reads) == 1 and reads[0]["action_code"] == "R" and reads[0]["role"] == "hulpverlener"
