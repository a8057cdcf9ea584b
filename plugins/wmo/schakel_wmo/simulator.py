"""A municipality simulator: receives the provider's iWmo messages, validates them against the
official XSDs, and de-duplicates by BerichtIdentificatie as a real municipality does — a second
message with an identification it already has gets retourcode 9056, whatever its transport key.

Faults (``POST /_control``): ``{"mode": "status", "status": 503, "count": 2}`` answers an error
without applying; ``{"mode": "late", "delay": 5, "count": 1}`` applies, then answers too late;
``{"mode": "reset", "count": 1}`` drops the connection without applying. For the chaos run,
``{"random": {"status_500": 0.1, "late": 0.05, "reset": 0.05}, "delay": 3}`` draws one of those
faults by chance for every message (``status_<n>`` answers n); ``{"random": {}}`` turns it off.
Without either, the municipality behaves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway.core.problems import Problem
from gateway.core.simulators import Faults
from schakel_wmo import iwmo


@dataclass
class MunicipalityState:
    received: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    faults: Faults = field(default_factory=Faults)


def create_app() -> FastAPI:
    app = FastAPI(title="Municipality (iWmo simulator)", docs_url=None, redoc_url=None)
    state = MunicipalityState()
    app.state.municipality = state

    @app.post("/berichten")
    async def receive(request: Request) -> Response:
        body = await request.body()
        mode = state.faults.draw()
        refused = state.faults.refusal(mode)
        if refused is not None:
            return refused
        try:
            bericht, root = iwmo.parse(body)
        except Problem as problem:
            return JSONResponse({"error": problem.slug}, status_code=400)
        if iwmo.validate(bericht, root):
            return JSONResponse({"error": "schema"}, status_code=422)
        header = iwmo.header(bericht, root)
        identity = f"{bericht}:{header.afzender}:{header.identificatie}"
        if identity in {r["identity"] for r in state.received}:
            state.duplicates += 1
            return JSONResponse({"retourcode": iwmo.NOT_UNIQUE}, status_code=409)
        state.received.append({"bericht": bericht, "identity": identity, "identificatie": header.identificatie,
                               "xml": body.decode()})
        if mode == "late":
            await asyncio.sleep(state.faults.delay)
        return JSONResponse({"retourcode": iwmo.ACCEPTED}, status_code=200)

    @app.post("/_control")
    async def control(request: Request) -> dict[str, Any]:
        data = await request.json()
        state.faults.set(data)
        return {"mode": state.faults.mode, "random": state.faults.random}

    @app.get("/_received")
    async def received() -> dict[str, Any]:
        return {"items": state.received, "duplicates": state.duplicates}

    return app
