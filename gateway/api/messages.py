"""Submitting a message on a route: the entry to the pipeline for workers and partner systems."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import GatewayDep, Submitter
from gateway.api.schemas import SubmitOut
from gateway.core.problems import MEDIA_TYPE

router = APIRouter(prefix="/api/v1", tags=["messages"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/routes/{route_id}/messages",
    status_code=202,
    response_model=SubmitOut,
    openapi_extra=_BODY,
    responses={403: {"content": {MEDIA_TYPE: {}}}, 409: {"content": {MEDIA_TYPE: {}}}, 422: {"content": {MEDIA_TYPE: {}}}},
    summary="Submit a message on a route; answered once the exchange is durably queued",
)
async def submit_message(
    route_id: str,
    request: Request,
    gw: GatewayDep,
    principal: Submitter,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=255),
    legal_basis: str | None = Header(default=None, alias="Schakel-Legal-Basis", max_length=64),
    correlation_id: str | None = Header(default=None, alias="X-Correlation-ID", max_length=64),
) -> JSONResponse:
    body = await request.body()
    media_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    answer = await gw.pipeline.submit_async(route_id, body, media_type, principal, idempotency_key, legal_basis,
                                            correlation_id)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if "exchange_id" in answer.body:
        headers["Location"] = f"/api/v1/exchanges/{answer.body['exchange_id']}"
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)
