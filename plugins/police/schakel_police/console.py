"""The police plugin's console page, for workers: start a warm handover, and follow handovers.

Starting one calls :func:`schakel_police.api.hand_over`, the function behind
``POST /api/v1/police/overdrachten``: it builds the handover from the dossier and hands it to the
pipeline, which needs the client's consent. The list is :func:`schakel_police.handover.listing`,
as ``GET /api/v1/police/overdrachten``. Both with the API's roles.

Registered from ``plugin.py``::

    @hookimpl
    def register_console_pages(register):
        from schakel_police.console import NAV, PREFIX, TEMPLATES, router
        register(router, prefix=PREFIX, nav=NAV, templates=TEMPLATES)
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.console import ConsoleSession, NavEntry, console_router, console_user, redirect, render
from gateway.console.forms import text
from gateway.core.models import Partner
from gateway.core.problems import Problem

PREFIX = "/console/police"
TEMPLATES = Path(__file__).with_name("templates")
NAV = (NavEntry("Warme overdracht", f"{PREFIX}/overdrachten", ("hulpverlener",),
                "Een cliënt warm overdragen aan een gemeente of organisatie, met haar toestemming, en zien of de "
                "ontvanger de overdracht heeft opgehaald en bevestigd."),
       NavEntry("Huisverboden", f"{PREFIX}/verwijzingen", ("hulpverlener",),
                "Verwijzingen na een tijdelijk huisverbod, voor wie achterblijft en voor wie uit huis is geplaatst, "
                "met de datum waarop de hulp uiterlijk moet starten."))
DOSSIER = r"^[A-Za-z0-9_-]{1,64}$"
PROBLEMS = {
    "not-found": "Het ECD kent dit dossiernummer niet.",
    "no-partner": "Deze ontvanger is geen geregistreerde gemeente of organisatie.",
    "validation-failed": "Een warme overdracht gaat naar een gemeente of zorgorganisatie, niet naar de politie.",
    "unavailable": "Het ECD antwoordt nu niet. Probeer het zo opnieuw.",
}

router = console_router()
Worker = Annotated[ConsoleSession, Depends(console_user("hulpverlener"))]
WorkerOrPrivacy = Annotated[ConsoleSession, Depends(console_user("hulpverlener", "privacy"))]


def _receivers(gw: Any) -> list[tuple[str, str]]:
    """Municipalities and organisations of the police connector type: never a police unit."""
    from sqlalchemy import select

    from schakel_police.connector import soort_of

    with gw.store.reading() as session:
        partners = session.scalars(select(Partner).where(Partner.connector_type == "police").order_by(Partner.name))
        return [(p.id, p.name) for p in partners if soort_of(p.identifiers or {}) != "politie"]


async def _page(request: Request, status: int = 200, errors: dict[str, str] | None = None,
                values: dict[str, str] | None = None, refusal: dict[str, Any] | None = None) -> Response:
    from schakel_police.handover import listing

    gw = request.app.state.gateway
    rows = await run_in_threadpool(listing, gw)
    receivers = await run_in_threadpool(_receivers, gw)
    return render(request, "police/overdrachten.html", status=status, rows=rows, receivers=receivers,
                  errors=errors or {}, values=values or {}, refusal=refusal, key=f"console-{uuid.uuid4()}")


@router.get("/overdrachten")
async def handovers(request: Request, me: WorkerOrPrivacy) -> Response:
    return await _page(request)


@router.post("/overdrachten")
async def hand_over(request: Request, me: Worker) -> Response:
    from pydantic import ValidationError

    from gateway.console.forms import errors_of
    from schakel_police import api

    form = await request.form()
    values = {name: text(form, name) for name in ("dossier_id", "partner_id", "toelichting")}
    errors: dict[str, str] = {}
    if not re.match(DOSSIER, values["dossier_id"]):
        errors["dossier_id"] = "Vul het dossiernummer in zoals het in het ECD staat, bijvoorbeeld D-0001."
    try:
        body = api.HandoverIn(dossier_id=values["dossier_id"] or "-", partner_id=values["partner_id"],
                              toelichting=values["toelichting"] or None)
    except ValidationError as exc:
        errors.update({name: message for name, message in errors_of(exc).items() if name not in errors})
    key = text(form, "idempotency_key")
    if errors or not key.startswith("console-"):
        return await _page(request, 422, errors, values)
    try:
        answer = await api.hand_over(body, request.app.state.gateway, me.principal, key)
    except Problem as problem:
        if problem.slug not in PROBLEMS:
            raise
        field = "dossier_id" if problem.slug in ("not-found", "unavailable") else "partner_id"
        return await _page(request, problem.http_status, {field: PROBLEMS[problem.slug]}, values)
    result = json.loads(answer.body)
    if answer.status_code != 202:
        refusal = {"detail": result.get("detail"), "reasons": result.get("basis_reasons") or {}}
        return await _page(request, answer.status_code, values=values, refusal=refusal)
    me.flash("De overdracht is aangekondigd bij de ontvanger; zij haalt haar op met haar eigen toegang.")
    return redirect(f"{PREFIX}/overdrachten")


@router.get("/verwijzingen")
async def referrals(request: Request, me: WorkerOrPrivacy) -> Response:
    """The list behind ``GET /api/v1/police/verwijzingen``: the most urgent first."""
    from schakel_police.huisverbod import referrals as listing

    rows = await run_in_threadpool(listing, request.app.state.gateway)
    return render(request, "police/verwijzingen.html", rows=rows)
