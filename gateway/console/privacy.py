"""The privacy officer's pages: audit search, chain verification, the client access report, the
consent register and break-the-glass viewing — each the function behind the matching endpoint of
``gateway.api.privacy``, so what it records in the audit log is the API's.

A client number (BSN or ECD number) is typed only into POST forms and turned into the pseudonym
at once: it never lands in a URL, a browser history or a log line.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.api import exchanges as api_exchanges
from gateway.api import privacy as api_privacy
from gateway.api import partners as api_partners
from gateway.api.schemas import ReasonIn
from gateway.console import forms, labels
from gateway.console.pages import ConsoleError, console_router, redirect, render
from gateway.console.session import ConsoleSession, console_user
from gateway.core import audit_chain, legal
from gateway.core.problems import Problem

router = console_router()
Privacy = Annotated[ConsoleSession, Depends(console_user("privacy"))]
AuditReader = Annotated[ConsoleSession, Depends(console_user("privacy", "beheerder"))]
SUBJECT = r"^psn:[0-9a-f]{40}$"
EVENT_TYPES = ("exchange.received", "exchange.authorised", "exchange.refused", "exchange.queued", "exchange.delivered",
               "exchange.failed", "exchange.dead", "exchange.replayed", "exchange.replay_refused", "exchange.parked", "field.withheld",
               "consent.recorded", "consent.withdrawn", "body.viewed", "dossier.read", "access_report.generated", "audit.searched", "consents.read",
               "audit.exported",
               "partner.created", "partner.updated", "token.created", "token.revoked")


def _gw(request: Request) -> Any:
    return request.app.state.gateway


def _subject_of(request: Request, typed: str) -> str:
    """A pseudonym as typed, or the pseudonym of a typed client number."""
    import re

    typed = typed.strip()
    return typed if re.match(SUBJECT, typed) else _gw(request).pseudonymise(typed)


# --- audit search ------------------------------------------------------------------------------------

@router.get("/console/privacy")
async def audit_search(request: Request, me: Privacy, subject: str = "", partner: str = "", basis: str = "",
                       outcome: str = "", event: str = "", exchange: str = "", van: str = "", tot: str = "",
                       na: int = 0) -> Response:
    import re

    gw = _gw(request)
    errors: dict[str, str] = {}
    since = forms.day_start(van) if van else None
    until = forms.day_start(tot, days_later=1) if tot else None
    if van and since is None:
        errors["van"] = "Vul een geldige datum in."
    if tot and until is None:
        errors["tot"] = "Vul een geldige datum in."
    if subject and not re.match(SUBJECT, subject):
        errors["client"] = "Dit is geen pseudoniem van een cliënt."
    if outcome and outcome not in ("0", "4", "8", "12"):
        errors["outcome"] = "Kies een van de mogelijkheden."
    searched = any((subject, partner, basis, outcome, event, exchange, van, tot))
    result: dict[str, Any] = {"items": [], "next_after_seq": None}
    if searched and not errors:
        result = await run_in_threadpool(lambda: api_privacy.search_audit(
            gw, me.principal, subject=subject or None, partner=partner or None, legal_basis=basis or None,
            outcome=int(outcome) if outcome else None, event_type=event or None, exchange=exchange or None,
            since=since, until=until, after_seq=max(0, na), limit=100))
    partners = await run_in_threadpool(api_partners.list_partners, gw, me.principal, None)
    query = {"subject": subject, "partner": partner, "basis": basis, "outcome": outcome, "event": event,
             "exchange": exchange, "van": van, "tot": tot}
    next_url = ("/console/privacy?" + urlencode({**{k: v for k, v in query.items() if v}, "na": result["next_after_seq"]})
                if result["next_after_seq"] else None)
    return render(request, "privacy/audit.html", status=422 if errors else 200, errors=errors, query=query,
                  searched=searched, items=result["items"], next_url=next_url,
                  partners=[(p.id, p.name) for p in partners], bases=[(b, labels.basis(b)) for b in legal.BASES],
                  outcomes=[(str(code), text) for code, text in labels.OUTCOMES.items()],
                  events=[(e, e) for e in EVENT_TYPES])


@router.post("/console/privacy/zoeken")
async def audit_search_post(request: Request, me: Privacy) -> Response:
    form = await request.form()
    query = {name: forms.text(form, name) for name in ("partner", "basis", "outcome", "event", "exchange", "van", "tot")}
    client = forms.text(form, "client")
    if client:
        query["subject"] = _subject_of(request, client)
    return redirect("/console/privacy?" + urlencode({k: v for k, v in query.items() if v}))


# --- chain verification ----------------------------------------------------------------------------------

@router.get("/console/auditketen")
async def chain(request: Request, me: AuditReader) -> Response:
    gw = _gw(request)

    def check() -> tuple[audit_chain.Verification, list[dict[str, Any]]]:
        # The same walk as GET /api/v1/audit/verify.
        with gw.store.reading() as session:
            result = audit_chain.verify(session, trusted=audit_chain.trusted_keys(gw.settings))
        return result, api_privacy.list_checkpoints(gw, me.principal)

    result, checkpoints = await run_in_threadpool(check)
    return render(request, "privacy/chain.html", result=result, checkpoints=list(reversed(checkpoints))[:20],
                  status=200 if result.ok else 409)


@router.post("/console/auditketen/checkpoint")
async def chain_checkpoint(request: Request, me: AuditReader) -> Response:
    try:
        await run_in_threadpool(api_privacy.create_checkpoint, _gw(request), me.principal)
    except Problem as problem:
        if problem.slug != "state-conflict":
            raise
        me.flash("Het auditlog is nog leeg; er is niets te ondertekenen.", "fout")
    else:
        me.flash("De kop van de keten is nu ondertekend.")
    return redirect("/console/auditketen")


# --- the client access report ---------------------------------------------------------------------------

@router.get("/console/privacy/inzage")
async def access_report_form(request: Request, me: Privacy) -> Response:
    return render(request, "privacy/access_form.html", errors={})


@router.post("/console/privacy/inzage")
async def access_report(request: Request, me: Privacy) -> Response:
    form = await request.form()
    body, errors = forms.validate(api_privacy.ClientRef, {"client_id": forms.text(form, "client")})
    if body is None:
        return render(request, "privacy/access_form.html", status=422, errors={"client": errors.get("client_id", "")})
    # The API's own function: it records access_report.generated in the audit log.
    report = await run_in_threadpool(api_privacy.client_access_report, body, _gw(request), me.principal)
    return render(request, "privacy/access_report.html", report=report)


# --- consent register -------------------------------------------------------------------------------------

@router.get("/console/privacy/toestemmingen")
async def consents(request: Request, me: Privacy, subject: str = "", status: str = "") -> Response:
    import re

    if subject and not re.match(SUBJECT, subject):
        raise ConsoleError(422, "Niet goed ingevuld", "Dit is geen pseudoniem van een cliënt.")
    if status not in ("", "active", "inactive"):
        raise ConsoleError(422, "Niet goed ingevuld", "Kies een van de mogelijkheden.")
    rows = await run_in_threadpool(lambda: api_privacy.list_consents(
        _gw(request), me.principal, subject=subject or None, status=status or None, limit=200))  # type: ignore[arg-type]
    return render(request, "privacy/consents.html", consents=rows, subject=subject, chosen_status=status,
                  statuses=[("active", "actief"), ("inactive", "niet actief")])


@router.post("/console/privacy/toestemmingen/zoeken")
async def consents_search(request: Request, me: Privacy) -> Response:
    form = await request.form()
    query = {"status": forms.text(form, "status")}
    if forms.text(form, "client"):
        query["subject"] = _subject_of(request, forms.text(form, "client"))
    return redirect("/console/privacy/toestemmingen?" + urlencode({k: v for k, v in query.items() if v}))


@router.post("/console/privacy/toestemmingen/{consent_id}/intrekken")
async def consent_withdraw(request: Request, consent_id: str, me: Privacy) -> Response:
    form = await request.form()
    reason, errors = forms.validate(ReasonIn, {"reason": forms.text(form, "reason")})
    back = "/console/privacy/toestemmingen"
    if reason is None:
        me.flash(f"Niet ingetrokken: geef een reden. {errors.get('reason', '')}", "fout")
        return redirect(back)
    try:
        result = await run_in_threadpool(api_privacy.withdraw_consent, consent_id, reason, _gw(request), me.principal)
    except Problem as problem:
        if problem.slug != "state-conflict":
            raise
        me.flash("Deze toestemming was al niet meer actief.", "fout")
        return redirect(back)
    stopped = len(result["stopped_exchanges"])
    me.flash(f"Toestemming ingetrokken. {stopped} wachtend(e) bericht(en) tegengehouden."
             + (f" {len(result['in_flight_exchanges'])} bericht(en) waren al onderweg." if result["in_flight_exchanges"] else ""))
    return redirect(back)


# --- break the glass --------------------------------------------------------------------------------------

@router.get("/console/privacy/inzien/{exchange_id}")
async def break_glass_form(request: Request, exchange_id: str, me: Privacy) -> Response:
    exchange = await run_in_threadpool(api_exchanges.show_exchange, exchange_id, _gw(request), me.principal)
    return render(request, "privacy/break_glass.html", x=exchange, errors={}, body=None)


@router.post("/console/privacy/inzien/{exchange_id}")
async def break_glass(request: Request, exchange_id: str, me: Privacy) -> Response:
    gw = _gw(request)
    form = await request.form()
    exchange = await run_in_threadpool(api_exchanges.show_exchange, exchange_id, gw, me.principal)
    reason, errors = forms.validate(api_privacy.BreakGlassIn, {"reason": forms.text(form, "reason")})
    if reason is None:
        return render(request, "privacy/break_glass.html", status=422, x=exchange, errors=errors, body=None)
    try:
        # Records body.viewed with the reason before it decrypts anything.
        body = await run_in_threadpool(api_privacy.break_the_glass, exchange_id, reason, gw, me.principal)
    except Problem as problem:
        if problem.slug != "state-conflict":
            raise
        return render(request, "privacy/break_glass.html", status=409, x=exchange, body=None,
                      errors={"reason": "Van dit bericht is geen inhoud bewaard (geweigerd, of gewist na de bewaartermijn)."})
    return render(request, "privacy/break_glass.html", x=exchange, errors={}, body=body)


__all__ = ["router"]
