"""Listing and showing exchanges: filters, paging, timelines, and a partner's narrow view."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.helpers import eventually, exchange_state, notice, sink_control, submit


def test_exchanges_are_listed_newest_first_with_filters_and_a_cursor(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client() as admin:
        ids = [submit(admin, notice(f"r-list-{i}")).json()["exchange_id"] for i in range(5)]
        eventually(lambda: all(exchange_state(admin, i) == "delivered" for i in ids))
        first = admin.get("/api/v1/exchanges", params={"limit": 2}).json()
        second = admin.get("/api/v1/exchanges", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        third = admin.get("/api/v1/exchanges", params={"limit": 2, "cursor": second["next_cursor"]}).json()
        delivered = admin.get("/api/v1/exchanges", params={"state": "delivered", "partner": "partner-a"}).json()
        future = admin.get("/api/v1/exchanges", params={"since": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()})
        bad_state = admin.get("/api/v1/exchanges", params={"state": "lost"})
        bad_cursor = admin.get("/api/v1/exchanges", params={"cursor": "bm9wZQ"})
    paged = [e["id"] for page in (first, second, third) for e in page["items"]]
    assert paged == list(reversed(ids)) and third["next_cursor"] is None
    assert len(delivered["items"]) == 5
    assert future.json()["items"] == []
    assert bad_state.status_code == 422 and bad_cursor.status_code == 400


def test_an_exchange_shows_its_timeline_with_timestamps_and_reasons(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    sink_control(sink.url, mode="status", status=502, count=1)
    with live_gateway.client() as admin:
        exchange_id = submit(admin, notice("r-timeline")).json()["exchange_id"]
        eventually(lambda: exchange_state(admin, exchange_id) == "delivered")
        detail = admin.get(f"/api/v1/exchanges/{exchange_id}").json()
    steps = [(s["to_state"], s["attempt"]) for s in detail["timeline"]]
    assert steps == [("received", None), ("validated", None), ("authorised", None), ("queued", None),
                     ("sending", 1), ("failed", 1), ("sending", 2), ("delivered", 2)]
    times = [s["at"] for s in detail["timeline"]]
    assert times == sorted(times)
    assert detail["correlation_id"] and detail["subject"].startswith("psn:")
    assert detail["receipt"]["status"] == 200


def test_a_partner_token_sees_only_its_own_exchanges(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    live_gateway.add_partner("partner-b", sink.url + "/inbox/b")
    with live_gateway.client() as admin:
        to_a = submit(admin, notice("r-a", partner="partner-a")).json()["exchange_id"]
        to_b = submit(admin, notice("r-b", partner="partner-b")).json()["exchange_id"]
        # Meant for partner-a, but no basis: it never left, and partner-a must not learn of it.
        never_left = submit(admin, notice("r-never", partner="partner-a", client_id="C-7007")).json()["exchange_id"]
        eventually(lambda: exchange_state(admin, to_a) == "delivered")
    with live_gateway.client("partner", "partner-a") as partner_a:
        listed = [e["id"] for e in partner_a.get("/api/v1/exchanges").json()["items"]]
        mine = partner_a.get(f"/api/v1/exchanges/{to_a}").json()
        other = partner_a.get(f"/api/v1/exchanges/{to_b}")
        refused = partner_a.get(f"/api/v1/exchanges/{never_left}")
        replay = partner_a.post(f"/api/v1/exchanges/{to_a}/replay", json={"reason": "probeer"})
        submit_as_partner = submit(partner_a, notice("r-from-a"))
    assert listed == [to_a]
    assert other.status_code == 404 and refused.status_code == 404
    # What it received, when, which fields; not our pseudonym of the client, the consent or our reasons.
    assert mine["state"] == "delivered" and mine["fields_out"] == ["category", "reference", "text"]
    assert (mine["subject"], mine["consent_id"], mine["state_reason"], mine["receipt"]) == (None, None, None, None)
    assert all(step["reason"] is None and step["actor"] is None for step in mine["timeline"])
    assert mine["source"] == "beheerder"  # the role, not which of our people (a token's name) sent it
    assert replay.status_code == 403
    assert submit_as_partner.status_code == 403


def test_health_and_readiness(live_gateway):
    import httpx

    assert httpx.get(live_gateway.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(live_gateway.url + "/ready").json()
    assert ready["status"] == "ready" and ready["checks"]["database"] == "ok" and ready["checks"]["workers"] == "ok"
    problem_page = httpx.get(live_gateway.url + "/problems/refused")
    assert problem_page.status_code == 200 and "No basis allows this exchange" in problem_page.text
