"""Partners: registered per connector type, secrets write-only and encrypted, resolved by table."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from gateway.core.models import AuditEntry, Partner
from tests.helpers import eventually, exchange_state, notice, submit

TOKEN = "partner-secret-token-123"


def _region_partner(base: str, partner_id: str, region: str) -> dict:
    return {"id": partner_id, "connector_type": "webhook", "name": f"Regio {region}", "endpoint": f"{base}/inbox/{region}",
            "identifiers": {"region": region}, "config": {"token": TOKEN}, "routing": {"region": [region]}}


def test_a_partner_secret_is_stored_encrypted_and_never_returned(live_gateway, sink):
    with live_gateway.client() as admin:
        created = admin.post("/api/v1/partners", json=_region_partner(sink.url, "regio-noord", "noord"))
        assert created.status_code == 201, created.text
        assert created.json()["config"]["token"] == "********"
        listed = admin.get("/api/v1/partners").text
        shown = admin.get("/api/v1/partners/regio-noord").text
        manifest = admin.get("/api/v1/connectors/webhook").json()["manifest"]
    assert TOKEN not in listed + shown + created.text
    assert manifest["config_schema"]["properties"]["token"]["x-secret"] is True
    with live_gateway.gw.store.reading() as session:
        row = session.get(Partner, "regio-noord")
        assert TOKEN.encode() not in (row.credentials_encrypted or b"") and TOKEN not in str(row.config)
        audit_text = str([(e.fields, e.detail) for e in session.scalars(select(AuditEntry))])
    assert TOKEN not in audit_text


def test_the_partner_is_resolved_from_the_routing_table_and_gets_its_own_token(live_gateway, sink, tmp_path):
    from tests.conftest import CLIENT, grant_consent

    grant_consent(live_gateway.gw, CLIENT, partner_kind="webhook")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - {id: webhook.regional, message_type: notice, target: webhook, purpose: signalering,"
        " legal_bases: [toestemming], mapping: webhook_notice, partner_attribute: region}\n")
    live_gateway.gw.settings.routes_file = routes
    from gateway.core.plugins import add_routes
    from gateway.core.routing import load_routes_file

    add_routes(live_gateway.gw.registry, load_routes_file(routes))
    with live_gateway.client() as admin:
        for region in ("noord", "zuid"):
            assert admin.post("/api/v1/partners", json=_region_partner(sink.url, f"regio-{region}", region)).status_code == 201
        clash = admin.post("/api/v1/partners", json=_region_partner(sink.url, "regio-dubbel", "zuid"))
        assert clash.status_code == 409
        to_zuid = submit(admin, notice("r-zuid", partner=None, region="zuid"), route="webhook.regional").json()
        unknown = submit(admin, notice("r-west", partner=None, region="west"), route="webhook.regional")
        eventually(lambda: exchange_state(admin, to_zuid["exchange_id"]) == "delivered")
    assert to_zuid["partner"] == "regio-zuid"
    assert unknown.status_code == 422 and unknown.json()["type"] == "/problems/no-partner"
    (received,) = httpx.get(sink.url + "/_received").json()["items"].values()
    assert received["path"] == "/inbox/zuid"
    assert received["authorization"] == f"Bearer {TOKEN}"


def test_a_partner_can_be_reconfigured_without_resending_its_secret(live_gateway, sink):
    with live_gateway.client() as admin:
        admin.post("/api/v1/partners", json={**_region_partner(sink.url, "regio-oost", "oost"),
                                             "config": {"token": TOKEN, "path": "meldingen"}})
        patched = admin.patch("/api/v1/partners/regio-oost", json={"name": "Regio Oost (nieuw)", "config": {"token": "********"}})
        assert patched.status_code == 200 and patched.json()["name"] == "Regio Oost (nieuw)"
        assert patched.json()["config"] == {"path": "meldingen", "token": "********"}
    with live_gateway.gw.store.reading() as session:
        secrets = live_gateway.gw.box.decrypt_json(session.get(Partner, "regio-oost").credentials_encrypted)
    assert secrets == {"token": TOKEN}


def test_partner_input_is_validated_with_problems(live_gateway):
    with live_gateway.client() as admin:
        bad_type = admin.post("/api/v1/partners", json={"id": "x-1", "connector_type": "nope", "name": "X",
                                                        "endpoint": "http://127.0.0.1:1"})
        bad_id = admin.post("/api/v1/partners", json={"id": "X Y", "connector_type": "webhook", "name": "X",
                                                      "endpoint": "http://127.0.0.1:1"})
        bad_config = admin.post("/api/v1/partners", json={"id": "x-2", "connector_type": "webhook", "name": "X",
                                                          "endpoint": "http://127.0.0.1:1", "config": {"token": 5}})
        missing = admin.get("/api/v1/partners/nobody")
        admin.post("/api/v1/partners", json={"id": "x-4", "connector_type": "webhook", "name": "X",
                                             "endpoint": "http://127.0.0.1:1"})
        misspelt = admin.patch("/api/v1/partners/x-4", json={"nmae": "Y"})
        misspelt_new = admin.post("/api/v1/partners", json={"id": "x-5", "connector_type": "webhook", "name": "X",
                                                            "endpoint": "http://127.0.0.1:1", "identifier": {}})
    assert misspelt.status_code == 422 and misspelt.json()["errors"][0]["location"] == ["body", "nmae"]
    assert misspelt_new.status_code == 422 and misspelt_new.json()["errors"][0]["location"] == ["body", "identifier"]
    assert bad_type.status_code == 422 and bad_type.json()["errors"][0]["location"] == ["body", "connector_type"]
    assert bad_id.status_code == 422 and bad_id.json()["type"] == "/problems/validation-failed"
    assert bad_config.status_code == 422 and bad_config.json()["errors"][0]["location"] == ["config", "token"]
    assert missing.status_code == 404


def test_only_an_administrator_changes_partners(live_gateway):
    with live_gateway.client("hulpverlener") as worker:
        refused = worker.post("/api/v1/partners", json={"id": "x-3", "connector_type": "webhook", "name": "X",
                                                         "endpoint": "http://127.0.0.1:1"})
        pause = worker.post("/api/v1/connectors/webhook/pause", json={"reason": "niet mijn taak"})
    assert refused.status_code == pause.status_code == 403
    assert refused.json()["type"] == "/problems/forbidden"


def test_a_nul_character_in_a_filter_is_refused_as_invalid_input_not_a_server_error(live_gateway):
    """Found by schemathesis at 100 examples: PostgreSQL stores no NUL in text, and the driver's
    error became a 500. It is the client's input, so it is a 422 problem on either backend, and
    a request with a NUL in a JSON string gets the same."""
    with live_gateway.client() as admin:
        listed = admin.get("/api/v1/partners", params={"connector_type": "web\x00hook"})
        created = admin.post("/api/v1/partners", json={
            "id": "regio-nul", "connector_type": "webhook", "name": "Regio\x00Nul",
            "endpoint": "http://127.0.0.1:9/inbox"})
        assert admin.get("/api/v1/partners").status_code == 200  # and the gateway goes on
    assert listed.status_code in (200, 422)
    if live_gateway.gw.store.is_postgres:
        assert listed.status_code == 422 and listed.headers["content-type"] == "application/problem+json"
        assert listed.json()["type"].endswith("/validation-failed")
    assert created.status_code in (201, 422), created.text
    if live_gateway.gw.store.is_postgres:
        assert created.status_code == 422
