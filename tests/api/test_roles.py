"""Every role against every endpoint: each endpoint declares who may call it, and nobody else can."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from gateway.api import openapi
from tests.helpers import notice

ADMIN, WORKER, PRIVACY, PARTNER = "beheerder", "hulpverlener", "privacy", "partner"
STAFF = {ADMIN, WORKER, PRIVACY}
PUBLIC = "public"

# (method, path) -> the roles whose call is not refused. The endpoint's own declaration must agree.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/health"): {PUBLIC},
    ("GET", "/ready"): {PUBLIC},
    ("POST", "/api/v1/routes/{route_id}/messages"): {ADMIN, WORKER, PARTNER},
    ("GET", "/api/v1/exchanges"): STAFF | {PARTNER},
    ("GET", "/api/v1/exchanges/{exchange_id}"): STAFF | {PARTNER},
    ("POST", "/api/v1/exchanges/{exchange_id}/replay"): {ADMIN},
    ("GET", "/api/v1/dead-letters"): {ADMIN},
    ("POST", "/api/v1/dead-letters/replay"): {ADMIN},
    ("GET", "/api/v1/connectors"): STAFF,
    ("GET", "/api/v1/connectors/{connector_type}"): STAFF,
    ("POST", "/api/v1/connectors/{connector_type}/pause"): {ADMIN},
    ("POST", "/api/v1/connectors/{connector_type}/resume"): {ADMIN},
    ("GET", "/api/v1/routes"): STAFF,
    ("GET", "/api/v1/partners"): STAFF,
    ("POST", "/api/v1/partners"): {ADMIN},
    ("GET", "/api/v1/partners/{partner_id}"): STAFF,
    ("PATCH", "/api/v1/partners/{partner_id}"): {ADMIN},
    ("POST", "/api/v1/partners/{partner_id}/pause"): {ADMIN},
    ("POST", "/api/v1/partners/{partner_id}/resume"): {ADMIN},
    ("POST", "/api/v1/pseudonyms"): {WORKER, PRIVACY},
    ("POST", "/api/v1/consents"): {WORKER},
    ("GET", "/api/v1/consents"): {WORKER, PRIVACY},
    ("GET", "/api/v1/consents/{consent_id}"): {WORKER, PRIVACY},
    ("POST", "/api/v1/consents/{consent_id}/withdraw"): {WORKER, PRIVACY},
    ("GET", "/api/v1/audit"): {PRIVACY},
    ("GET", "/api/v1/audit/verify"): {PRIVACY, ADMIN},
    ("GET", "/api/v1/audit/checkpoints"): {PRIVACY, ADMIN},
    ("POST", "/api/v1/audit/checkpoints"): {PRIVACY, ADMIN},
    ("GET", "/api/v1/audit/export"): {PRIVACY},
    ("POST", "/api/v1/access-report"): {PRIVACY},
    ("POST", "/api/v1/exchanges/{exchange_id}/break-glass"): {PRIVACY},
    # plugin: veiligthuis
    ("POST", "/api/v1/veiligthuis/drafts"): {WORKER},
    ("POST", "/api/v1/veiligthuis/meldingen"): {WORKER},
    ("GET", "/api/v1/veiligthuis/meldingen"): {WORKER, PRIVACY},
    ("POST", "/api/v1/veiligthuis/meldingen/{exchange_id}/terugkoppeling"): {WORKER},
    ("POST", "/partners/veiligthuis/terugkoppeling"): {PARTNER},
    # plugin: wmo
    ("POST", "/partners/wmo/berichten"): {PARTNER},
    ("POST", "/api/v1/wmo/start"): {WORKER},
    ("POST", "/api/v1/wmo/stop"): {WORKER},
    ("POST", "/api/v1/wmo/verzoeken/toewijzing"): {WORKER},
    ("POST", "/api/v1/wmo/verzoeken/wijziging"): {WORKER},
    ("POST", "/api/v1/wmo/batches"): {ADMIN},
    ("POST", "/api/v1/wmo/ondersteuningsplannen"): {WORKER},
    ("GET", "/api/v1/wmo/gezinsactieplannen"): {WORKER, PRIVACY},
    ("POST", "/partners/wmo/ondersteuningsplannen"): {PARTNER},
    # plugin: police
    ("POST", "/api/v1/police/overdrachten"): {WORKER},
    ("GET", "/api/v1/police/overdrachten"): {WORKER, PRIVACY},
    ("GET", "/api/v1/police/verwijzingen"): {WORKER, PRIVACY},
    ("POST", "/partners/police/huisverboden"): {PARTNER},
    ("POST", "/partners/police/zorgmeldingen"): {PARTNER},
    ("POST", "/partners/police/informatieverzoeken"): {PARTNER},
    ("GET", "/partners/police/overdrachten/{exchange_id}"): {PARTNER},
    ("POST", "/partners/police/overdrachten/{exchange_id}/ontvangst"): {PARTNER},
}

# Extra rules beyond the role: a partner may submit only on routes that name its connector type.
# (The matrix's partner is a webhook partner: Veilig Thuis feedback is for veiligthuis partners only.)
REFUSED_BY_ROUTE = {("POST", "/api/v1/routes/{route_id}/messages"): {PARTNER},
                    ("POST", "/partners/veiligthuis/terugkoppeling"): {PARTNER},
                    ("POST", "/partners/wmo/berichten"): {PARTNER},
                    ("POST", "/partners/wmo/ondersteuningsplannen"): {PARTNER},
                    ("POST", "/partners/police/huisverboden"): {PARTNER},
                    ("POST", "/partners/police/zorgmeldingen"): {PARTNER},
                    ("POST", "/partners/police/informatieverzoeken"): {PARTNER},
                    ("GET", "/partners/police/overdrachten/{exchange_id}"): {PARTNER},
                    ("POST", "/partners/police/overdrachten/{exchange_id}/ontvangst"): {PARTNER}}


def api_routes(app) -> dict[tuple[str, str], APIRoute]:
    """Every endpoint with its full path, walked as the OpenAPI document walks them."""
    return {(method, path): route for path, route in openapi.routes_with_prefix(app.routes) for method in route.methods}


def declared_roles(route: APIRoute) -> set[str]:
    roles = openapi.declared_roles(route)
    return {PUBLIC} if roles is None else roles


def test_every_endpoint_is_in_the_matrix_and_declares_the_same_roles(live_gateway):
    routes = api_routes(live_gateway.server.app)
    assert set(routes) == set(MATRIX), f"matrix and app differ: {sorted(set(routes) ^ set(MATRIX))}"
    for key, route in routes.items():
        assert declared_roles(route) == MATRIX[key], f"{key} declares {declared_roles(route)}"


@pytest.fixture
def world(live_gateway, sink):
    """One of everything, so allowed calls reach real objects."""
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client(WORKER) as worker:
        exchange_id = worker.post("/api/v1/routes/webhook.notice/messages", json=notice("r-matrix")).json()["exchange_id"]
        consent_id = worker.post("/api/v1/consents", json={"client_id": "C-9", "partner_id": "partner-a",
                                                           "purpose": "signalering"}).json()["id"]
    return {"route_id": "webhook.notice", "exchange_id": exchange_id, "consent_id": consent_id,
            "connector_type": "webhook", "partner_id": "partner-a"}


BODIES = {
    "/api/v1/routes/{route_id}/messages": notice("r-matrix-call"),
    "/api/v1/exchanges/{exchange_id}/replay": {"reason": "matrix test"},
    "/api/v1/dead-letters/replay": {"all": True, "reason": "matrix test"},
    "/api/v1/connectors/{connector_type}/pause": {"reason": "matrix test"},
    "/api/v1/connectors/{connector_type}/resume": {"reason": "matrix test"},
    "/api/v1/partners": {"id": "matrix-new", "connector_type": "webhook", "name": "M", "endpoint": "http://127.0.0.1:9"},
    "/api/v1/partners/{partner_id}": {"name": "Partner A"},
    "/api/v1/partners/{partner_id}/pause": {"reason": "matrix test"},
    "/api/v1/partners/{partner_id}/resume": {"reason": "matrix test"},
    "/api/v1/pseudonyms": {"client_id": "C-9"},
    "/api/v1/consents": {"client_id": "C-9", "partner_id": "partner-a", "purpose": "signalering"},
    "/api/v1/consents/{consent_id}/withdraw": {"reason": "matrix test"},
    "/api/v1/access-report": {"client_id": "C-9"},
    "/api/v1/exchanges/{exchange_id}/break-glass": {"reason": "matrix test of break the glass"},
    "/api/v1/veiligthuis/drafts": {"dossier_id": "D-0001"},
    "/api/v1/veiligthuis/meldingen": {"dossier_id": "D-0001", "answers": {}},
    "/api/v1/veiligthuis/meldingen/{exchange_id}/terugkoppeling": {"type": "besluit", "melding_kenmerk": "x",
                                                                   "date": "2026-11-22"},
    "/partners/veiligthuis/terugkoppeling": {"type": "besluit", "melding_kenmerk": "x", "date": "2026-11-22"},
}


# A worker reads one client's consents at a time (test_privacy_reads below); the matrix asks as one would.
QUERIES = {("GET", "/api/v1/consents"): {"subject": "psn:" + "0" * 40}}


@pytest.mark.parametrize("role", [ADMIN, WORKER, PRIVACY, PARTNER, None])
def test_each_role_gets_exactly_its_endpoints(live_gateway, world, role):
    headers = {}
    if role is not None:
        headers["Authorization"] = f"Bearer {live_gateway.token(role, 'partner-a' if role == PARTNER else None)}"
    failures = []
    for (method, path), allowed in sorted(MATRIX.items()):
        url = re.sub(r"\{(\w+)\}", lambda m: world[m.group(1)], path)
        response = httpx.request(method, live_gateway.url + url, headers=headers, json=BODIES.get(path),
                                 params=QUERIES.get((method, path)), timeout=30)
        may = PUBLIC in allowed or (role in allowed and role not in REFUSED_BY_ROUTE.get((method, path), set()))
        if may and response.status_code in (401, 403):
            failures.append(f"{role} {method} {path}: refused ({response.status_code}) but allowed")
        if not may:
            expected = 401 if role is None else 403
            if response.status_code != expected or response.headers["content-type"] != "application/problem+json":
                failures.append(f"{role} {method} {path}: {response.status_code}, expected {expected}")
    assert not failures, "\n".join(failures)
