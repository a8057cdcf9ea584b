"""Endpoints of the police plugin.

Police units and municipalities (``/partners/police``, each with its own partner token): notify a
tijdelijk huisverbod (imposed, extended, withdrawn), send a zorgmelding, ask about a client, and —
as the receiver of a warm handover — fetch it and confirm its receipt. Workers
(``/api/v1/police``): hand a client over to a municipality or organisation, and follow handovers.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import GatewayDep, require
from gateway.core.auth import Principal
from gateway.core.models import Partner
from gateway.core.pipeline import Answer
from gateway.core.problems import Problem
from schakel_care4.client import Care4Unavailable
from schakel_care4.ecd import ecd_client
from schakel_police import handover, huisverbod, informatieverzoek, zorgmelding
from schakel_police.connector import Contact, served_codes, soort_of
from schakel_police.messages import HuisverbodBericht, Informatieverzoek, Ontvangstbevestiging, Zorgmelding
from schakel_police.plugin import HANDOVER_ROUTE

worker_router = APIRouter(tags=["police"])
partner_router = APIRouter(tags=["police (partner)"])
Worker = Annotated[Principal, Depends(require("hulpverlener"))]
WorkerOrPrivacy = Annotated[Principal, Depends(require("hulpverlener", "privacy"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


@dataclass(frozen=True)
class Caller:
    principal: Principal
    contact: Contact


async def police_partner(principal: Annotated[Principal, Depends(require("partner"))], gw: GatewayDep) -> Caller:
    """A partner token of a registered police unit, municipality or organisation — checked before
    the body is read, so another partner learns nothing from how its message would have failed."""
    def load() -> Partner | None:
        with gw.store.reading() as session:
            return session.get(Partner, principal.partner_id)

    partner = await run_in_threadpool(load)
    if partner is None or partner.connector_type != "police":
        raise Problem("forbidden", "Only a registered police unit, municipality or organisation uses this endpoint.")
    identifiers = dict(partner.identifiers or {})
    return Caller(principal=principal, contact=Contact(partner.id, partner.name, soort_of(identifiers),
                                                       frozenset(served_codes(identifiers))))


police_partner.roles = ("partner",)  # type: ignore[attr-defined]  # read by the role matrix test
PolicePartner = Annotated[Caller, Depends(police_partner)]


def _json(answer: Answer | tuple[int, dict[str, Any], bool]) -> JSONResponse:
    status, body, replayed, media = ((answer.status, answer.body, answer.replayed, answer.media_type)
                                     if isinstance(answer, Answer) else (*answer, "application/json"))
    if status >= 400:
        media = "application/problem+json"
    return JSONResponse(body, status_code=status, media_type=media,
                        headers={"Idempotent-Replayed": "true"} if replayed else {})


# --- partners --------------------------------------------------------------------------------------

@partner_router.post("/huisverboden", status_code=202,
                     summary="A tijdelijk huisverbod imposed, extended or withdrawn (schema huisverbod-1.0)")
async def receive_huisverbod(body: HuisverbodBericht, gw: GatewayDep, caller: PolicePartner) -> JSONResponse:
    return _json(await run_in_threadpool(huisverbod.receive, gw, caller.contact, caller.principal, body.root))


@partner_router.post("/zorgmeldingen", status_code=202, summary="A police zorgmelding about a household")
async def receive_zorgmelding(body: Zorgmelding, gw: GatewayDep, caller: PolicePartner) -> JSONResponse:
    return _json(await run_in_threadpool(zorgmelding.receive, gw, caller.contact, caller.principal, body))


@partner_router.post("/informatieverzoeken", status_code=202,
                     summary="Ask about a client: answered only on a basis (the answer is posted back), always audited")
async def receive_request(body: Informatieverzoek, gw: GatewayDep, caller: PolicePartner) -> JSONResponse:
    return _json(await informatieverzoek.receive(gw, caller.contact, caller.principal, body))


@partner_router.get("/overdrachten/{exchange_id}", summary="Fetch a handover announced to you (audited)",
                    responses={200: {"content": {"application/json": {}}}})
async def fetch_handover(exchange_id: str, gw: GatewayDep, caller: PolicePartner) -> Response:
    body = await run_in_threadpool(handover.fetch, gw, caller.principal, exchange_id)
    return Response(body, media_type="application/json")


@partner_router.post("/overdrachten/{exchange_id}/ontvangst", summary="Confirm a handover's receipt (kept as evidence)")
async def confirm_handover(exchange_id: str, body: Ontvangstbevestiging, gw: GatewayDep,
                           caller: PolicePartner) -> dict[str, Any]:
    return await run_in_threadpool(handover.acknowledge, gw, caller.principal, exchange_id, body)


# --- workers ---------------------------------------------------------------------------------------

class HandoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dossier_id: str = Field(min_length=1, max_length=64)
    partner_id: str = Field(min_length=1, max_length=64, description="The receiving municipality or organisation")
    toelichting: str | None = Field(default=None, max_length=2000, description="The worker's own words for the receiver")


@worker_router.post("/overdrachten", status_code=202,
                    summary="Hand a client over: built from the dossier, with her consent, announced to the receiver")
async def hand_over(body: HandoverIn, gw: GatewayDep, principal: Worker,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def receiver() -> Partner | None:
        with gw.store.reading() as session:
            return session.get(Partner, body.partner_id)

    partner = await run_in_threadpool(receiver)
    if partner is None or partner.connector_type != "police":
        raise Problem("no-partner", "The receiver is not a registered municipality or organisation.")
    if soort_of(partner.identifiers or {}) == "politie":
        raise Problem("validation-failed", "A warm handover goes to a municipality or a care organisation, not the police.")
    try:
        bundle = await ecd_client(gw).dossier_bundle(body.dossier_id)
    except Care4Unavailable:
        raise Problem("unavailable", "The ECD does not answer; try again shortly.") from None
    collection = gw.settings.public_base_url.rstrip("/") + "/partners/police/overdrachten/"
    data, confidential = handover.build(bundle, body.toelichting, collection)
    client = bundle["client"]
    envelope = {"data": data, "confidential": confidential, "subject": client["bsn"] or f"care4:{client['id']}",
                "partner_id": partner.id, "context": {"dossier_id": body.dossier_id, "client_id": client["id"]}}
    answer = await run_in_threadpool(functools.partial(
        gw.pipeline.submit, HANDOVER_ROUTE, json.dumps(envelope).encode(), "application/json", principal,
        idempotency_key, "toestemming", None, internal=True, request_body=body.model_dump_json().encode()))
    return _json(answer)


@worker_router.get("/overdrachten", summary="Handovers: announced, fetched by the receiver, receipt confirmed")
async def list_handovers(gw: GatewayDep, _: WorkerOrPrivacy) -> list[dict[str, Any]]:
    return await run_in_threadpool(handover.listing, gw)


@worker_router.get("/verwijzingen", summary="Referrals opened by huisverbod notices, with the deadline by which help must start")
async def list_referrals(gw: GatewayDep, _: WorkerOrPrivacy) -> list[dict[str, Any]]:
    return await run_in_threadpool(huisverbod.referrals, gw)
