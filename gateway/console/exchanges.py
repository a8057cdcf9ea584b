"""Exchanges: a filtered list, and one exchange with its timeline (replay for administrators,
break-the-glass for privacy officers). The same functions as ``gateway.api.exchanges``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.api import exchanges as api_exchanges
from gateway.api.schemas import ReasonIn, ReplayIn
from gateway.console import forms, labels
from gateway.console.pages import console_router, redirect, render
from gateway.console.session import ConsoleSession, console_user
from gateway.core.exchange import STATES
from gateway.core.problems import Problem

router = console_router(prefix="/console/uitwisselingen")
Staff = Annotated[ConsoleSession, Depends(console_user("beheerder", "hulpverlener", "privacy"))]
Admin = Annotated[ConsoleSession, Depends(console_user("beheerder"))]


@router.get("")
async def exchange_list(request: Request, me: Staff, state: str = "", route: str = "", partner: str = "",
                        connector: str = "", van: str = "", tot: str = "", cursor: str = "") -> Response:
    gw = request.app.state.gateway
    errors = {}
    since = forms.day_start(van) if van else None
    until = forms.day_start(tot, days_later=1) if tot else None
    if van and since is None:
        errors["van"] = "Vul een geldige datum in."
    if tot and until is None:
        errors["tot"] = "Vul een geldige datum in."
    if state and state not in STATES:
        errors["state"] = "Kies een van de mogelijkheden."
    page = None
    if not errors:
        page = await run_in_threadpool(lambda: api_exchanges.list_exchanges(
            gw, me.principal, state=state or None, route=route or None, partner=partner or None,
            connector=connector or None, since=since, until=until, limit=50, cursor=cursor or None))
    query = {"state": state, "route": route, "partner": partner, "connector": connector, "van": van, "tot": tot}
    return render(request, "exchanges.html", status=422 if errors else 200, page=page, errors=errors, query=query,
                  states=[(s, labels.state(s)) for s in STATES], routes=sorted(gw.registry.routes),
                  connectors=sorted(gw.registry.connectors))


@router.get("/{exchange_id}")
async def exchange_detail(request: Request, exchange_id: str, me: Staff) -> Response:
    gw = request.app.state.gateway
    exchange = await run_in_threadpool(api_exchanges.show_exchange, exchange_id, gw, me.principal)
    return render(request, "exchange.html", x=exchange)


@router.post("/{exchange_id}/opnieuw")
async def replay(request: Request, exchange_id: str, me: Admin) -> Response:
    gw = request.app.state.gateway
    form = await request.form()
    reason, errors = forms.validate(ReasonIn, {"reason": forms.text(form, "reason")})
    back = f"/console/uitwisselingen/{exchange_id}"
    if reason is None:
        me.flash(f"Niet opnieuw aangeboden: geef een reden. {errors.get('reason', '')}", "fout")
        return redirect(back)
    try:
        await run_in_threadpool(api_exchanges.replay_exchange, exchange_id, ReplayIn(reason=reason.reason), gw, me.principal)
    except Problem as problem:
        if problem.slug == "refused":
            me.flash("Niet opnieuw aangeboden: er is geen grondslag meer om dit bericht te versturen "
                     f"({problem.extensions.get('reason', '')}).", "fout")
            return redirect(back)
        if problem.slug != "state-conflict":
            raise
        me.flash("Dit bericht is niet (meer) onbestelbaar; er is niets opnieuw aangeboden.", "fout")
        return redirect(back)
    me.flash("Het bericht is opnieuw aangeboden en staat weer in de wachtrij.")
    return redirect(back)
