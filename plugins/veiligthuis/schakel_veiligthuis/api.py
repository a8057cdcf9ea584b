"""Endpoints of the veiligthuis plugin.

Workers (``/api/v1/veiligthuis``): draft a melding from a dossier, send it with the meldcode
weighing, follow its status (overdue after 5 working days without a decision), and enter feedback
that came by phone or letter. Veilig Thuis regions (``/partners/veiligthuis``): send receipts,
decisions and end-of-involvement feedback.
"""

from __future__ import annotations

import functools
import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import GatewayDep, require
from gateway.core import partners as partner_registry
from gateway.core.auth import Principal
from gateway.core.models import Exchange
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_care4.client import Care4Unavailable
from schakel_care4.ecd import ecd_client
from schakel_veiligthuis import feedback as fb
from schakel_veiligthuis import melding
from schakel_veiligthuis.plugin import FEEDBACK_ROUTE, MELDING_ROUTE

worker_router = APIRouter(tags=["veiligthuis"])
partner_router = APIRouter(tags=["veiligthuis (partner)"])
Worker = Annotated[Principal, Depends(require("hulpverlener"))]
WorkerOrPrivacy = Annotated[Principal, Depends(require("hulpverlener", "privacy"))]
Partner = Annotated[Principal, Depends(require("partner"))]
DECISION_WORKING_DAYS = 5


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dossier_id: str = Field(min_length=1, max_length=64)


class SendIn(DraftIn):
    answers: melding.Answers
    edits: melding.Edits = Field(default_factory=melding.Edits)


async def _draft(gw: Gateway, dossier_id: str) -> tuple[dict[str, Any], dict[str, Any], list[str], str]:
    try:
        bundle = await ecd_client(gw).dossier_bundle(dossier_id)
    except Care4Unavailable:
        raise Problem("unavailable", "The ECD does not answer; try again shortly.") from None
    draft, confidential, gemeentecode = melding.build_draft(bundle)
    return bundle, draft, confidential, gemeentecode


def _subject(bundle: dict[str, Any]) -> str:
    client = bundle["client"]
    return client["bsn"] or f"care4:{client['id']}"


@worker_router.post("/drafts", summary="A melding drafted from the dossier: what leaves, what is withheld, what to answer")
async def draft_melding(body: DraftIn, gw: GatewayDep, principal: Worker) -> dict[str, Any]:
    bundle, draft, confidential, gemeentecode = await _draft(gw, body.dossier_id)
    subject = gw.pseudonymise(_subject(bundle))

    def preview() -> dict[str, Any]:
        from gateway.core.consent import find_active

        with gw.store.reading() as session:
            region = partner_registry.resolve(session, "veiligthuis", "gemeentecode", gemeentecode)
            consent = (find_active(session, subject, region, {"veiligthuis", "veilig_thuis"}, MELDING_ROUTE.purpose, ())
                       if region else None)
        basis = "toestemming" if consent else "meldrecht"
        result = gw.mappings[MELDING_ROUTE.mapping or ""].apply(draft, confidential=frozenset(confidential), basis=basis)
        return {
            "dossier_id": body.dossier_id,
            "region": {"partner_id": region.id, "name": region.name} if region else None,
            "melding": result.fields,
            "leaves": result.names,
            "withheld": [{"field": path, "reason": "vertrouwelijk in het dossier; deze melding neemt het niet mee"}
                         for path, _ in result.withheld],
            "to_answer": melding.still_to_answer(),
            "consent": {"present": consent is not None, "consent_id": consent.id if consent else None},
            "suggested_basis": basis,
        }

    return await run_in_threadpool(preview)


@worker_router.post("/meldingen", status_code=202, summary="Send the melding with the worker's weighing")
async def send_melding(body: SendIn, gw: GatewayDep, principal: Worker,
                       idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
                       ) -> JSONResponse:
    bundle, draft, confidential, gemeentecode = await _draft(gw, body.dossier_id)
    answers = body.answers
    envelope = {
        "melding": melding.complete(melding.apply_edits(draft, body.edits), answers),
        "confidential": confidential,
        "gemeentecode": gemeentecode,
        "subject": _subject(bundle),
        "dossier_id": body.dossier_id,
        "client_id": bundle["client"]["id"],
        "evidence": melding.meldrecht_evidence(answers, principal.name) if answers.legal_basis == "meldrecht" else None,
    }
    answer = await run_in_threadpool(functools.partial(
        gw.pipeline.submit, MELDING_ROUTE.id, json.dumps(envelope).encode(), "application/json", principal,
        idempotency_key, answers.legal_basis, None, internal=True, request_body=body.model_dump_json().encode()))
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)


def melding_status(gw: Gateway, today: date | None = None) -> list[dict[str, Any]]:
    today = today or date.today()
    with gw.store.reading() as session:
        sent = list(session.scalars(select(Exchange).where(Exchange.route_id == MELDING_ROUTE.id)
                                    .order_by(Exchange.created_at.desc())))
        answers = list(session.scalars(select(Exchange).where(
            Exchange.route_id == FEEDBACK_ROUTE.id, Exchange.correlation_id.in_([e.correlation_id for e in sent]))))
    feedback: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        context = gw.box.decrypt_json(answer.context_encrypted) if answer.context_encrypted else {}
        feedback.setdefault(answer.correlation_id, []).append(context)
    rows = []
    for exchange in sent:
        received = feedback.get(exchange.correlation_id, [])
        decision = next((f for f in received if f.get("type") == "besluit"), None)
        ended = any(f.get("type") == "einde_betrokkenheid" for f in received)
        sent_on = (exchange.delivered_at or exchange.created_at).date()
        due = fb.add_working_days(sent_on, DECISION_WORKING_DAYS)
        rows.append({
            "exchange_id": exchange.id, "state": exchange.state, "partner_id": exchange.partner_id,
            "legal_basis": exchange.legal_basis, "sent_on": sent_on.isoformat() if exchange.delivered_at else None,
            "receipt": exchange.receipt, "acknowledged": any(f.get("type") == "ontvangstbevestiging" for f in received),
            "decision": decision.get("decision") if decision else None,
            "decision_date": decision.get("date") if decision else None,
            "decision_due": due.isoformat(), "ended": ended,
            "overdue": exchange.delivered_at is not None and decision is None and today > due,
        })
    return rows


@worker_router.get("/meldingen", summary="Sent meldingen with their receipt, decision, and whether one is overdue")
async def list_meldingen(gw: GatewayDep, _: WorkerOrPrivacy, overdue: bool | None = None) -> list[dict[str, Any]]:
    rows = await run_in_threadpool(melding_status, gw)
    return [row for row in rows if overdue is None or row["overdue"] == overdue]


@worker_router.post("/meldingen/{exchange_id}/terugkoppeling", status_code=202,
                    summary="Enter feedback that came by phone or letter")
async def enter_feedback(exchange_id: str, body: fb.Feedback, gw: GatewayDep, principal: Worker) -> JSONResponse:
    if body.melding_kenmerk != exchange_id:
        raise Problem("validation-failed", "melding_kenmerk must be the melding this feedback is about.")
    payload = {**body.model_dump(mode="json"), "entered_by": principal.name}
    answer = await run_in_threadpool(functools.partial(
        gw.pipeline.submit, FEEDBACK_ROUTE.id, json.dumps(payload).encode(), "application/json", principal, None, None, None,
        internal=True))
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)


@partner_router.post("/terugkoppeling", status_code=202, summary="A Veilig Thuis region's receipt, decision or feedback")
async def partner_feedback(body: fb.Feedback, gw: GatewayDep, principal: Partner,
                           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
                           ) -> JSONResponse:
    answer = await run_in_threadpool(gw.pipeline.submit, FEEDBACK_ROUTE.id, body.model_dump_json().encode(),
                                     "application/json", principal, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)
