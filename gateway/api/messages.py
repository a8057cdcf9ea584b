"""Submitting a message on a route: the entry to the pipeline for workers and partner systems."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import Submitter
from gateway.api.direct import DirectRoute
from gateway.api.schemas import SubmitOut
from gateway.core.problems import MEDIA_TYPE, Problem
from gateway.core.runtime import Gateway

router = APIRouter(prefix="/api/v1", tags=["messages"], route_class=DirectRoute)

# The optional headers of a submission: (name, longest value, what it means). Read from the request
# directly rather than declared as FastAPI Header parameters, which FastAPI would resolve and
# validate on every request at several times the cost of this loop; the OpenAPI document still
# names them (below), and a value over the limit is the same 422 problem.
_HEADERS = (
    ("Idempotency-Key", 255, "Makes a retry safe: the same key and body get the first answer, and one exchange."),
    ("Schakel-Legal-Basis", 64, "The legal basis the sender relies on; the route's bases are tried in order without it."),
    ("X-Correlation-ID", 64, "Ties this exchange to the sender's own trace; a new one is made without it."),
)

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
        },
    },
    "parameters": [{"name": name, "in": "header", "required": False, "description": about,
                    "schema": {"type": "string", "maxLength": longest}} for name, longest, about in _HEADERS],
}


def _headers(request: Request) -> list[str | None]:
    values: list[str | None] = []
    for name, longest, _ in _HEADERS:
        value = request.headers.get(name)
        if value is not None and len(value) > longest:
            raise Problem("validation-failed", "One or more fields are missing or invalid.",
                          extensions={"errors": [{"location": ["header", name], "reason": "string_too_long"}]})
        values.append(value)
    return values


@router.post(
    "/routes/{route_id}/messages",
    status_code=202,
    response_model=SubmitOut,
    openapi_extra=_OPENAPI,
    responses={403: {"content": {MEDIA_TYPE: {}}}, 409: {"content": {MEDIA_TYPE: {}}}, 422: {"content": {MEDIA_TYPE: {}}}},
    summary="Submit a message on a route; answered once the exchange is durably queued",
)
async def submit_message(route_id: str, request: Request, principal: Submitter) -> JSONResponse:
    idempotency_key, legal_basis, correlation_id = _headers(request)
    gw: Gateway = request.app.state.gateway
    body = await request.body()
    media_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    answer = await gw.pipeline.submit_async(route_id, body, media_type, principal, idempotency_key, legal_basis,
                                            correlation_id)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if "exchange_id" in answer.body:
        headers["Location"] = f"/api/v1/exchanges/{answer.body['exchange_id']}"
    return JSONResponse(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)
