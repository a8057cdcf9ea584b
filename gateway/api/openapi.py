"""The OpenAPI document says what the gateway really answers.

FastAPI documents only the happy path and its own validation error. Every operation here can also
answer with an RFC 9457 problem (unauthenticated, forbidden, not found, too large, conflict, …), and
every non-public operation needs a bearer token: both are added to the generated document, so
partners' generators and schema-based testers (schemathesis) see the same contract the code keeps.
"""

from __future__ import annotations

from typing import Any, Iterator

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from gateway.core.problems import CATALOGUE, MEDIA_TYPE

# The problem statuses any operation may answer; an operation's own documented answers win.
PROBLEM_STATUSES = (400, 401, 403, 404, 406, 409, 413, 415, 422, 429, 503)
PUBLIC_STATUSES = (400, 404, 406, 413, 415, 422, 503)
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "A path under /problems/ naming the problem type",
                 "enum": [f"/problems/{slug}" for slug in sorted(CATALOGUE)] + ["about:blank"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}


def routes_with_prefix(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every endpoint with its full path. Recent FastAPI keeps included routers nested
    (``original_router`` under an include prefix) instead of copying their routes."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from routes_with_prefix(nested.routes, prefix + getattr(route.include_context, "prefix", ""))
        elif isinstance(route, APIRoute) and route.include_in_schema:
            yield prefix + route.path, route


def declared_roles(route: APIRoute) -> set[str] | None:
    """The roles an endpoint's ``require(...)`` dependency names; None for a public endpoint."""
    for dependency in route.dependant.dependencies:
        roles = getattr(dependency.call, "roles", None)
        if roles is not None:
            return set(roles)
    return None


def _problem(status: int) -> dict[str, Any]:
    return {"description": f"Problem (RFC 9457), HTTP {status}",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "An API token (role or partner), hashed at rest"}}
    for path, route in routes_with_prefix(app.routes):
        roles = declared_roles(route)
        for method in route.methods or ():
            operation = schema["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            # Validation errors are problems too, never FastAPI's echoing default body.
            responses["422"] = _problem(422)
            for status in PROBLEM_STATUSES if roles is not None else PUBLIC_STATUSES:
                responses.setdefault(str(status), _problem(status))
            if roles is not None:
                operation["security"] = [{"bearer": []}]
                operation.setdefault("description", "")
                operation["description"] = (operation["description"] + f"\n\nRoles: {', '.join(sorted(roles))}.").strip()
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document lists for the path template that ``path`` fills in."""
    import re

    for template, item in app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return sorted(method.upper() for method in item if method in
                          {"get", "put", "post", "delete", "patch", "head", "options"})
    return []
