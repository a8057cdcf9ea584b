"""A webhook partner simulator: counts what it receives and de-duplicates by ``Idempotency-Key``.

Tests and the chaos run steer it through ``POST /_control``:

``{"mode": "ok"}``                                answer 200 and apply
``{"mode": "status", "status": 503, "count": 20}`` answer 503 (not applied) the next 20 times; no count: forever
``{"mode": "late", "delay": 5}``                  apply, then answer only after ``delay`` s (a timeout for the caller)
``{"mode": "trickle", "delay": 0.5}``             apply, then send the answer one byte per ``delay`` s
``{"mode": "reset", "count": 3}``                 drop the connection before answering (not applied)
``{"random": {"status_500": 0.1, "late": 0.05, "reset": 0.02}, "delay": 3}``  faults by chance
``"echo": true`` with a status mode: quote the request body back in the error answer

``GET /_stats`` tells how many distinct messages took effect and how many duplicates were absorbed.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.core.simulators import Faults, dropped_connection


@dataclass
class SinkState:
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    requests: int = 0
    faults: Faults = field(default_factory=Faults)
    echo: bool = False


def create_app() -> FastAPI:
    app = FastAPI(title="Webhook partner simulator", docs_url=None, redoc_url=None)
    state = SinkState()
    app.state.sink = state

    def _apply(key: str, body: bytes, request: Request) -> bool:
        if key in state.received:
            state.duplicates += 1
            return False
        state.received[key] = {
            "digest": hashlib.sha256(body).hexdigest(),
            "body": body.decode("utf-8", "replace"),
            "message_type": request.headers.get("X-Schakel-Message-Type"),
            "authorization": request.headers.get("Authorization"),
            "path": request.url.path,
        }
        return True

    @app.post("/inbox")
    @app.post("/inbox/{name}")
    async def inbox(request: Request, name: str | None = None) -> Response:
        state.requests += 1
        body = await request.body()
        key = request.headers.get("Idempotency-Key")
        if not key:
            return JSONResponse({"error": "Idempotency-Key required"}, status_code=400)
        fault = state.faults.draw()
        if fault.startswith("status"):
            status = state.faults.status_of(fault)
            answer: dict[str, Any] = {"error": "simulated"}
            if state.echo:  # a careless partner quoting the message back in its error
                answer["request"] = body.decode("utf-8", "replace")
            return JSONResponse(answer, status_code=status)
        if fault == "reset":
            return dropped_connection()
        fresh = _apply(key, body, request)
        answer = {"received": True, "duplicate": not fresh}
        if fault == "late":
            await asyncio.sleep(state.faults.delay)
        if fault == "trickle":
            payload = (str(answer) + " " * 40).encode()

            async def drip() -> Any:
                for byte in payload:
                    yield bytes([byte])
                    await asyncio.sleep(state.faults.delay)

            return StreamingResponse(drip(), media_type="text/plain")
        return JSONResponse(answer, status_code=200, headers={"X-Receipt-Id": f"sink-{len(state.received)}"})

    @app.post("/_control")
    async def control(request: Request) -> dict[str, Any]:
        data = await request.json()
        state.faults.set(data)
        state.echo = bool(data.get("echo", False))
        return {"mode": state.faults.mode, "count": state.faults.count}

    @app.get("/_stats")
    async def stats() -> dict[str, Any]:
        return {"unique": len(state.received), "duplicates": state.duplicates, "requests": state.requests}

    @app.get("/_received")
    async def received() -> dict[str, Any]:
        return {"items": state.received}

    @app.post("/_reset")
    async def reset() -> dict[str, str]:
        fresh = SinkState()
        for name in ("received", "duplicates", "requests", "faults", "echo"):
            setattr(state, name, getattr(fresh, name))
        return {"status": "reset"}

    return app
