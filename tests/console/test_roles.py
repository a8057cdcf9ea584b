"""Each role sees only its own console pages; a worker never sees the audit search, a privacy
officer cannot send; forged and cross-origin forms change nothing."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute

from gateway.console.pages import ConsoleRoute

ADMIN, WORKER, PRIVACY = "beheerder", "hulpverlener", "privacy"
STAFF = {ADMIN, WORKER, PRIVACY}
PUBLIC = "public"

# Every console page, and who may open it. A page that calls an API function declares the roles
# of that API endpoint (see tests/api/test_roles.py); pages that only render declare their own.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/console"): {PUBLIC},
    ("GET", "/console/inloggen"): {PUBLIC},
    ("POST", "/console/inloggen"): {PUBLIC},
    ("POST", "/console/uitloggen"): STAFF,
    ("GET", "/console/werk"): {WORKER},
    ("GET", "/console/beheer"): {ADMIN},
    ("GET", "/console/beheer/koppelingen"): {ADMIN},
    ("GET", "/console/beheer/koppelingen/{connector_type}"): {ADMIN},
    ("POST", "/console/beheer/koppelingen/{connector_type}/{action}"): {ADMIN},
    ("GET", "/console/beheer/partners"): {ADMIN},
    ("GET", "/console/beheer/partners/nieuw"): {ADMIN},
    ("POST", "/console/beheer/partners/nieuw"): {ADMIN},
    ("GET", "/console/beheer/partners/{partner_id}"): {ADMIN},
    ("POST", "/console/beheer/partners/{partner_id}"): {ADMIN},
    ("POST", "/console/beheer/partners/{partner_id}/{action}"): {ADMIN},
    ("GET", "/console/beheer/onbestelbaar"): {ADMIN},
    ("POST", "/console/beheer/onbestelbaar/opnieuw"): {ADMIN},
    ("GET", "/console/uitwisselingen"): STAFF,
    ("GET", "/console/uitwisselingen/{exchange_id}"): STAFF,
    ("POST", "/console/uitwisselingen/{exchange_id}/opnieuw"): {ADMIN},
    ("GET", "/console/privacy"): {PRIVACY},
    ("POST", "/console/privacy/zoeken"): {PRIVACY},
    ("GET", "/console/auditketen"): {PRIVACY, ADMIN},
    ("POST", "/console/auditketen/checkpoint"): {PRIVACY, ADMIN},
    ("GET", "/console/privacy/inzage"): {PRIVACY},
    ("POST", "/console/privacy/inzage"): {PRIVACY},
    ("GET", "/console/privacy/toestemmingen"): {PRIVACY},
    ("POST", "/console/privacy/toestemmingen/zoeken"): {PRIVACY},
    ("POST", "/console/privacy/toestemmingen/{consent_id}/intrekken"): {PRIVACY},
    ("GET", "/console/privacy/inzien/{exchange_id}"): {PRIVACY},
    ("POST", "/console/privacy/inzien/{exchange_id}"): {PRIVACY},
    # plugin: veiligthuis
    ("GET", "/console/veiligthuis"): {WORKER},
    ("POST", "/console/veiligthuis/concept"): {WORKER},
    ("POST", "/console/veiligthuis/afweging"): {WORKER},
    ("POST", "/console/veiligthuis/controleren"): {WORKER},
    ("POST", "/console/veiligthuis/versturen"): {WORKER},
    ("GET", "/console/veiligthuis/meldingen/{exchange_id}"): {WORKER},
    ("POST", "/console/veiligthuis/meldingen/{exchange_id}/terugkoppeling"): {WORKER},
}
FALLBACK = "/console/{rest:path}"

NAV = {
    ADMIN: ["Overzicht", "Koppelingen", "Partners", "Onbestelbare berichten", "Uitwisselingen", "Auditketen"],
    WORKER: ["Start", "Melding Veilig Thuis"],
    PRIVACY: ["Auditlog", "Inzageverslag", "Toestemmingen", "Auditketen"],
}


def console_routes(app) -> dict[tuple[str, str], APIRoute]:
    found: dict[tuple[str, str], APIRoute] = {}

    def walk(routes, prefix: str) -> None:
        for route in routes:
            nested = getattr(route, "original_router", None)
            if nested is not None:
                walk(nested.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif isinstance(route, ConsoleRoute):
                for method in route.methods:
                    found[(method, prefix + route.path)] = route

    walk(app.routes, "")
    return found


def declared_roles(route: APIRoute) -> set[str]:
    for dependency in route.dependant.dependencies:
        roles = getattr(dependency.call, "roles", None)
        if roles is not None:
            return set(roles)
    return {PUBLIC}


def test_every_console_page_is_in_the_matrix_declares_its_roles_and_stays_out_of_the_openapi_document(world):
    app = world.live.server.app
    routes = {key: route for key, route in console_routes(app).items() if key[1] != FALLBACK}
    assert set(routes) == set(MATRIX), f"matrix and app differ: {sorted(set(routes) ^ set(MATRIX))}"
    for key, route in routes.items():
        assert declared_roles(route) == MATRIX[key], f"{key} declares {declared_roles(route)}"
        assert route.include_in_schema is False, key
    assert not [path for path in httpx.get(world.live.url + "/openapi.json").json()["paths"] if path.startswith("/console")]


@pytest.mark.parametrize("role", [ADMIN, WORKER, PRIVACY])
def test_each_role_sees_only_its_own_pages(world, console_factory, role):
    person = console_factory(world.live)
    person.login(role)
    assert person.page.locator("nav.menu a").all_inner_texts() == NAV[role]
    refused = []
    for (method, path), allowed in sorted(MATRIX.items()):
        if method != "GET" or "{" in path or PUBLIC in allowed:
            continue
        response = person.goto(path)
        if role in allowed and response.status != 200:
            refused.append(f"{path}: {response.status}, but {role} may open it")
        if role not in allowed:
            if response.status != 403 or person.heading() != "Geen toegang":
                refused.append(f"{path}: {response.status} {person.heading()!r}, expected 403 Geen toegang")
    assert not refused, "\n".join(refused)
    person.goto("/console/privacy" if role != PRIVACY else "/console/beheer")
    person.check(f"geen-toegang-{role}")


def forge_post(page, action: str, fields: dict[str, str]) -> None:
    """What a user (or a hostile page) can do by hand: build a form and submit it."""
    with page.expect_navigation():
        page.evaluate("""([action, fields]) => {
            const form = document.createElement('form');
            form.method = 'post'; form.action = action;
            for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }""", [action, fields])


def csrf_token(person) -> str:
    return person.page.locator("input[name=csrf_token]").first.get_attribute("value")


def test_a_privacy_officer_cannot_send_a_melding_even_with_a_forged_form(world, console_factory):
    officer = console_factory(world.live)
    officer.login(PRIVACY)
    payload = ('{"dossier_id": "D-0001", "answers": {"meldcode_steps": [1], "weighing": {"vermoeden": true, '
               '"onveiligheid": true, "hulp_mogelijk": false, "hulp_aanvaard": false, "hulp_leidt_tot_veiligheid": false}, '
               '"decision": "melden", "client_informed": true, "legal_basis": "meldrecht"}}')
    forge_post(officer.page, world.live.url + "/console/veiligthuis/versturen",
               {"csrf_token": csrf_token(officer), "payload": payload, "idempotency_key": "console-forged"})
    assert officer.heading() == "Geen toegang"
    assert world.vt_received() == []
    with world.live.client(PRIVACY) as api:
        assert api.get("/api/v1/exchanges").json()["items"] == []


def test_a_form_without_the_session_token_or_from_another_origin_changes_nothing(world, console_factory):
    admin = console_factory(world.live)
    admin.login(ADMIN)
    action = world.live.url + "/console/beheer/koppelingen/webhook/pauzeren"
    for guess in ("geraden", "géraden"):
        forge_post(admin.page, action, {"csrf_token": guess, "reason": "vervalst formulier"})
        assert admin.heading() == "Geen toegang"
    assert "kwam niet van deze console" in admin.text()
    admin.check("csrf-geweigerd")

    # Even with the right token, a form posted from another origin is refused. (Another port on the
    # same host is the same *site*, so the SameSite cookie still goes along: the Origin check stops it.)
    admin.goto("/console/beheer")
    token = csrf_token(admin)
    admin.page.goto(world.sink.url + "/_stats")
    forge_post(admin.page, action, {"csrf_token": token, "reason": "vervalst formulier"})
    assert admin.heading() == "Geen toegang"
    with world.live.client(ADMIN) as api:
        assert api.get("/api/v1/connectors/webhook").json()["state"] == "active"
