"""Liveness, readiness and the problem-type pages, as a load balancer or monitor meets them."""

from __future__ import annotations

import httpx


def test_health_readiness_and_problem_pages_answer_head_as_get_without_the_body(live_gateway):
    """Uptime monitors and load balancers check with HEAD; these answered it with 405."""
    for path in ("/health", "/ready", "/problems/refused"):
        get, head = httpx.get(live_gateway.url + path), httpx.head(live_gateway.url + path)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head.content == b"" and get.content != b"", path
        for header in ("content-type", "content-length"):
            assert head.headers[header] == get.headers[header], (path, header)
    assert httpx.head(live_gateway.url + "/problems/no-such-type").status_code == 404


def test_a_head_elsewhere_is_refused_and_leaves_no_trace(live_gateway):
    """A GET of personal data is audited as a read, and some GETs record more (a handover marked
    fetched by its partner): a monitor's HEAD must do neither, so only the endpoints above take it."""
    from tests.conftest import CLIENT

    subject = live_gateway.gw.pseudonymise(CLIENT)
    with live_gateway.client("hulpverlener") as worker:
        refused = worker.head("/api/v1/consents", params={"subject": subject})
        assert refused.status_code == 405 and "GET" in refused.headers["allow"]
        assert worker.get("/api/v1/consents", params={"subject": subject}).status_code == 200
    with live_gateway.client("privacy") as officer:
        reads = officer.get("/api/v1/audit", params={"event_type": "consents.read"}).json()["items"]
    assert len(reads) == 1  # the GET's, and nothing for the HEAD
