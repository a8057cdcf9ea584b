"""The floor: a bare FastAPI + httpx pass-through relay, with no persistence, no audit, no checks.

``POST /relay`` forwards the body to ``RELAY_TARGET`` on one shared ``httpx.AsyncClient`` and
hands back the partner's answer. This is the least any Python gateway does per message, so a
gateway that stores, audits and retries should be measured against it.

With ``RELAY_CLIENT=aiohttp`` it forwards on one ``aiohttp.ClientSession`` instead — the pool
Schakel's own client runs on (gateway/core/transport.py) — to show how much of the relay's cost
is its HTTP client rather than the forwarding itself.

    RELAY_TARGET=http://127.0.0.1:9000/inbox uvicorn relay:create_app --factory --app-dir bench
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

# (body, content type) -> (status, content, content type of the answer)
Forward = Callable[[Any, bytes, str], Awaitable[tuple[int, bytes, str]]]


def create_app() -> FastAPI:
    target = os.environ["RELAY_TARGET"]
    if os.environ.get("RELAY_CLIENT") == "aiohttp":
        return _relay(_aiohttp_client, _aiohttp_forward(target))
    return _relay(_httpx_client, _httpx_forward(target))


def _httpx_client() -> AbstractAsyncContextManager[Any]:
    # The same pool limits as the gateway's shared client, so neither is starved of connections.
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                             timeout=30, trust_env=False)


def _httpx_forward(target: str) -> Forward:
    async def forward(client: httpx.AsyncClient, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        answer = await client.post(target, content=body, headers={"Content-Type": content_type})
        return answer.status_code, answer.content, answer.headers.get("content-type", "application/json")
    return forward


def _aiohttp_client() -> AbstractAsyncContextManager[Any]:
    import aiohttp
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200), trust_env=False, auto_decompress=False)


def _aiohttp_forward(target: str) -> Forward:
    async def forward(session: Any, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        async with session.post(target, data=body, headers={"Content-Type": content_type}) as answer:
            return answer.status, await answer.read(), answer.headers.get("content-type", "application/json")
    return forward


def _relay(client: Callable[[], AbstractAsyncContextManager[Any]], forward: Forward) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client() as http:
            app.state.http = http
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/relay")
    async def relay(request: Request) -> Response:
        body = await request.body()
        status, content, media_type = await forward(
            request.app.state.http, body, request.headers.get("content-type", "application/octet-stream"))
        return Response(content, status_code=status, media_type=media_type)

    return app
