"""The Care4-style ECD: its API document, its simulator's data and guard, and the adapter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from gateway.core.partners import PartnerView
from gateway.core.pseudonyms import elfproef
from schakel_care4.client import Care4Client, Care4Unavailable
from schakel_care4.fixtures import build
from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET, create_app
from tests.servers import ThreadServer

OPENAPI = Path(__file__).resolve().parents[1] / "schakel_care4" / "openapi.json"


@pytest.fixture(scope="module")
def ecd():
    with ThreadServer(create_app(), ready_path="/docs") as server:
        yield server


def token(url: str) -> str:
    response = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                      "client_secret": CLIENT_SECRET})
    return response.json()["access_token"]


def test_the_openapi_document_in_the_plugin_is_the_simulators_own():
    assert json.loads(OPENAPI.read_text()) == json.loads(json.dumps(create_app().openapi())), \
        "openapi.json is stale: run `python -m schakel_care4.simulator`"
    spec = json.loads(OPENAPI.read_text())
    assert spec["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    for path in ("/clients", "/households/{household_id}", "/dossiers/{dossier_id}", "/dossiers/{dossier_id}/consents",
                 "/dossiers/{dossier_id}/notes", "/dossiers/{dossier_id}/documents", "/referrals"):
        assert path in spec["paths"]


def test_the_fixtures_hold_the_households_the_gateway_must_get_right():
    data = build()
    assert len(data["households"]) >= 20
    bsns = [c["bsn"] for c in data["clients"].values() if c["bsn"]]
    bsns += [k["bsn"] for h in data["households"].values() for k in h["children"]]
    assert all(elfproef(b) for b in bsns) and len(set(bsns)) == len(bsns)
    mother = data["households"]["H-0001"]
    assert len(mother["children"]) == 3 and "address" in mother["confidential"]
    assert data["clients"]["C-0002"]["gender"] == "M"
    alias = data["clients"]["C-0003"]
    assert alias["bsn"] is None and alias["alias"]
    assert data["dossiers"]["D-0004"]["other_party"]["client_id"] == "C-0005"
    assert data["dossiers"]["D-0005"]["client_id"] == "C-0005"


def test_every_endpoint_needs_a_token_from_client_credentials(ecd):
    assert httpx.get(ecd.url + "/clients").status_code == 401
    bad = httpx.post(ecd.url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                     "client_secret": "wrong"})
    assert bad.status_code == 401
    headers = {"Authorization": f"Bearer {token(ecd.url)}"}
    page = httpx.get(ecd.url + "/clients", params={"limit": 5, "offset": 5}, headers=headers).json()
    assert page["total"] == 24 and len(page["items"]) == 5 and page["offset"] == 5
    none_newer = httpx.get(ecd.url + "/clients", params={"updated_since": "2099-01-01"}, headers=headers).json()
    assert none_newer["items"] == []


def test_writes_are_idempotent_by_key(ecd):
    headers = {"Authorization": f"Bearer {token(ecd.url)}", "Idempotency-Key": "note-1"}
    first = httpx.post(ecd.url + "/dossiers/D-0001/notes", json={"text": "Eerste notitie"}, headers=headers).json()
    second = httpx.post(ecd.url + "/dossiers/D-0001/notes", json={"text": "Eerste notitie"}, headers=headers).json()
    assert first["id"] == second["id"]
    assert httpx.get(ecd.url + "/_stats").json()["duplicates"] >= 1


def test_the_adapter_reads_a_dossier_bundle_and_retries_a_flaky_ecd(ecd):
    partner = PartnerView(id="care4-test", connector_type="care4", name="ECD", endpoint=ecd.url,
                          config={"client_id": CLIENT_ID}, secrets={"client_secret": CLIENT_SECRET})

    async def run() -> tuple[dict, Exception | None]:
        async with httpx.AsyncClient() as http:
            client = Care4Client(http, partner, retry_scale=0.01)
            httpx.post(ecd.url + "/_control", json={"fail_status": 503, "count": 2})
            bundle = await client.dossier_bundle("D-0004")
            httpx.post(ecd.url + "/_control", json={"fail_status": 503})
            try:
                await client.get("/clients/C-0001")
                error = None
            except Care4Unavailable as exc:
                error = exc
            httpx.post(ecd.url + "/_control", json={})
            return bundle, error

    bundle, error = asyncio.run(run())
    assert bundle["dossier"]["id"] == "D-0004" and bundle["client"]["id"] == "C-0004"
    assert bundle["household"]["id"] == "H-0004"
    assert isinstance(error, Care4Unavailable)
