"""DirectRoute: the hot endpoints are documented and guarded like the others, and a signature the
direct handler could not honour is refused when the app is built, not at the first request."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import Submitter
from gateway.api.direct import DirectRoute
from gateway.api.openapi import declared_roles, routes_with_prefix


def test_the_submit_endpoint_is_documented_with_its_headers_and_roles(live_gateway):
    import httpx

    document = httpx.get(live_gateway.url + "/openapi.json", timeout=10).json()
    operation = document["paths"]["/api/v1/routes/{route_id}/messages"]["post"]
    parameters = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert ("path", "route_id") in parameters
    assert parameters[("header", "Idempotency-Key")]["schema"]["maxLength"] == 255
    assert ("header", "X-Correlation-ID") in parameters and ("header", "Schakel-Legal-Basis") in parameters
    route = next(route for path, route in routes_with_prefix(live_gateway.server.app.routes)
                 if path == "/api/v1/routes/{route_id}/messages")
    assert isinstance(route, DirectRoute)
    assert declared_roles(route) == {"beheerder", "hulpverlener", "partner"}


def test_a_header_over_its_limit_is_the_same_problem_as_any_invalid_field(live_gateway):
    live_gateway.add_partner("partner-a", "http://127.0.0.1:9/inbox")
    with live_gateway.client("hulpverlener") as client:
        answer = client.post("/api/v1/routes/webhook.notice/messages", json={"reference": "r"},
                             headers={"Idempotency-Key": "k" * 256})
        unauthenticated = client.post("/api/v1/routes/webhook.notice/messages", json={},
                                      headers={"Authorization": "Bearer nonsense"})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [{"location": ["header", "Idempotency-Key"], "reason": "string_too_long"}]
    assert unauthenticated.status_code == 401


def _app_with(endpoint) -> FastAPI:
    router = APIRouter(route_class=DirectRoute)
    router.post("/things/{thing_id}")(endpoint)
    app = FastAPI()
    app.include_router(router)
    return app


def test_an_endpoint_with_a_query_or_body_parameter_is_refused_when_the_app_is_built():
    async def with_query(thing_id: str, request: Request, page: int = 1) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(TypeError, match="string path parameters"):
        _app_with(with_query)


async def _needs_principal(principal: Submitter) -> str:
    return principal.name


async def _endpoint_with_a_deeper_dependency(thing_id: str,
                                             name: Annotated[str, Depends(_needs_principal)]) -> JSONResponse:
    return JSONResponse({})


def test_a_dependency_that_needs_more_than_the_request_is_refused_when_the_app_is_built():
    with pytest.raises(TypeError, match="takes the request alone"):
        _app_with(_endpoint_with_a_deeper_dependency)
