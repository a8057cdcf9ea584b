"""Endpoints of the veiligthuis plugin.

Workers (``/api/v1/veiligthuis``): draft a melding from a dossier, send it with the meldcode
weighing, follow its status (overdue after 5 working days without a decision), and enter feedback
that came by phone or letter. Veilig Thuis regions (``/partners/veiligthuis``): send receipts,
decisions and end-of-involvement feedback.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import GatewayDep, require
from gateway.core.auth import Principal
from schakel_veiligthuis import feedback as fb
from schakel_veiligthuis import melding, reporting
from schakel_veiligthuis.plugin import FEEDBACK_ROUTE

worker_router = APIRouter(tags=["veiligthuis"])
partner_router = APIRouter(tags=["veiligthuis (partner)"])
Worker = Annotated[Principal, Depends(require("hulpverlener"))]
WorkerOrPrivacy = Annotated[Principal, Depends(require("hulpverlener", "privacy"))]
Partner = Annotated[Principal, Depends(require("partner"))]


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The id goes into the ECD's URL path: letters, digits, - and _ only, so it cannot walk out of /dossiers.
    dossier_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class SendIn(DraftIn):
    answers: melding.Answers
    edits: melding.Edits = Field(default_factory=melding.Edits)


@worker_router.post("/drafts", summary="A melding drafted from the dossier: what leaves, what is withheld, what to answer")
async def draft_melding(body: DraftIn, gw: GatewayDep, principal: Worker) -> dict[str, Any]:
    return await reporting.draft(gw, principal, body.dossier_id)


@worker_router.post("/meldingen", status_code=202, summary="Send the melding with the worker's weighing")
async def send_melding(body: SendIn, gw: GatewayDep, principal: Worker,
                       idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
                       ) -> JSONResponse:
    answer = await reporting.send(gw, principal, body.dossier_id, body.answers, body.edits, idempotency_key,
                                  body.model_dump_json().encode())
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)


@worker_router.get("/meldingen", summary="Sent meldingen with their receipt, decision, and whether one is overdue")
async def list_meldingen(gw: GatewayDep, _: WorkerOrPrivacy, overdue: bool | None = None) -> list[dict[str, Any]]:
    rows = await run_in_threadpool(reporting.melding_status, gw)
    return [row for row in rows if overdue is None or row["overdue"] == overdue]


@worker_router.post("/meldingen/{exchange_id}/terugkoppeling", status_code=202,
                    summary="Enter feedback that came by phone or letter")
async def enter_feedback(exchange_id: str, body: fb.Feedback, gw: GatewayDep, principal: Worker) -> JSONResponse:
    answer = await reporting.enter_feedback(gw, principal, exchange_id, body)
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)


@partner_router.post("/terugkoppeling", status_code=202, summary="A Veilig Thuis region's receipt, decision or feedback")
async def partner_feedback(body: fb.Feedback, gw: GatewayDep, principal: Partner,
                           idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
                           ) -> JSONResponse:
    answer = await run_in_threadpool(gw.pipeline.submit, FEEDBACK_ROUTE.id, body.model_dump_json().encode(),
                                     "application/json", principal, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)
