"""The floor: a bare FastAPI + httpx pass-through relay, with no persistence, no audit, no checks.

``POST /relay`` forwards the body to ``RELAY_TARGET`` on one shared ``httpx.AsyncClient`` and
hands back the partner's answer. This is the least any Python gateway does per message, so a
gateway that stores, audits and retries should be measured against it.

    RELAY_TARGET=http://127.0.0.1:9000/inbox uvicorn relay:create_app --factory --app-dir bench
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    target = os.environ["RELAY_TARGET"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The same pool limits as the gateway's shared client, so neither is starved of connections.
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                                     timeout=30, trust_env=False) as client:
            app.state.http = client
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/relay")
    async def relay(request: Request) -> Response:
        body = await request.body()
        answer = await request.app.state.http.post(
            target, content=body, headers={"Content-Type": request.headers.get("content-type", "application/octet-stream")})
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type", "application/json"))

    return app
