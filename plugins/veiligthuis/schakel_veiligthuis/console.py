"""The Veilig Thuis melding wizard in the console, for workers.

Four steps, each a POST so that no dossier or client detail lands in a URL: choose the dossier;
see the draft (what will leave, what is withheld and why, the region); answer the meldcode
weighing and choose the basis; check the completed melding and send it. Afterwards the melding's
status page shows its timeline and Veilig Thuis's feedback. Drafting and sending are
:mod:`schakel_veiligthuis.reporting`, the same functions the API calls; the core pipeline
checks the basis and audits the melding.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.api import exchanges as api_exchanges
from gateway.console import ConsoleError, ConsoleSession, NavEntry, console_router, console_user, redirect, render
from gateway.console.forms import errors_of, text, validate
from gateway.core.problems import Problem
from schakel_veiligthuis import feedback as fb
from schakel_veiligthuis import melding, reporting

PREFIX = "/console/veiligthuis"
TEMPLATES = Path(__file__).with_name("templates")
NAV = (NavEntry("Melding Veilig Thuis", PREFIX, ("hulpverlener",),
                "Een melding aan Veilig Thuis opstellen vanuit het dossier, met de afweging van de meldcode, "
                "en volgen wat Veilig Thuis ermee doet."),)

router = console_router()
Worker = Annotated[ConsoleSession, Depends(console_user("hulpverlener"))]

VIOLENCE = {"fysiek": "lichamelijk geweld", "psychisch": "psychisch geweld", "seksueel": "seksueel geweld",
            "financieel": "financiële uitbuiting", "getuige_van_geweld": "getuige van geweld (kinderen)",
            "verwaarlozing": "verwaarlozing", "stalking": "stalking", "eergerelateerd": "eergerelateerd geweld",
            "overig": "overig"}
EXCEPTIONS = {"gevaar_kind_of_gezin": "informeren brengt het kind of het gezin in gevaar",
              "gevaar_professional": "informeren brengt mij als professional in gevaar",
              "breuk_hulpverleningsrelatie": "informeren breekt de hulpverleningsrelatie die nodig is voor de veiligheid"}
STEPS = ("Dossier kiezen", "Concept bekijken", "Afweging en grondslag", "Controleren en versturen")
DOSSIER = r"^[A-Za-z0-9_-]{1,64}$"
# Radio groups: a missing answer is a choice not made.
CHOICES = {"client_informed", "legal_basis", *(f"weighing.{key}" for key in melding.WEIGHING_QUESTIONS)}


def _gw(request: Request) -> Any:
    return request.app.state.gateway


WEIGHING_LABELS = {
    "meldcode_steps": "Stappen van de meldcode", **{f"weighing.{key}": question for key, question in
                                                   melding.WEIGHING_QUESTIONS.items()},
    "weighing.toelichting": "Toelichting", "decision": "Uw besluit", "client_informed": "Cliënt geïnformeerd",
    "exception": "Uitzondering", "legal_basis": "Grondslag", "violence": "Aard van het geweld",
    "signal.date": "Datum van het signaal", "signal.kind": "Soort signaal", "signal.description": "Omschrijving van het signaal",
    "help_added": "Geboden hulp", "remarks": "Opmerkingen"}


# Codes in the melding, as the worker reads them on the draft.
VALUE_LABELS = {**VIOLENCE, **EXCEPTIONS, "observed": "zelf waargenomen", "told": "verteld"}


def _context(**extra: Any) -> dict[str, Any]:
    return {"steps": STEPS, "violence_forms": VIOLENCE, "exceptions": EXCEPTIONS, "value_labels": VALUE_LABELS,
            "questions": melding.WEIGHING_QUESTIONS, "weighing_labels": WEIGHING_LABELS, **extra}


async def _dossier(request: Request) -> str:
    import re

    dossier_id = text(await request.form(), "dossier_id")
    if not re.match(DOSSIER, dossier_id):
        raise ConsoleError(422, "Niet goed ingevuld", "Dit is geen dossiernummer uit het ECD.")
    return dossier_id


async def _draft_or_problem(request: Request, me: ConsoleSession, dossier_id: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return await reporting.draft(_gw(request), me.principal, dossier_id, **kwargs)
    except Problem as problem:
        if problem.slug == "not-found":
            raise ConsoleError(404, "Dossier niet gevonden", "Het ECD kent dit dossiernummer niet.") from None
        raise


# --- step 1: the list of meldingen, and which dossier ---------------------------------------------------

@router.get("")
async def start(request: Request, me: Worker, achterstallig: str = "") -> Response:
    rows = await run_in_threadpool(reporting.melding_status, _gw(request))
    if achterstallig:
        rows = [row for row in rows if row["overdue"]]
    return render(request, "veiligthuis/start.html", **_context(rows=rows, errors={}, only_overdue=bool(achterstallig),
                                                                decisions=fb.DECISIONS))


# --- step 2: the draft ----------------------------------------------------------------------------------

@router.post("/concept")
async def concept(request: Request, me: Worker) -> Response:
    import re

    dossier_id = text(await request.form(), "dossier_id")
    if not re.match(DOSSIER, dossier_id):
        rows = await run_in_threadpool(reporting.melding_status, _gw(request))
        return render(request, "veiligthuis/start.html", status=422, **_context(
            rows=rows, only_overdue=False, decisions=fb.DECISIONS,
            errors={"dossier_id": "Vul het dossiernummer in zoals het in het ECD staat, bijvoorbeeld D-0001."}))
    draft = await _draft_or_problem(request, me, dossier_id)
    return render(request, "veiligthuis/concept.html", **_context(draft=draft, step=2))


# --- step 3: the weighing and the basis ---------------------------------------------------------------------

@router.post("/afweging")
async def weighing(request: Request, me: Worker) -> Response:
    dossier_id = await _dossier(request)
    draft = await _draft_or_problem(request, me, dossier_id)
    values: dict[str, Any] = {"legal_basis": draft["suggested_basis"], "violence": draft["melding"].get("violence", []),
                              "unsafety": draft["melding"].get("unsafety", {})}
    earlier = text(await request.form(), "payload")
    if earlier:
        # Back from the check step: the answers given so far, to change rather than retype.
        try:
            payload = json.loads(earlier)
            edits = payload.get("edits", {})
            values = {**payload.get("answers", {}), "violence": edits.get("violence") or values["violence"],
                      "unsafety": edits.get("unsafety") or values["unsafety"],
                      "signal": (edits.get("signals_added") or [{}])[0], "help_added": (edits.get("help_added") or [""])[0]}
        except (ValueError, AttributeError):
            pass
    return render(request, "veiligthuis/weighing.html", **_context(draft=draft, step=3, values=values, errors={}))


def answers_from(form: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form as the API's ``answers`` and ``edits``; unanswered radios stay absent."""

    def yes_no(name: str) -> bool | None:
        value = text(form, name)
        return {"ja": True, "nee": False}.get(value)

    weighing: dict[str, Any] = {key: yes_no(f"weighing.{key}") for key in melding.WEIGHING_QUESTIONS}
    weighing = {k: v for k, v in weighing.items() if v is not None}
    if text(form, "weighing.toelichting"):
        weighing["toelichting"] = text(form, "weighing.toelichting")
    answers: dict[str, Any] = {
        "meldcode_steps": sorted(int(v) for v in form.getlist("meldcode_steps") if str(v).isdigit()),
        "weighing": weighing, "decision": text(form, "decision"),
        "exception": text(form, "exception") or None, "remarks": text(form, "remarks") or None,
    }
    for name in ("client_informed",):
        if yes_no(name) is not None:
            answers[name] = yes_no(name)
    if text(form, "legal_basis"):
        answers["legal_basis"] = text(form, "legal_basis")
    edits: dict[str, Any] = {"violence": [str(v) for v in form.getlist("violence")],
                             "unsafety": {"acute": bool(form.get("unsafety.acute")),
                                          "structural": bool(form.get("unsafety.structural"))}}
    signal = {"date": text(form, "signal.date"), "kind": text(form, "signal.kind"),
              "description": text(form, "signal.description")}
    edits["signals_added"] = [signal] if any(signal.values()) else []
    edits["help_added"] = [text(form, "help_added")] if text(form, "help_added") else []
    return answers, edits


def check_answers(answers: dict[str, Any], edits: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The API's own request model, and its errors keyed by form field."""
    from schakel_veiligthuis.api import SendIn

    errors: dict[str, str] = {}
    answers_model, answer_errors = validate(melding.Answers, answers)
    edits_model, edit_errors = validate(melding.Edits, edits)
    for name, message in answer_errors.items():
        if name == "_":
            name = "exception"  # the one cross-field rule: not informed needs an exception
        errors[name] = "Maak een keuze." if name in CHOICES and message == "Vul dit in." else message
    for name, message in edit_errors.items():
        errors[{"signals_added": "signal.description", "signals_added.date": "signal.date",
                "signals_added.kind": "signal.kind", "signals_added.description": "signal.description",
                "help_added": "help_added"}.get(name, name)] = message
    if answers_model is None or edits_model is None:
        return None, errors
    return SendIn(dossier_id="x", answers=answers_model, edits=edits_model), errors


@router.post("/controleren")
async def check(request: Request, me: Worker) -> Response:
    dossier_id = await _dossier(request)
    answers, edits = answers_from(await request.form())
    sent, errors = check_answers(answers, edits)
    if sent is None:
        draft = await _draft_or_problem(request, me, dossier_id)
        values = {**answers, "violence": edits["violence"], "unsafety": edits["unsafety"],
                  "signal": (edits["signals_added"] or [{}])[0], "help_added": (edits["help_added"] or [""])[0]}
        return render(request, "veiligthuis/weighing.html", status=422,
                      **_context(draft=draft, step=3, values=values, errors=errors))
    preview = await _draft_or_problem(request, me, dossier_id, edits=sent.edits, answers=sent.answers)
    payload = {"dossier_id": dossier_id, "answers": sent.answers.model_dump(mode="json"),
               "edits": sent.edits.model_dump(mode="json")}
    return render(request, "veiligthuis/check.html", **_context(
        draft=preview, step=4, answers=sent.answers, payload=json.dumps(payload), key=f"console-{uuid.uuid4()}", error=None))


# --- step 4: send --------------------------------------------------------------------------------------------

@router.post("/versturen")
async def send(request: Request, me: Worker) -> Response:
    from pydantic import ValidationError

    from schakel_veiligthuis.api import SendIn

    form = await request.form()
    key = text(form, "idempotency_key")
    try:
        body = SendIn.model_validate_json(text(form, "payload"))
    except ValidationError as exc:
        raise ConsoleError(422, "Niet goed ingevuld", "De melding is onvolledig: " + "; ".join(
            f"{k}: {v}" for k, v in errors_of(exc).items()) + " Begin opnieuw vanuit het dossier.") from None
    if not key.startswith("console-") or len(key) > 80:
        raise ConsoleError(422, "Niet goed ingevuld", "Het formulier is onvolledig. Begin opnieuw vanuit het dossier.")
    try:
        answer = await reporting.send(_gw(request), me.principal, body.dossier_id, body.answers, body.edits, key,
                                      body.model_dump_json().encode())
    except Problem as problem:
        if problem.slug == "not-found":
            raise ConsoleError(404, "Dossier niet gevonden", "Het ECD kent dit dossiernummer niet (meer).") from None
        raise
    if answer.status == 202:
        me.flash("De melding is aangeboden aan Veilig Thuis. Hieronder ziet u wat ermee gebeurt.")
        return redirect(f"{PREFIX}/meldingen/{answer.body['exchange_id']}")
    # Refused (no basis) or invalid: show the check page again, with the reason.
    preview = await _draft_or_problem(request, me, body.dossier_id, edits=body.edits, answers=body.answers)
    reasons = answer.body.get("basis_reasons") or {}
    error = {"title": "Niet verstuurd: " + ("er is geen geldige grondslag" if answer.status == 403 else "de melding is ongeldig"),
             "detail": answer.body.get("detail"), "reasons": reasons}
    return render(request, "veiligthuis/check.html", status=answer.status, **_context(
        draft=preview, step=4, answers=body.answers, payload=text(form, "payload"), key=f"console-{uuid.uuid4()}",
        error=error))


# --- afterwards ------------------------------------------------------------------------------------------------

def _status_row(request: Request, exchange_id: str) -> dict[str, Any] | None:
    return next((row for row in reporting.melding_status(_gw(request)) if row["exchange_id"] == exchange_id), None)


@router.get("/meldingen/{exchange_id}")
async def status(request: Request, exchange_id: str, me: Worker) -> Response:
    gw = _gw(request)
    row = await run_in_threadpool(_status_row, request, exchange_id)
    if row is None:
        raise ConsoleError(404, "Melding niet gevonden", "Er is geen melding met deze code verstuurd.")
    exchange = await run_in_threadpool(api_exchanges.show_exchange, exchange_id, gw, me.principal)
    return render(request, "veiligthuis/status.html", **_context(
        x=exchange, row=row, decisions=fb.DECISIONS, errors={}, today=date.today().isoformat()))


@router.post("/meldingen/{exchange_id}/terugkoppeling")
async def feedback(request: Request, exchange_id: str, me: Worker) -> Response:
    form = await request.form()
    data = {"type": text(form, "type"), "melding_kenmerk": exchange_id, "date": text(form, "date"),
            "decision": text(form, "decision") or None, "explanation": text(form, "explanation") or None}
    entered, errors = validate(fb.Feedback, data)
    if entered is not None and entered.type == "besluit" and entered.decision is None:
        errors["decision"] = "Kies het besluit van Veilig Thuis."
    if entered is None or errors:
        gw = _gw(request)
        row = await run_in_threadpool(_status_row, request, exchange_id)
        if row is None:
            raise ConsoleError(404, "Melding niet gevonden", "Er is geen melding met deze code verstuurd.")
        exchange = await run_in_threadpool(api_exchanges.show_exchange, exchange_id, gw, me.principal)
        return render(request, "veiligthuis/status.html", status=422, **_context(
            x=exchange, row=row, decisions=fb.DECISIONS, errors=errors, today=data["date"]))
    answer = await reporting.enter_feedback(_gw(request), me.principal, exchange_id, entered)
    if answer.status != 202:
        raise ConsoleError(answer.status, "Niet vastgelegd", "De terugkoppeling kon niet worden vastgelegd.")
    me.flash("De terugkoppeling is vastgelegd en gaat als notitie naar het dossier.")
    return redirect(f"{PREFIX}/meldingen/{exchange_id}")
