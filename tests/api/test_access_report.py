"""The client access report lists everything shared about her and nothing about anyone else."""

from __future__ import annotations

from tests.helpers import eventually, exchange_state, notice, sink_control, submit


def test_the_report_lists_every_exchange_about_her_and_nothing_about_anyone_else(live_gateway, sink):
    gw = live_gateway.gw
    live_gateway.add_partner("partner-a", sink.url + "/inbox", consenting_clients=("C-1001", "C-2002"))
    with live_gateway.client("hulpverlener") as worker:
        hers = [submit(worker, notice(f"r-hers-{i}")).json()["exchange_id"] for i in range(3)]
        theirs = submit(worker, notice("r-theirs", client_id="C-2002")).json()["exchange_id"]
        for exchange_id in [*hers, theirs]:
            eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
        sink_control(sink.url, mode="status", status=422)
        refused_later = submit(worker, notice("r-dead")).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, refused_later) == "dead")
    with live_gateway.client("privacy") as officer:
        report = officer.post("/api/v1/access-report", json={"client_id": "C-1001"})
        printable = officer.post("/api/v1/access-report", params={"format": "html"}, json={"client_id": "C-1001"})
        glass = officer.post(f"/api/v1/exchanges/{hers[0]}/break-glass",
                             json={"reason": "cliënt vraagt inzage in de inhoud"})
        after = officer.post("/api/v1/access-report", json={"client_id": "C-1001"}).json()
    assert report.status_code == 200
    body = report.json()
    assert body["subject"] == gw.pseudonymise("C-1001")
    listed = {row["exchange_id"]: row for row in body["exchanges"]}
    assert set(listed) == {*hers, refused_later}
    assert theirs not in report.text
    shared = listed[hers[0]]
    assert shared["shared"] and shared["with"] == "partner-a" and shared["fields"] == ["category", "reference", "text"]
    assert shared["legal_basis"] == "toestemming" and shared["law"] == "AVG art. 6 lid 1 sub a"
    assert shared["by"] == "test-hulpverlener-staff" and shared["purpose"] == "signalering"
    assert not listed[refused_later]["shared"] and listed[refused_later]["fields"] == []
    assert [c["status"] for c in body["consents"]] == ["active"]
    assert printable.headers["content-type"].startswith("text/html")
    assert printable.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in printable.headers[
        "content-security-policy"]
    assert "<h1>Inzageverslag (AVG artikel 15)</h1>" in printable.text and "partner-a" in printable.text
    assert glass.status_code == 200 and '"reference":"r-hers-0"' in glass.json()["body"]
    assert after["break_the_glass"][0]["reason"] == "cliënt vraagt inzage in de inhoud"


def test_break_the_glass_needs_a_reason_and_is_audited(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as worker:
        exchange_id = submit(worker, notice("r-glass")).json()["exchange_id"]
    with live_gateway.client("privacy") as officer:
        no_reason = officer.post(f"/api/v1/exchanges/{exchange_id}/break-glass", json={"reason": "kort"})
        viewed = officer.post(f"/api/v1/exchanges/{exchange_id}/break-glass", json={"reason": "klacht van cliënt onderzoeken"})
        events = officer.get("/api/v1/audit", params={"event_type": "body.viewed"}).json()["items"]
    assert no_reason.status_code == 422
    assert viewed.status_code == 200
    assert events[0]["exchange_id"] == exchange_id and events[0]["role"] == "privacy"
    assert events[0]["detail"] == "klacht van cliënt onderzoeken" and events[0]["action_code"] == "R"
