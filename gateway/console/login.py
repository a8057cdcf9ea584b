"""Logging in and out, the start page per role, and the worker's start page."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.console.pages import console_router, error_page, redirect, render, site
from gateway.console.session import (
    COOKIE,
    ConsoleSession,
    Forbidden,
    LoginRequired,
    close_session,
    console_user,
    login_nonce_valid,
    new_login_nonce,
    open_session,
    set_login_nonce,
    write_cookie,
)

router = console_router()
AnyStaff = Annotated[ConsoleSession, Depends(console_user("beheerder", "hulpverlener", "privacy"))]
Worker = Annotated[ConsoleSession, Depends(console_user("hulpverlener"))]


EXPIRED = {
    "verlopen": "Uw sessie is verlopen. Log opnieuw in.",
    "inactief": "Uw sessie is verlopen omdat u een tijd niets heeft gedaan. Log opnieuw in.",
    "beeindigd": "Uw sessie is beëindigd: het token waarmee u inlogde is ingetrokken of verlopen.",
}


def _safe_back(value: str) -> str:
    # Only back into the console: never an open redirect to another site.
    return value if value.startswith("/console/") and not value.startswith("//") and "\\" not in value else ""


def _duration(minutes: float) -> str:
    if minutes >= 120 and minutes % 60 == 0:
        return f"{int(minutes // 60)} uur"
    return f"{minutes:g} minuten".replace(".", ",")


def _login_page(request: Request, status: int = 200, error: str = "", notice: str = "", back: str = "") -> Response:
    settings = request.app.state.gateway.settings
    nonce = new_login_nonce()
    response = render(request, "login.html", status=status, error=error, notice=notice, back=back, nonce=nonce,
                      idle=_duration(settings.console_idle_minutes), lifetime=_duration(settings.console_session_minutes))
    set_login_nonce(response, request, nonce)
    return response


@router.get("/console")
async def start(request: Request) -> Response:
    if not request.cookies.get(COOKIE):
        return redirect("/console/inloggen")
    console = await console_user("beheerder", "hulpverlener", "privacy")(request)
    return redirect(console.home)


@router.get("/console/inloggen")
async def login_form(request: Request, terug: str = "", verlopen: str = "", uitgelogd: str = "") -> Response:
    notice = "U bent uitgelogd." if uitgelogd else ""
    error = EXPIRED.get(verlopen, EXPIRED["verlopen"]) if verlopen else ""
    return _login_page(request, error=error, notice=notice, back=_safe_back(terug))


@router.post("/console/inloggen")
async def login(request: Request) -> Response:
    form = await request.form()
    back = _safe_back(str(form.get("terug", "")))
    if not login_nonce_valid(request, str(form.get("login_nonce", ""))):
        return _login_page(request, 400, error="Het inlogformulier was verlopen. Probeer het opnieuw.", back=back)
    token = str(form.get("token", ""))
    if not token.strip():
        return _login_page(request, 422, error="Vul uw token in.", back=back)
    access_point = request.client.host if request.client else None
    console = await run_in_threadpool(open_session, request.app.state.gateway, token, access_point)
    if console is None:
        return _login_page(request, 401, back=back,
                           error="Dit token is onbekend, verlopen of ingetrokken, of geeft geen toegang tot de console.")
    response = redirect(back or console.home)
    write_cookie(response, request, console)
    return response


@router.post("/console/uitloggen")
async def logout(request: Request, console: AnyStaff) -> Response:
    await run_in_threadpool(close_session, request.app.state.gateway, console)
    return redirect("/console/inloggen?uitgelogd=1")


@router.get("/console/werk")
async def work(request: Request, console: Worker) -> Response:
    tasks = [entry for entry in site(request).nav_for("hulpverlener") if entry.path != "/console/werk"]
    return render(request, "work.html", tasks=tasks)


# Included last, after every other console router: anything else under /console.
fallback_router = console_router()


@fallback_router.api_route("/console/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def not_found(request: Request, rest: str) -> Response:
    """A Dutch page, not problem+json; with the menu when someone is signed in."""
    try:
        await console_user("beheerder", "hulpverlener", "privacy")(request)
    except (LoginRequired, Forbidden):
        pass
    return error_page(request, 404, "Pagina niet gevonden", "Deze pagina bestaat niet. Kies een onderdeel in het menu.")
