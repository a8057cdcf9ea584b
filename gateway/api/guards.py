"""ASGI middleware that refuses oversized or compressed request bodies before anyone reads them."""

from __future__ import annotations

from typing import Any

from gateway.core.ids import new_id
from gateway.core.problems import Problem

Scope = dict[str, Any]


class HttpMiddleware:
    """Pure ASGI middleware for HTTP requests only; other scopes pass straight through.

    Pure ASGI rather than Starlette's BaseHTTPMiddleware, which wraps errors raised while the
    body streams in an ExceptionGroup and so hides a 413 behind a 500.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        raise NotImplementedError


class BodyGuard(HttpMiddleware):
    """413 for a body over the limit (by header or as it streams); 415 for a content encoding.

    Request bodies are never decompressed: a gzip bomb is refused, not inflated.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await self._refuse(scope, send, Problem("unsupported-media-type", "Compressed request bodies are not accepted."))
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, send, Problem("payload-too-large", f"Request bodies are limited to {self.max_bytes} bytes."))
            return
        received = 0

        async def counting_receive() -> dict[str, Any]:
            # A chunked body has no Content-Length: count it as it streams in.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise Problem("payload-too-large", f"Request bodies are limited to {self.max_bytes} bytes.")
            return message

        try:
            await self.app(scope, counting_receive, send)
        except Problem as problem:
            await self._refuse(scope, send, problem)

    @staticmethod
    async def _refuse(scope: Scope, send: Any, problem: Problem) -> None:
        response = problem.response(scope.get("path"))
        await response(scope, _empty_receive, send)


async def _empty_receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class ErrorShield(HttpMiddleware):
    """Turns an unhandled error into a problem+json 500 and logs where it happened — never what.

    Starlette's own server-error middleware re-raises after answering, and the server then
    prints a traceback that can quote SQL parameters or message content; this stops the error here.
    """

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Problem as problem:
            if not started:
                await BodyGuard._refuse(scope, send, problem)
        except Exception as exc:
            import structlog

            from gateway.logging import safe_frames

            structlog.get_logger("gateway.errors").error(
                "unhandled_error", error_type=type(exc).__name__, path=scope.get("path"), frames=safe_frames(exc))
            if not started:
                await BodyGuard._refuse(scope, send, Problem("internal-error", "The error was logged; no details are returned."))


class CorrelationId(HttpMiddleware):
    """Binds a correlation id (the caller's ``X-Correlation-ID`` or a new one) to every log line
    of the request and echoes it in the answer."""

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        import structlog

        given = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"x-correlation-id"), "")
        correlation_id = (given or new_id())[:64]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-correlation-id", correlation_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)
