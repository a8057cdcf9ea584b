"""RFC 9457 problem details: one exception type, a stable ``type`` per failure, no echoed input.

A problem's ``type`` is a relative URI (``/problems/<slug>``) that the gateway serves as a page,
so a partner can look up what went wrong. ``detail`` is written for people and never quotes
the rejected value: input here may be personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.core.store import DATA_ERRORS

MEDIA_TYPE = "application/problem+json"

# slug -> (HTTP status, title). The slugs are a public contract: never rename one.
CATALOGUE: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be understood"),
    "unauthenticated": (401, "A valid bearer token is required"),
    "forbidden": (403, "Your role may not do this"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "idempotency-conflict": (409, "A request with this idempotency key is still being handled"),
    "state-conflict": (409, "The resource is not in a state that allows this"),
    "already-exists": (409, "A resource with this identifier already exists"),
    "payload-too-large": (413, "The request body is larger than allowed"),
    "unsupported-media-type": (415, "Unsupported media type or content encoding"),
    "idempotency-key-reused": (422, "This idempotency key was used with a different body"),
    "validation-failed": (422, "The request does not match its schema"),
    "xml-malformed": (400, "The XML document is not well-formed"),
    "xml-forbidden-construct": (400, "The XML document uses a construct the gateway refuses"),
    "xml-limits-exceeded": (400, "The XML document exceeds a structural limit"),
    "message-invalid": (422, "The message failed validation"),
    "unknown-message-type": (422, "No enabled plugin handles this message type"),
    "unknown-route": (404, "No route is configured for this message"),
    "no-partner": (422, "No registered partner could be resolved for this message"),
    "refused": (403, "No basis allows this exchange"),
    "partner-mismatch": (403, "This partner token may not act for that partner"),
    "internal-error": (500, "The gateway failed while handling the request"),
    "unavailable": (503, "The gateway is not ready"),
}


def field_errors(errors: Any, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic validation errors as problem entries: where, and what kind — never the value."""
    return [{"location": [*prefix, *(str(part) for part in error.get("loc", ()))], "reason": error.get("type", "invalid")}
            for error in errors]


@dataclass
class Problem(Exception):
    slug: str
    detail: str | None = None
    status: int | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.slug not in CATALOGUE:
            raise ValueError(f"unknown problem type {self.slug!r}")
        Exception.__init__(self, self.slug)

    @property
    def http_status(self) -> int:
        return self.status or CATALOGUE[self.slug][0]

    def body(self, instance: str | None = None) -> dict[str, Any]:
        status = self.http_status
        body: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": CATALOGUE[self.slug][1],
            "status": status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(self.body(instance), status_code=self.http_status, media_type=MEDIA_TYPE, headers=self.headers)


_STATUS_SLUGS = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 413: "payload-too-large", 415: "unsupported-media-type"}


def install(app: FastAPI) -> None:
    """Route every error through problem+json, including FastAPI's own 404/405/422."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer echoes the rejected input; ours names only where and what.
        errors = field_errors(exc.errors())
        return Problem("validation-failed", "One or more fields are missing or invalid.", extensions={"errors": errors}).response(
            request.url.path
        )

    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot hold (PostgreSQL takes no NUL character in text, nor a number
        # out of its column's range): the client's input, refused; its transaction rolled back.
        return Problem("validation-failed", "A value in the request cannot be stored (a NUL character, or a number "
                                            "out of range).").response(request.url.path)

    for error in DATA_ERRORS:
        app.add_exception_handler(error, _unstorable)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _STATUS_SLUGS.get(exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route's methods; a path served by several routes
            # (GET and POST as separate functions) must list them all.
            from gateway.api.openapi import allowed_methods

            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path)) or headers.get("Allow", "")
        return Problem(slug, status=exc.status_code, headers=headers or None).response(request.url.path)
