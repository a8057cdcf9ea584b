"""The municipality's inbox: iWmo messages in, the matching retour out.

``POST /partners/wmo/berichten`` takes one iWmo 3.2 message (XML) from a registered municipality
and answers with its retour (for a 301: the WMO302, 0200 when accepted). A message that fails
any check is not processed: not well-formed XML, an attack, another release's namespace or a
schema error get a problem+json; a schema-valid message that fails a business rule (a BSN failing
the elfproef, an identification already used for another message) gets a retour with its code.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import GatewayDep, require
from gateway.core.auth import Principal
from gateway.core.models import Partner
from gateway.core.problems import Problem
from gateway.core.pseudonyms import elfproef
from gateway.core.runtime import Gateway
from schakel_wmo import iwmo, toewijzing

router = APIRouter(tags=["wmo (partner)"])
Municipality = Annotated[Principal, Depends(require("partner"))]
XML = "application/xml"
ROUTE_301 = "wmo.toewijzing"


def _municipality(gw: Gateway, principal: Principal) -> Partner:
    with gw.store.reading() as session:
        partner = session.get(Partner, principal.partner_id)
    if partner is None or partner.connector_type != "wmo":
        raise Problem("forbidden", "Only a registered municipality sends iWmo messages.")
    return partner


@router.post("/berichten", summary="One iWmo 3.2 message in; its retour out",
             openapi_extra={"requestBody": {"required": True, "content": {XML: {"schema": {"type": "string"}}}}},
             responses={200: {"content": {XML: {}}}})
async def receive(request: Request, gw: GatewayDep, principal: Municipality) -> Response:
    body = await request.body()
    partner = _municipality(gw, principal)
    bericht, root = iwmo.parse(body)
    if bericht not in iwmo.RETOUR:
        raise Problem("message-invalid", f"{bericht} is not a message a provider receives here.")
    errors = iwmo.validate(bericht, root)
    if errors:
        raise Problem("message-invalid", f"The {bericht} does not validate against the official iWmo 3.2 schema.",
                      extensions={"errors": errors})
    header = iwmo.header(bericht, root)
    if header.afzender != partner.identifiers.get("gemeentecode"):
        raise Problem("partner-mismatch", "Afzender is not the gemeentecode registered for your token's municipality.")
    bsn, allocations = toewijzing.allocations(root)
    if not elfproef(bsn):
        # Schema-valid, but a rule fails: answered with a retour, and not processed.
        return Response(iwmo.retour(bericht, root, header_codes=[iwmo.TECHNICAL]), media_type=XML)
    message_id = f"{header.afzender}:{header.identificatie}:{header.dagtekening}"
    retour = iwmo.retour(bericht, root)
    envelope = {"bsn": bsn, "municipality": header.afzender, "allocations": allocations, "retour": retour.decode()}
    try:
        answer = await run_in_threadpool(functools.partial(
            gw.pipeline.submit, ROUTE_301, json.dumps(envelope).encode(), "application/json", principal, message_id,
            "wettelijke_plicht", internal=True, request_body=body))
    except Problem as problem:
        if problem.slug == "idempotency-key-reused":
            # The same identification for a different message: iWmo's own code for that.
            return Response(iwmo.retour(bericht, root, header_codes=[iwmo.NOT_UNIQUE]), media_type=XML)
        raise
    if answer.status >= 400:
        return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type)
    found = gw.exchange_context(answer.body["exchange_id"])
    stored = found[1].get("retour") if found else None  # a repeat gets the first answer, byte for byte
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return Response((stored or retour.decode()).encode(), media_type=XML, headers=headers)
