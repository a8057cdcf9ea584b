"""The municipality's inbox (iWmo messages in, the matching retour out) and the worker's outbox
(start, stop and requests, built from the ECD).

``POST /partners/wmo/berichten`` takes one iWmo 3.2 message (XML) from a registered municipality.
A message that fails any check is not processed: not well-formed XML, an attack, another release's
namespace, a schema error or a sender that is not the token's municipality get a problem+json; a
schema-valid message that fails a business rule gets its retour with the rule's code.

- WMO301 (toewijzing): the client's arrangements in Care4; answered with a WMO302.
- WMO319 (answer on our 315/317): a note in the dossier the request came from; answered with a WMO320.
- WMO316 (retour on our 315): its codes are kept with our request and noted in the dossier; a retour
  is not itself answered.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Annotated, Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree
from sqlalchemy import select

from gateway.api.deps import GatewayDep, require
from gateway.api.direct import DirectRoute
from gateway.core import partners as partner_registry
from gateway.core.auth import Principal
from gateway.core.models import Exchange
from gateway.core.partners import PartnerRow
from gateway.core.problems import Problem
from gateway.core.pseudonyms import elfproef
from gateway.core.runtime import Gateway
from schakel_care4.client import Care4Unavailable
from schakel_care4.ecd import ecd_client
from schakel_wmo import iwmo, provider, toewijzing
from schakel_wmo.plugin import ANSWER_ROUTE, OUTBOUND_ROUTES, TOEWIJZING_ROUTE

# The municipality's endpoints take the request, the gateway and the caller only: DirectRoute
# spares them FastAPI's per-request dependency resolution (the inbox is the iWmo hot path).
router = APIRouter(tags=["wmo (partner)"], route_class=DirectRoute)
worker_router = APIRouter(tags=["wmo"])
Municipality = Annotated[Principal, Depends(require("partner"))]
Worker = Annotated[Principal, Depends(require("hulpverlener"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
XML = "application/xml"
REQUEST_ROUTES = (OUTBOUND_ROUTES["WMO315"].id, OUTBOUND_ROUTES["WMO317"].id)


def _municipality(gw: Gateway, principal: Principal) -> partner_registry.PartnerRow:
    with gw.store.reading_rows() as rows:
        partner = partner_registry.find(rows, principal.partner_id or "")
    if partner is None or partner.connector_type != "wmo":
        raise Problem("forbidden", "Only a registered municipality sends iWmo messages.")
    return partner


def _our_request(gw: Gateway, partner_id: str, *, correlation_id: str | None = None,
                 message_id: str | None = None) -> Exchange | None:
    """The request (315/317) this municipality received from us, by reference or by identification."""
    if not correlation_id and not message_id:
        return None
    query = select(Exchange).where(Exchange.route_id.in_(REQUEST_ROUTES), Exchange.partner_id == partner_id)
    query = query.where(Exchange.correlation_id == correlation_id) if correlation_id else query.where(
        Exchange.partner_message_id == message_id)
    with gw.store.reading() as session:
        return session.scalars(query.order_by(Exchange.created_at).limit(1)).first()


async def _submit(gw: Gateway, route_id: str, envelope: dict[str, Any], principal: Principal, key: str | None,
                  request_body: bytes) -> Any:
    return await gw.pipeline.submit_async(route_id, json.dumps(envelope).encode(), "application/json", principal, key,
                                          "wettelijke_plicht", internal=True, request_body=request_body)

_NL = ZoneInfo("Europe/Amsterdam")  # a municipality dates its messages by the Dutch calendar


@router.post("/berichten", summary="One iWmo 3.2 message in; its retour out",
             openapi_extra={"requestBody": {"required": True, "content": {XML: {"schema": {"type": "string"}}}}},
             responses={200: {"content": {XML: {}, "application/json": {}}}})
async def receive(request: Request, gw: GatewayDep, principal: Municipality) -> Response:
    return await process(gw, principal, _municipality(gw, principal), await request.body())


async def process(gw: Gateway, principal: Principal, partner: PartnerRow, body: bytes) -> Response:
    """One message from ``partner``, checked, processed and answered: the inbox and the batch
    import share this, so a message means the same whichever way it arrives."""
    bericht, root = iwmo.parse(body)
    handler = HANDLERS.get(bericht)
    if handler is None:
        raise Problem("message-invalid", f"{bericht} is not a message a provider receives here.")
    errors = iwmo.validate(bericht, root)
    if errors:
        raise Problem("message-invalid", f"The {bericht} does not validate against the official iWmo 3.2 schema.",
                      extensions={"errors": errors})
    header = iwmo.header(bericht, root)
    # A retour mirrors the header of what it answers: its Ontvanger is the municipality.
    sender = header.ontvanger if bericht == "WMO316" else header.afzender
    if sender != partner.identifiers.get("gemeentecode"):
        raise Problem("partner-mismatch", "The sending municipality is not the gemeentecode registered for your token.")
    ours = str((partner.config or {}).get("aanbieder_agb") or "")
    if not ours:
        raise Problem("state-conflict", "Your municipality's partner has no aanbieder_agb (our AGB code) configured, so "
                                        "whether a message is addressed to us cannot be checked; a functional "
                                        "administrator sets it on the partner.")
    addressed = header.afzender if bericht == "WMO316" else header.ontvanger
    if addressed != ours:
        # Another provider's client: nothing of it is read into our ECD, nor stored here.
        raise Problem("message-invalid", f"This {bericht} is addressed to AGB code {addressed}, not to this provider "
                                         f"({ours}, as registered with your municipality).")
    if header.dagtekening[:10] > datetime.now(_NL).date().isoformat():
        # iWmo's rule (8848): a 301 dated ahead would also outrank every later one for the client.
        if bericht not in iwmo.RETOUR:  # a retour (316) is not answered with one
            raise Problem("message-invalid", f"This {bericht} is dated {header.dagtekening[:10]}, after today.")
        return Response(iwmo.retour(bericht, root, header_codes=[iwmo.DATED_AHEAD]), media_type=XML)
    # What the handlers hold the sender to (the idempotency fingerprint): the document, not its
    # line endings, which XML itself does not tell apart, so a transport that rewrites them does
    # not turn a repeat into a "not unique" (9056).
    return await handler(gw, principal, partner, bericht, root, header, body.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))


async def _receive_301(gw: Gateway, principal: Principal, partner: PartnerRow, bericht: str, root: etree._Element,
                       header: iwmo.Header, body: bytes) -> Response:
    bsn, allocations = toewijzing.allocations(root)
    if not elfproef(bsn):
        # Schema-valid, but a rule fails: answered with a retour, and not processed.
        return Response(iwmo.retour(bericht, root, header_codes=[iwmo.TECHNICAL]), media_type=XML)
    retour = iwmo.retour(bericht, root)
    # A 301 that grants our request names its ReferentieAanbieder: it joins that request's timeline.
    granted = next((found for a in allocations if (found := _our_request(
        gw, partner.id, correlation_id=provider.correlation_for(a.get("reference") or ""))) is not None), None)
    envelope = {"bsn": bsn, "municipality": header.afzender, "allocations": allocations, "retour": retour.decode(),
                "dagtekening": header.dagtekening, "identificatie": header.identificatie,
                # Newer than any 301 before it: its own date first, then when it arrived here.
                "as_of": f"{header.dagtekening}|{datetime.now(timezone.utc).isoformat()}",
                "correlation_id": granted.correlation_id if granted else None}
    return await _answer(gw, TOEWIJZING_ROUTE.id, envelope, principal, header, body, bericht, root, retour)


async def _receive_319(gw: Gateway, principal: Principal, partner: PartnerRow, bericht: str, root: etree._Element,
                       header: iwmo.Header, body: bytes) -> Response:
    ns = {"m": iwmo.namespace(bericht)}
    antwoord = root.find("m:Antwoord", namespaces=ns)
    if antwoord is None:
        return Response(iwmo.retour(bericht, root), media_type=XML)  # nothing to process
    reference = (antwoord.findtext("m:ReferentieAanbieder", namespaces=ns) or "").strip()
    request = _our_request(gw, partner.id, correlation_id=provider.correlation_for(reference))
    if request is None:
        return Response(iwmo.retour(bericht, root, codes={iwmo.path_of(antwoord): [iwmo.NO_EARLIER_MESSAGE]}),
                        media_type=XML)
    answer = (antwoord.findtext("m:VerzoekAntwoord", namespaces=ns) or "").strip()
    reason = (antwoord.findtext("m:RedenAfwijzingVerzoek", namespaces=ns) or "").strip()
    text = f"Gemeente {header.afzender} antwoordt op het Wmo-verzoek ({header.dagtekening}): " \
           f"{iwmo.enumeration('LDT_VerzoekAntwoord').get(answer, answer).lower()}"
    if reason:
        text += f"; reden: {iwmo.enumeration('LDT_RedenAfwijzingVerzoek').get(reason, reason).lower()}"
    retour = iwmo.retour(bericht, root)
    envelope = _note_envelope(gw, request, bericht, text + ".", header, retour.decode())
    return await _answer(gw, ANSWER_ROUTE.id, envelope, principal, header, body, bericht, root, retour)


async def _receive_316(gw: Gateway, principal: Principal, partner: PartnerRow, bericht: str, root: etree._Element,
                       header: iwmo.Header, body: bytes) -> Response:
    request = _our_request(gw, partner.id, message_id=f"WMO315:{header.identificatie}")
    if request is None:
        raise Problem("not-found", "This retour answers no WMO315 we sent to your municipality.")
    ns = {"m": iwmo.namespace(bericht)}
    found = sorted({code.text for code in root.iterfind(".//m:RetourCode", namespaces=ns) if code.text})
    rejected = [code for code in found if code != iwmo.ACCEPTED]
    on = root.findtext("m:Header/m:DagtekeningRetour", namespaces=ns)
    text = (f"Gemeente {header.ontvanger} heeft het verzoek om toewijzing ontvangen en goedgekeurd ({on})."
            if not rejected else
            f"Gemeente {header.ontvanger} heeft het verzoek om toewijzing afgekeurd ({on}): retourcodes {', '.join(rejected)}.")
    envelope = _note_envelope(gw, request, bericht, text, header, None)
    envelope["retourcodes"] = found
    answer = await _submit(gw, ANSWER_ROUTE.id, envelope, principal,
                           f"{header.ontvanger}:{bericht}:{header.identificatie}:{root.findtext('m:Header/m:IdentificatieRetour', namespaces=ns)}",
                           body)
    if answer.status >= 400:
        return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)
    return JSONResponse({"received": bericht, "request_exchange": request.id, "retourcodes": found,
                         "exchange_id": answer.body["exchange_id"]}, status_code=200)


def _note_envelope(gw: Gateway, request: Exchange, bericht: str, text: str, header: iwmo.Header,
                   retour: str | None) -> dict[str, Any]:
    found = gw.exchange_context(request.id)
    context = found[1] if found else {}
    return {"bericht": bericht, "request_exchange": request.id, "subject": request.subject,
            "correlation_id": request.correlation_id, "retour": retour,
            "note": {"dossier_id": context.get("dossier_id"), "note_text": text,
                     "source": f"iWmo {bericht} van gemeente", "reference": f"{header.afzender}:{header.identificatie}"}}


async def _answer(gw: Gateway, route_id: str, envelope: dict[str, Any], principal: Principal, header: iwmo.Header,
                  body: bytes, bericht: str, root: etree._Element, retour: bytes) -> Response:
    message_id = f"{bericht}:{header.afzender}:{header.identificatie}:{header.dagtekening}"
    try:
        answer = await _submit(gw, route_id, envelope, principal, message_id, body)
    except Problem as problem:
        if problem.slug == "idempotency-key-reused":
            # The same identification for a different message: iWmo's own code for that.
            return Response(iwmo.retour(bericht, root, header_codes=[iwmo.NOT_UNIQUE]), media_type=XML)
        raise
    if answer.status >= 400:
        return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)
    if not answer.replayed:
        return Response(retour, media_type=XML)
    found = gw.exchange_context(answer.body["exchange_id"])
    stored = found[1].get("retour") if found else None  # a repeat gets the first answer, byte for byte
    return Response((stored or retour.decode()).encode(), media_type=XML, headers={"Idempotent-Replayed": "true"})


Handler = Callable[..., Awaitable[Response]]
HANDLERS: dict[str, Handler] = {"WMO301": _receive_301, "WMO316": _receive_316, "WMO319": _receive_319}


# --- the worker's side -----------------------------------------------------------------------------

async def _ecd(gw: Gateway, dossier_id: str, with_arrangements: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ecd = ecd_client(gw)
    try:
        bundle = await ecd.dossier_bundle(dossier_id)
        arrangements = await ecd.get(f"/clients/{bundle['client']['id']}/arrangements") if with_arrangements else []
    except Care4Unavailable:
        raise Problem("unavailable", "The ECD does not answer; try again shortly.") from None
    return bundle, arrangements


async def _send(gw: Gateway, bericht: str, envelope: dict[str, Any], principal: Principal, key: str | None,
                request_body: bytes) -> JSONResponse:
    answer = await _submit(gw, OUTBOUND_ROUTES[bericht].id, envelope, principal, key, request_body)
    body = answer.body
    if answer.status == 202 and isinstance(body, dict):
        # The worker sees what was sent without reading XML: the identification and reference.
        found = gw.exchange_context(body["exchange_id"])
        context = found[1] if found else {}
        body = {**body, "bericht": bericht, "identificatie": context.get("identificatie"),
                "referentie_aanbieder": context.get("reference")}
    return JSONResponse(body, status_code=answer.status, media_type=answer.media_type)


@worker_router.post("/start", status_code=202, summary="Care has started under allocations in the ECD: a WMO305")
async def start_care(body: provider.StartIn, gw: GatewayDep, principal: Worker, idempotency_key: IdempotencyKey = None,
                     ) -> JSONResponse:
    bundle, arrangements = await _ecd(gw, body.dossier_id, True)
    envelope = provider.start_or_stop(gw, "start", body, bundle, arrangements)
    return await _send(gw, "WMO305", envelope, principal, idempotency_key, body.model_dump_json().encode())


@worker_router.post("/stop", status_code=202, summary="Care under allocations has ended: a WMO307 with its reason")
async def stop_care(body: provider.StopIn, gw: GatewayDep, principal: Worker, idempotency_key: IdempotencyKey = None,
                    ) -> JSONResponse:
    bundle, arrangements = await _ecd(gw, body.dossier_id, True)
    envelope = provider.start_or_stop(gw, "stop", body, bundle, arrangements)
    return await _send(gw, "WMO307", envelope, principal, idempotency_key, body.model_dump_json().encode())


@worker_router.post("/verzoeken/toewijzing", status_code=202, summary="Request an allocation: a WMO315")
async def request_allocation(body: provider.ToewijzingRequestIn, gw: GatewayDep, principal: Worker,
                             idempotency_key: IdempotencyKey = None) -> JSONResponse:
    bundle, _ = await _ecd(gw, body.dossier_id, False)
    envelope = provider.toewijzing_request(gw, body, bundle)
    return await _send(gw, "WMO315", envelope, principal, idempotency_key, body.model_dump_json().encode())


@worker_router.post("/verzoeken/wijziging", status_code=202, summary="Request a change of allocations: a WMO317")
async def request_change(body: provider.WijzigingRequestIn, gw: GatewayDep, principal: Worker,
                         idempotency_key: IdempotencyKey = None) -> JSONResponse:
    bundle, arrangements = await _ecd(gw, body.dossier_id, True)
    envelope = provider.wijziging_request(gw, body, bundle, arrangements)
    return await _send(gw, "WMO317", envelope, principal, idempotency_key, body.model_dump_json().encode())


# --- batch import -----------------------------------------------------------------------------------

Administrator = Annotated[Principal, Depends(require("beheerder"))]


@worker_router.post("/batches", summary="Import a batch of iWmo messages (ZIP of XML files, or one XML): an outcome per message",
                    openapi_extra={"requestBody": {"required": True, "content": {
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                        XML: {"schema": {"type": "string"}}}}})
async def import_batch(request: Request, gw: GatewayDep, principal: Administrator) -> dict[str, Any]:
    from schakel_wmo import batch

    outcomes = await batch.run(gw, principal, await request.body())
    return {**batch.summary(outcomes), "outcomes": [o.public() for o in outcomes]}


# --- ondersteuningsplan → gezinsactieplan ------------------------------------------------------------

WorkerOrPrivacy = Annotated[Principal, Depends(require("hulpverlener", "privacy"))]
PLAN_BODY = {"requestBody": {"required": True, "content": {XML: {"schema": {"type": "string"}}}}}


async def _import_plan(gw: Gateway, principal: Principal, body: bytes, municipality: PartnerRow | None) -> JSONResponse:
    from schakel_wmo import ondersteuningsplan as op
    from schakel_wmo.plugin import PLAN_ROUTE

    plan = op.parse(body)
    if municipality is not None and plan.gemeentecode != municipality.identifiers.get("gemeentecode"):
        raise Problem("partner-mismatch", "The plan's municipality is not the gemeentecode registered for your token.")
    if not elfproef(plan.bsn):
        raise Problem("validation-failed", "The client's BSN fails the elfproef.", extensions={"errors": [
            {"loc": ["Client", "Bsn"], "type": "elfproef"}]})
    ecd = ecd_client(gw)
    try:
        clients = (await ecd.get("/clients", bsn=plan.bsn))["items"]
        dossiers = (await ecd.get("/dossiers", client_id=clients[0]["id"]))["items"] if clients else []
    except Care4Unavailable:
        raise Problem("unavailable", "The ECD does not answer; try again shortly.") from None
    if not dossiers:
        raise Problem("not-found", "The ECD has no dossier for this plan's client.")
    dossier = max(dossiers, key=lambda d: d.get("opened_at") or "")  # the current dossier
    envelope = {"bsn": plan.bsn, "draft": op.draft_data(plan, dossier["id"])}
    answer = await _submit(gw, PLAN_ROUTE.id, envelope, principal, f"ondersteuningsplan:{plan.gemeentecode}:{plan.plan_id}",
                           body)
    result = answer.body
    if answer.status == 202:
        result = {**result, "plan_id": plan.plan_id, "dossier_id": dossier["id"], "zrm_version": plan.zrm_version,
                  "sections": [d["code"] for d in envelope["draft"]["domains"]], "due": envelope["draft"]["due"]}
    return JSONResponse(result, status_code=answer.status, media_type=answer.media_type)


@router.post("/ondersteuningsplannen", status_code=202, summary="A municipality's ondersteuningsplan: a draft gezinsactieplan",
             openapi_extra=PLAN_BODY)
async def plan_from_municipality(request: Request, gw: GatewayDep, principal: Municipality) -> JSONResponse:
    return await _import_plan(gw, principal, await request.body(), _municipality(gw, principal))


@worker_router.post("/ondersteuningsplannen", status_code=202, summary="Import an ondersteuningsplan received by mail",
                    openapi_extra=PLAN_BODY)
async def plan_from_worker(request: Request, gw: GatewayDep, principal: Worker) -> JSONResponse:
    return await _import_plan(gw, principal, await request.body(), None)


async def plans_due(gw: Gateway, today: date | None = None) -> list[dict[str, Any]]:
    """Every imported plan with its deadline and where it stands; a draft the caseworker has made
    final in the ECD counts as delivered."""
    from schakel_wmo import ondersteuningsplan as op
    from schakel_wmo.plugin import PLAN_ROUTE

    with gw.store.reading() as session:
        rows = session.scalars(select(Exchange).where(Exchange.route_id == PLAN_ROUTE.id)
                               .order_by(Exchange.created_at)).all()
        plans = [(row.id, row.state, (row.receipt or {}).get("reference"),
                  gw.box.decrypt_json(row.context_encrypted) if row.context_encrypted else {}) for row in rows]
    ecd = ecd_client(gw) if plans else None
    found = []
    for exchange_id, state, document_id, context in plans:
        delivered: bool | None = False
        if document_id and ecd is not None:
            try:
                delivered = (await ecd.get(f"/documents/{document_id}"))["status"] == "final"
            except (Care4Unavailable, Problem):
                delivered = None  # the ECD cannot say: shown as unknown, never as done
        due = date.fromisoformat(context["due"]) if context.get("due") else None
        item = {"exchange_id": exchange_id, "exchange_state": state, "plan_id": context.get("plan_id"),
                "gemeentecode": context.get("gemeentecode"), "dossier_id": context.get("dossier_id"),
                "document_id": document_id, "signed": context.get("signed"), "arrangement": context.get("arrangement"),
                "due": context.get("due"), "status": op.status(due, bool(delivered), today) if delivered is not None else "onbekend",
                "days_left": (due - (today or date.today())).days if due else None}
        found.append(item)
    return sorted(found, key=lambda i: (i["due"] is None, i["due"] or ""))


@worker_router.get("/gezinsactieplannen", summary="Gezinsactieplannen due and overdue (10 days after signing)")
async def list_plans(gw: GatewayDep, _: WorkerOrPrivacy, status: str | None = None) -> dict[str, Any]:
    items = await plans_due(gw)
    if status:
        wanted = set(status.split(","))
        items = [i for i in items if i["status"] in wanted]
    return {"items": items}
