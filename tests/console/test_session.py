"""Signing in and out of the console: the API's own tokens, cookies that scripts and other sites
cannot use, sessions that expire and end for good at logout, and Dutch pages for every error."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.app import create_app
from gateway.core.auth import revoke_token
from gateway.core.models import ApiToken
from tests.conftest import LiveGateway, make_settings
from tests.servers import ThreadServer


@pytest.fixture
def bare_gateway(tmp_path: Path, request: pytest.FixtureRequest):
    """A gateway without simulators, with console settings a test may override (``indirect``)."""
    overrides = getattr(request, "param", {})
    settings = make_settings(f"sqlite:///{tmp_path / 'gateway.db'}", tmp_path, enabled_plugins=[], **overrides)
    with ThreadServer(create_app(settings)) as server:
        yield LiveGateway(server)


def test_signing_in_with_a_token_and_out_again_ends_the_session_for_good(bare_gateway, console_factory):
    admin = console_factory(bare_gateway)
    admin.goto("/console/uitwisselingen")
    assert admin.heading() == "Inloggen bij Schakel"
    admin.login("beheerder", here=True)
    assert admin.heading() == "Uitwisselingen"  # back to the page she asked for

    cookie = next(c for c in admin.page.context.cookies() if c["name"] == "schakel_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert bare_gateway.tokens["beheerder:None"] not in cookie["value"]  # the token itself never goes into it
    assert admin.page.evaluate("document.cookie") == ""

    admin.submit("Uitloggen")
    assert admin.heading() == "Inloggen bij Schakel" and "U bent uitgelogd." in admin.text()
    admin.check("uitgelogd")
    # A copy of the old cookie is worthless now: logout revoked the session in the store.
    admin.page.context.add_cookies([cookie])
    admin.goto("/console/beheer")
    assert admin.heading() == "Inloggen bij Schakel"
    with bare_gateway.client("privacy") as api:
        events = [e["event_type"] for e in api.get("/api/v1/audit", params={"event_type": "token.revoked"}).json()["items"]]
    assert events == ["token.revoked"]


def test_wrong_tokens_partner_tokens_and_foreign_return_addresses_are_refused(bare_gateway, console_factory):
    bare_gateway.add_partner("partner-a", "http://127.0.0.1:9/inbox", consenting_clients=())
    person = console_factory(bare_gateway)
    for token in ("sk_dit-token-bestaat-niet", bare_gateway.token("partner", "partner-a")):
        person.login("beheerder", token=token)
        assert person.heading() == "Inloggen bij Schakel"
        assert "onbekend, verlopen of ingetrokken, of geeft geen toegang tot de console" in person.text()
    person.check("inloggen-mislukt")

    person.goto("/console/inloggen?terug=//evil.example/console/")
    person.login("privacy", here=True)
    assert person.page.url.startswith(bare_gateway.url + "/console/privacy")


def test_a_revoked_token_ends_its_console_sessions(bare_gateway, console_factory):
    admin = console_factory(bare_gateway)
    admin.login("beheerder")
    assert admin.heading() == "Overzicht"
    with bare_gateway.gw.store.transaction() as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "test-beheerder-staff"))
        assert revoke_token(session, token_id)
    admin.page.reload()
    assert admin.heading() == "Inloggen bij Schakel"
    assert "Uw sessie is beëindigd: het token waarmee u inlogde is ingetrokken" in admin.text()


@pytest.mark.parametrize("bare_gateway", [{"console_session_minutes": 0.04}], indirect=True)
def test_a_session_expires_after_its_lifetime(bare_gateway, console_factory):
    admin = console_factory(bare_gateway)
    admin.login("beheerder")
    assert admin.heading() == "Overzicht"
    time.sleep(2.6)
    admin.page.reload()
    assert admin.heading() == "Inloggen bij Schakel" and "Uw sessie is verlopen" in admin.text()


@pytest.mark.parametrize("bare_gateway", [{"console_idle_minutes": 0.04}], indirect=True)
def test_a_session_expires_when_idle_but_not_while_in_use(bare_gateway, console_factory):
    admin = console_factory(bare_gateway)
    admin.login("beheerder")
    for _ in range(4):  # 4 s of use, a request every second: still signed in
        time.sleep(1)
        admin.page.reload()
        assert admin.heading() == "Overzicht"
    time.sleep(2.6)
    admin.page.reload()
    assert admin.heading() == "Inloggen bij Schakel" and "een tijd niets heeft gedaan" in admin.text()


def test_the_cookie_is_secure_when_the_console_is_served_over_https(bare_gateway):
    with httpx.Client(base_url=bare_gateway.url, headers={"X-Forwarded-Proto": "https"}) as browser:
        form = browser.get("/console/inloggen")
        nonce = re.search(r'name="login_nonce" value="([^"]+)"', form.text).group(1)
        # The login cookie is Secure too, so plain-http httpx would not send it back: do it by hand.
        signed_in = browser.post("/console/inloggen", data={"token": bare_gateway.token("beheerder"), "login_nonce": nonce},
                                 headers={"Cookie": f"schakel_console_login={form.cookies['schakel_console_login']}"})
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert "schakel_console=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_errors_are_dutch_pages_never_problem_json_or_a_traceback(bare_gateway, console_factory):
    admin = console_factory(bare_gateway)
    admin.login("beheerder")
    for path, status, heading in (("/console/uitwisselingen/bestaat-niet", 404, "Niet gevonden"),
                                  ("/console/beheer/koppelingen/bestaat-niet", 404, "Niet gevonden"),
                                  ("/console/bestaat-niet", 404, "Pagina niet gevonden"),
                                  ("/console/uitwisselingen?state=kwijt&van=gisteren", 422, "Uitwisselingen")):
        response = admin.goto(path)
        assert response.status == status, path
        assert response.headers["content-type"].startswith("text/html")
        assert admin.heading() == heading, path
        assert "Traceback" not in admin.page.content()
    assert "Vanaf: Vul een geldige datum in." in admin.page.locator(".error-summary").inner_text()
    admin.check("fout-filter")
    admin.goto("/console/uitwisselingen/bestaat-niet")
    admin.check("niet-gevonden")
    # The page security headers: never cached, never framed.
    response = httpx.get(bare_gateway.url + "/console/inloggen")
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
