"""Console sessions: login with an API token, a sealed cookie, CSRF tokens, expiry and logout.

Logging in with a token opens a *session token* through the core's own token service: an
ordinary ``api_tokens`` row (named ``console-sessie: <name>``) with the same role, expiring after
``GATEWAY_CONSOLE_SESSION_MINUTES``. So a session is checked by the same ``authenticate`` as every
API call, shows up in ``gateway tokens list``, is audited when it opens and closes, and logout
revokes it for good — a copied cookie is worthless afterwards, in every gateway process.

The cookie holds that session token, the id of the token logged in with (revoking it ends its
sessions too), the per-session CSRF token and the time of the last request, encrypted and
authenticated with the gateway's Fernet keys. It is HttpOnly, SameSite=Strict, scoped to
``/console`` and Secure when served over https.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.core import auth
from gateway.core.auth import Principal
from gateway.core.crypto import DecryptionError
from gateway.core.models import ApiToken, utcnow
from gateway.core.runtime import Gateway

COOKIE = "schakel_console"
LOGIN_COOKIE = "schakel_console_login"
COOKIE_PATH = "/console"
SESSION_NAME = "console-sessie: {name}"
STAFF_ROLES = ("beheerder", "hulpverlener", "privacy")
HOME = {"beheerder": "/console/beheer", "hulpverlener": "/console/werk", "privacy": "/console/privacy"}


class LoginRequired(Exception):
    """No valid session: the console answers with the login page, which says why (``reason``:
    ``verlopen``, ``inactief``, ``beeindigd``; empty when nobody was signed in)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Forbidden(Exception):
    """A valid session whose role may not see this page or do this."""

    def __init__(self, message: str = "Deze pagina hoort niet bij uw rol.") -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ConsoleSession:
    """The signed-in person for one request, and what the response must write back."""

    principal: Principal
    session_token: str
    session_token_id: str
    login_token_id: str
    csrf_token: str
    flashes: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def home(self) -> str:
        return HOME[self.role]

    def flash(self, text: str, kind: str = "succes") -> None:
        """A message for the next page (after a redirect): ``succes`` or ``fout``."""
        self.flashes.append((kind, text))

    def pop_flashes(self) -> list[tuple[str, str]]:
        flashes, self.flashes = self.flashes, []
        return flashes

    def sealed(self, gw: Gateway) -> str:
        data = {"t": self.session_token, "s": self.session_token_id, "l": self.login_token_id, "c": self.csrf_token,
                "seen": time.time(), "f": self.flashes}
        return gw.box.encrypt_json(data).decode()


def _secure(request: Request) -> bool:
    # Behind a TLS-terminating proxy the scheme is http unless the proxy is trusted; the public
    # address says how people reach the console.
    gw: Gateway = request.app.state.gateway
    return request.url.scheme == "https" or gw.settings.public_base_url.startswith("https://")


def write_cookie(response: Response, request: Request, session: ConsoleSession) -> None:
    gw: Gateway = request.app.state.gateway
    if session.ended:
        response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict")
        return
    # No Max-Age: closing the browser ends the session (a shared workstation), and the server, not
    # the browser, decides when it has expired — so it can say so.
    response.set_cookie(COOKIE, session.sealed(gw), path=COOKIE_PATH, secure=_secure(request), httponly=True,
                        samesite="strict")


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict")


# --- login and logout ------------------------------------------------------------------------------

def _equal(a: str, b: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, and a forged form may send them.
    return hmac.compare_digest(a.encode(), b.encode())


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def set_login_nonce(response: Response, request: Request, nonce: str) -> None:
    """The login form is a POST without a session yet: a double-submit nonce guards it."""
    response.set_cookie(LOGIN_COOKIE, nonce, path=COOKIE_PATH, secure=_secure(request), httponly=True,
                        samesite="strict", max_age=15 * 60)


def login_nonce_valid(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    return bool(expected) and _equal(expected, submitted)


def open_session(gw: Gateway, token: str, access_point: str | None) -> ConsoleSession | None:
    """Check a token as the API would and open a session for it; ``None`` if it does not open one."""
    with gw.store.reading() as session:
        login = auth.authenticate(session, token.strip())
    if login is None or login.role not in STAFF_ROLES:
        return None
    principal = Principal(login.token_id, login.name, login.role, None, access_point)
    with gw.store.transaction() as session:
        row, plain = auth.create_token(session, SESSION_NAME.format(name=login.name)[:200], login.role,
                                       expires_in=timedelta(minutes=gw.settings.console_session_minutes),
                                       actor=principal.actor())
        row_id = row.id
    return ConsoleSession(principal, plain, row_id, login.token_id, secrets.token_urlsafe(32))


def close_session(gw: Gateway, console: ConsoleSession) -> None:
    with gw.store.transaction() as session:
        auth.revoke_token(session, console.session_token_id, console.principal.actor())
    console.ended = True


# --- every request -----------------------------------------------------------------------------------

def _load(gw: Gateway, request: Request) -> ConsoleSession:
    sealed = request.cookies.get(COOKIE)
    if not sealed:
        raise LoginRequired()
    try:
        data: dict[str, Any] = gw.box.decrypt_json(sealed.encode())
    except (DecryptionError, ValueError):
        raise LoginRequired("verlopen") from None
    if time.time() - float(data.get("seen", 0)) > gw.settings.console_idle_minutes * 60:
        raise LoginRequired("inactief")
    now = utcnow()
    with gw.store.reading() as session:
        current = auth.authenticate(session, data["t"], now)
        login = session.get(ApiToken, data["l"])
        login_valid = (login is not None and login.revoked_at is None
                       and (login.expires_at is None or login.expires_at > now))
        name = login.name if login is not None else ""
    if current is None or not login_valid:
        raise LoginRequired("verlopen" if login_valid else "beeindigd")
    client = request.client.host if request.client else None
    principal = Principal(data["l"], name, current.role, None, client)
    return ConsoleSession(principal, data["t"], data["s"], data["l"], data["c"],
                          flashes=[tuple(f) for f in data.get("f", [])])  # type: ignore[misc]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # SameSite=Strict already keeps the cookie off cross-site posts; a missing Origin is an old
        # browser or a same-origin navigation, and the CSRF token still has to match.
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def check_csrf(request: Request, console: ConsoleSession) -> None:
    form = await request.form()
    submitted = str(form.get("csrf_token", ""))
    if not _same_origin(request) or not _equal(submitted, console.csrf_token):
        raise Forbidden("Dit formulier is verlopen of kwam niet van deze console. Open de pagina opnieuw en probeer het nog eens.")


def console_user(*roles: str) -> Callable[..., Any]:
    """Declare which roles may open a console page; POSTs must carry the session's CSRF token.

    The role names are the API's: a page calls the same core function as an API endpoint, and
    declares the same roles that endpoint does.
    """

    async def _dependency(request: Request) -> ConsoleSession:
        gw: Gateway = request.app.state.gateway
        console = await run_in_threadpool(_load, gw, request)
        # The wrapper in pages.ConsoleRoute writes the cookie back (with the idle clock reset).
        request.state.console_session = console
        if console.role not in roles:
            raise Forbidden()
        if request.method not in ("GET", "HEAD"):
            await check_csrf(request, console)
        return console

    _dependency.roles = roles  # type: ignore[attr-defined]
    return _dependency
