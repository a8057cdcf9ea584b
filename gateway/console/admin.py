"""The functional administrator's pages: overview with charts, connector types, partners, dead letters.

Each action calls the function behind the matching API endpoint (``gateway.api.connectors``,
``gateway.api.partners``, ``gateway.api.exchanges``), with the signed-in administrator as the
actor, so the audit log and the state rules are exactly the API's.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, SecretStr
from starlette.concurrency import run_in_threadpool

from gateway.api import connectors as api_connectors
from gateway.api import exchanges as api_exchanges
from gateway.api import partners as api_partners
from gateway.api.schemas import ReasonIn, ReplayIn
from gateway.console import charts, forms, stats
from gateway.console.pages import ConsoleError, console_router, redirect, render
from gateway.console.session import ConsoleSession, console_user
from gateway.core.partners import MASK, PartnerIn, PartnerPatch
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway

router = console_router(prefix="/console/beheer")
Admin = Annotated[ConsoleSession, Depends(console_user("beheerder"))]
PARTNER_LABELS = {"connector_type": "Koppeling", "id": "Code", "name": "Naam", "endpoint": "Adres (endpoint)",
                  "identifiers": "Kenmerken", "routing": "Routering"}


def _gw(request: Request) -> Gateway:
    return request.app.state.gateway


async def _reason(request: Request) -> tuple[ReasonIn | None, str]:
    form = await request.form()
    reason, errors = forms.validate(ReasonIn, {"reason": forms.text(form, "reason")})
    return reason, errors.get("reason", "")


# --- overview ------------------------------------------------------------------------------------------

@router.get("")
async def overview(request: Request, me: Admin) -> Response:
    gw = _gw(request)

    def figures() -> dict[str, Any]:
        with gw.store.reading() as session:
            per_day = stats.exchanges_per_day(session)
            latency = stats.latency_per_day(session)
        types = api_connectors.list_connectors(gw, me.principal)
        return {"per_day": per_day, "latency": latency, "types": types}

    data = await run_in_threadpool(figures)
    types = data["types"]
    return render(
        request, "beheer/overview.html", types=types,
        per_day=charts.stacked_bars("per-dag", "Uitwisselingen per dag, naar uitkomst", data["per_day"]["days"],
                                    data["per_day"]["series"]),
        latency=charts.lines("doorlooptijd", "Doorlooptijd tot aflevering (seconden)", data["latency"]["days"],
                             data["latency"]["series"]),
        sampled=data["latency"]["sampled"],
        queues=charts.grouped_bars("wachtrijen", "Wachtrij per koppeling", [t.manifest["id"] for t in types],
                                   {"in de wachtrij": [t.queued for t in types], "geparkeerd": [t.parked for t in types],
                                    "onbestelbaar": [t.dead for t in types]}))


# --- connector types -------------------------------------------------------------------------------------

@router.get("/koppelingen")
async def connector_types(request: Request, me: Admin) -> Response:
    types = await run_in_threadpool(api_connectors.list_connectors, _gw(request), me.principal)
    return render(request, "beheer/connectors.html", types=types)


@router.get("/koppelingen/{connector_type}")
async def connector_type(request: Request, connector_type: str, me: Admin) -> Response:
    gw = _gw(request)
    item = await run_in_threadpool(api_connectors.show_connector, connector_type, gw, me.principal)
    partners = await run_in_threadpool(api_partners.list_partners, gw, me.principal, connector_type)
    schema = item.manifest["config_schema"].get("properties", {})
    return render(request, "beheer/connector.html", item=item, partners=partners, schema=schema)


@router.post("/koppelingen/{connector_type}/{action}")
async def connector_state(request: Request, connector_type: str, action: str, me: Admin) -> Response:
    if action not in ("pauzeren", "hervatten"):
        raise ConsoleError(404, "Pagina niet gevonden", "Deze actie bestaat niet.")
    back = f"/console/beheer/koppelingen/{connector_type}"
    reason, error = await _reason(request)
    if reason is None:
        me.flash(f"Niet {'gepauzeerd' if action == 'pauzeren' else 'hervat'}: geef een reden. {error}", "fout")
        return redirect(back)
    endpoint = api_connectors.pause_connector if action == "pauzeren" else api_connectors.resume_connector
    try:
        await run_in_threadpool(endpoint, connector_type, reason, _gw(request), me.principal)
    except Problem as problem:
        if problem.slug != "state-conflict":
            raise
        me.flash("Dat was al zo; er is niets veranderd.", "fout")
        return redirect(back)
    outcome = ("gepauzeerd: berichten worden vastgehouden" if action == "pauzeren"
               else "hervat: vastgehouden berichten gaan weer")
    me.flash(f"Koppeling {connector_type} is {outcome}.")
    return redirect(back)


# --- partners ----------------------------------------------------------------------------------------------

@router.get("/partners")
async def partner_list(request: Request, me: Admin) -> Response:
    gw = _gw(request)
    partners = await run_in_threadpool(api_partners.list_partners, gw, me.principal, None)
    by_type: dict[str, list[Any]] = {t: [] for t in sorted(gw.registry.connectors)}
    for partner in partners:
        by_type.setdefault(partner.connector_type, []).append(partner)
    titles = {t: c.manifest.title for t, c in gw.registry.connectors.items()}
    return render(request, "beheer/partners.html", by_type=by_type, titles=titles)


def config_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The connector's config schema as form fields; secrets become password fields."""
    fields = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        secret = annotation is SecretStr or SecretStr in args
        kind = ("secret" if secret else "bool" if annotation is bool or bool in args
                else "number" if annotation in (int, float) or int in args or float in args
                else "text" if annotation is str or str in args else "json")
        default = None if info.is_required() or secret else info.default
        fields.append({"name": name, "kind": kind, "label": info.title or name.replace("_", " "),
                       "hint": info.description or "", "default": default, "required": info.is_required()})
    return fields


def _config_from(form: Any, fields: list[dict[str, Any]], editing: bool) -> tuple[dict[str, Any], dict[str, str]]:
    import json

    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        key = f"config.{field['name']}"
        raw = forms.text(form, key)
        if field["kind"] == "secret":
            if form.get(f"{key}.wissen"):
                config[field["name"]] = None
            elif raw:
                config[field["name"]] = raw
            elif editing:
                config[field["name"]] = MASK  # left empty: keep what is stored
        elif field["kind"] == "bool":
            config[field["name"]] = bool(form.get(key))
        elif field["kind"] == "json" and raw:
            try:
                config[field["name"]] = json.loads(raw)
            except ValueError:
                errors[key] = "Dit is geen geldige JSON."
        elif raw or field["required"]:
            config[field["name"]] = raw
    return config, errors


def _new_partner_page(request: Request, status: int, **context: Any) -> Response:
    gw = _gw(request)
    types = sorted((t, c.manifest.title) for t, c in gw.registry.connectors.items())
    return render(request, "beheer/partner_new.html", status=status, partner_labels=PARTNER_LABELS, types=types, **context)


@router.get("/partners/nieuw")
async def partner_new(request: Request, me: Admin, type: str = "") -> Response:
    gw = _gw(request)
    connector = gw.registry.connectors.get(type)
    fields = config_fields(connector.manifest.config_schema) if connector else []
    return _new_partner_page(request, 200, chosen=type if connector else "", fields=fields, values={}, errors={})


@router.post("/partners/nieuw")
async def partner_create(request: Request, me: Admin) -> Response:
    gw = _gw(request)
    form = await request.form()
    chosen = forms.text(form, "connector_type")
    connector = gw.registry.connectors.get(chosen)
    if connector is None:
        return _new_partner_page(request, 422, chosen="", fields=[], values={},
                                 errors={"connector_type": "Kies een koppeling."})
    fields = config_fields(connector.manifest.config_schema)
    config, errors = _config_from(form, fields, editing=False)
    values = {name: forms.text(form, name) for name in ("id", "name", "endpoint", "identifiers", "routing")}
    values.update({f"config.{f['name']}": forms.text(form, f"config.{f['name']}") for f in fields if f["kind"] != "secret"})
    data, model_errors = forms.validate(PartnerIn, {
        "id": values["id"], "connector_type": chosen, "name": values["name"], "endpoint": values["endpoint"],
        "identifiers": forms.lines_to_dict(values["identifiers"]), "routing": forms.lines_to_lists(values["routing"]),
        "config": config})
    errors.update(model_errors)
    if data is not None and not errors:
        try:
            await run_in_threadpool(api_partners.create_partner, data, gw, me.principal)
        except Problem as problem:
            if problem.slug == "already-exists" and "served by" in (problem.detail or ""):
                errors["routing"] = "Een van deze waarden hoort al bij een andere partner."
            elif problem.slug == "already-exists":
                errors["id"] = "Deze code is al in gebruik."
            elif problem.slug == "validation-failed":
                for error in problem.extensions.get("errors", []):
                    errors[".".join(error["location"])] = "Past niet bij het configuratieschema van deze koppeling."
            else:
                raise
        else:
            me.flash(f"Partner {data.id} is toegevoegd.")
            return redirect(f"/console/beheer/partners/{data.id}")
    return _new_partner_page(request, 422, chosen=chosen, fields=fields, values=values, errors=errors)


async def _partner_page(request: Request, me: ConsoleSession, partner_id: str, errors: dict[str, str] | None = None,
                        status: int = 200) -> Response:
    gw = _gw(request)
    partner = await run_in_threadpool(api_partners.show_partner, partner_id, gw, me.principal)
    connector = gw.registry.connectors.get(partner.connector_type)
    fields = config_fields(connector.manifest.config_schema) if connector else []
    return render(request, "beheer/partner.html", status=status, partner_labels=PARTNER_LABELS, partner=partner,
                  fields=fields, errors=errors or {}, identifiers=forms.dict_to_lines(partner.identifiers),
                  routing=forms.dict_to_lines(partner.routing), mask=MASK)


@router.get("/partners/{partner_id}")
async def partner_show(request: Request, partner_id: str, me: Admin) -> Response:
    return await _partner_page(request, me, partner_id)


@router.post("/partners/{partner_id}")
async def partner_update(request: Request, partner_id: str, me: Admin) -> Response:
    gw = _gw(request)
    form = await request.form()
    current = await run_in_threadpool(api_partners.show_partner, partner_id, gw, me.principal)
    connector = gw.registry.connectors.get(current.connector_type)
    fields = config_fields(connector.manifest.config_schema) if connector else []
    config, errors = _config_from(form, fields, editing=True)
    patch, model_errors = forms.validate(PartnerPatch, {
        "name": forms.text(form, "name"), "endpoint": forms.text(form, "endpoint"),
        "identifiers": forms.lines_to_dict(forms.text(form, "identifiers")),
        "routing": forms.lines_to_lists(forms.text(form, "routing")), "config": config})
    errors.update(model_errors)
    if patch is not None and not errors:
        try:
            await run_in_threadpool(api_partners.update_partner, partner_id, patch, gw, me.principal)
        except Problem as problem:
            if problem.slug == "already-exists":
                errors["routing"] = "Een van deze waarden hoort al bij een andere partner."
            elif problem.slug == "validation-failed":
                for error in problem.extensions.get("errors", []):
                    errors[".".join(error["location"])] = "Past niet bij het configuratieschema van deze koppeling."
            else:
                raise
        else:
            me.flash("De instellingen zijn opgeslagen. Geheimen worden niet meer getoond.")
            return redirect(f"/console/beheer/partners/{partner_id}")
    return await _partner_page(request, me, partner_id, errors, status=422)


@router.post("/partners/{partner_id}/{action}")
async def partner_state(request: Request, partner_id: str, action: str, me: Admin) -> Response:
    if action not in ("pauzeren", "hervatten"):
        raise ConsoleError(404, "Pagina niet gevonden", "Deze actie bestaat niet.")
    back = f"/console/beheer/partners/{partner_id}"
    reason, error = await _reason(request)
    if reason is None:
        me.flash(f"Niet {'gepauzeerd' if action == 'pauzeren' else 'hervat'}: geef een reden. {error}", "fout")
        return redirect(back)
    endpoint = api_partners.pause_partner if action == "pauzeren" else api_partners.resume_partner
    try:
        await run_in_threadpool(endpoint, partner_id, reason, _gw(request), me.principal)
    except Problem as problem:
        if problem.slug != "state-conflict":
            raise
        me.flash("Dat was al zo; er is niets veranderd.", "fout")
        return redirect(back)
    me.flash(f"Partner {partner_id} is {'gepauzeerd' if action == 'pauzeren' else 'hervat'}.")
    return redirect(back)


# --- dead letters -------------------------------------------------------------------------------------------

@router.get("/onbestelbaar")
async def dead_letters(request: Request, me: Admin, partner: str = "", cursor: str = "") -> Response:
    gw = _gw(request)
    page = await run_in_threadpool(lambda: api_exchanges.list_dead_letters(gw, me.principal, partner=partner or None,
                                                                           limit=100, cursor=cursor or None))
    partners = await run_in_threadpool(api_partners.list_partners, gw, me.principal, None)
    return render(request, "beheer/dead_letters.html", page=page, partner=partner,
                  partners=[(p.id, p.name) for p in partners])


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@router.post("/onbestelbaar/opnieuw")
async def replay_dead_letters(request: Request, me: Admin) -> Response:
    gw = _gw(request)
    form = await request.form()
    partner = forms.text(form, "partner")
    back = "/console/beheer/onbestelbaar" + (f"?{urlencode({'partner': partner})}" if partner else "")
    everything = form.get("alles") is not None
    ids = [str(value) for value in form.getlist("exchange_id")]
    reason, error = await _reason(request)
    if reason is None:
        me.flash(f"Niets opnieuw aangeboden: geef een reden. {error}", "fout")
        return redirect(back)
    if not everything and not ids:
        me.flash("Niets opnieuw aangeboden: kies eerst een of meer berichten.", "fout")
        return redirect(back)
    body = ReplayIn(reason=reason.reason, exchange_ids=None if everything else ids, partner_id=partner or None,
                    all=everything)
    result = await run_in_threadpool(api_exchanges.replay_dead_letters, body, gw, me.principal)
    message = f"{len(result.replayed)} bericht(en) opnieuw aangeboden."
    if result.skipped:
        # Skipped for being no dead letter any more, or because their basis no longer holds: say which
        # (each reason cut short: the flash travels in the session cookie).
        reasons = list(dict.fromkeys(_shortened(item["reason"]) for item in result.skipped))
        message += f" {len(result.skipped)} overgeslagen: {'; '.join(reasons[:3])}{' …' if len(reasons) > 3 else ''}"
    me.flash(message, "fout" if result.skipped and not result.replayed else "succes")
    return redirect(back)
