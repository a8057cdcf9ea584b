"""A simulator of Veilig Thuis regions: receives meldingen, validates them against the same XSD,
answers with a receipt number, and later sends receipt, decision and end-of-involvement feedback
back to the gateway (``POST /partners/veiligthuis/terugkoppeling``) with the region's partner token.

``POST /_control`` for tests and the demo::

    {"mode": "status", "status": 503, "count": 5}     fail the next 5 (no count: forever)
    {"mode": "late", "delay": 5}                       accept, answer late
    {"mode": "reject"}                                 answer 422 to every melding
    {"random": {"status_500": 0.1, "late": 0.05, "reset": 0.05}, "delay": 3}
                                                       faults by chance, per melding (the chaos run):
                                                       ``status_<n>`` answers n, not applied; ``late``
                                                       applies, then answers after ``delay`` s;
                                                       ``reset`` drops the connection, not applied
    {"callback_url": "http://127.0.0.1:8000", "tokens": {"utrecht": "sk_..."},
     "ack_delay": 0.1, "decision_delay": 1, "decision": "opgepakt", "end_delay": null}
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway.core.problems import Problem
from gateway.core.simulators import Faults
from gateway.core.xml import parse_xml
from schakel_care4.fixtures import REGIONS
from schakel_veiligthuis.melding import NAMESPACE, schema


@dataclass
class VtState:
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    requests: int = 0
    faults: Faults = field(default_factory=Faults)
    callback_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    ack_delay: float | None = 0.2
    decision_delay: float | None = None
    decision: str = "opgepakt"
    end_delay: float | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)


def create_app() -> FastAPI:
    app = FastAPI(title="Veilig Thuis regions (simulator)", docs_url=None, redoc_url=None)
    state = VtState()
    app.state.vt = state
    tasks: set[asyncio.Task[None]] = set()

    async def post_feedback(region: str, payload: dict[str, Any]) -> None:
        token = state.tokens.get(region)
        if not (state.callback_url and token):
            return
        key = f"vt-{region}-{payload['type']}-{payload['melding_kenmerk']}"
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            for attempt in range(20):  # the gateway may be briefly down: keep trying, same key
                try:
                    response = await client.post(f"{state.callback_url}/partners/veiligthuis/terugkoppeling", json=payload,
                                                 headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
                    state.sent.append({"region": region, "type": payload["type"], "status": response.status_code})
                    if response.status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5))

    async def feedback(region: str, kenmerk: str, number: str) -> None:
        base = {"melding_kenmerk": kenmerk, "vt_reference": number, "date": date.today().isoformat()}
        if state.ack_delay is not None:
            await asyncio.sleep(state.ack_delay)
            await post_feedback(region, {**base, "type": "ontvangstbevestiging"})
        if state.decision_delay is not None:
            await asyncio.sleep(state.decision_delay)
            await post_feedback(region, {**base, "type": "besluit", "decision": state.decision,
                                         "explanation": "Veiligheidsbeoordeling uitgevoerd (simulator)."})
        if state.end_delay is not None:
            await asyncio.sleep(state.end_delay)
            await post_feedback(region, {**base, "type": "einde_betrokkenheid"})

    @app.post("/{region}/meldingen")
    async def receive(region: str, request: Request) -> Response:
        state.requests += 1
        if region not in REGIONS:
            return JSONResponse({"error": "unknown region"}, status_code=404)
        body = await request.body()
        key = request.headers.get("Idempotency-Key")
        if not key:
            return JSONResponse({"error": "Idempotency-Key required"}, status_code=400)
        mode = state.faults.draw()
        refused = state.faults.refusal(mode)
        if refused is not None:
            return refused
        if mode == "reject":
            return JSONResponse({"error": "melding refused (simulated)"}, status_code=422)
        if key in state.keys:
            state.duplicates += 1
            first = state.keys[key]
            return JSONResponse({"ontvangstnummer": first["ontvangstnummer"], "duplicate": True}, status_code=201,
                                headers={"X-Receipt-Id": first["ontvangstnummer"]})
        try:
            root = parse_xml(body)
        except Problem as problem:
            return JSONResponse({"error": problem.slug}, status_code=400)
        xsd = schema()
        if not xsd.validate(root):
            return JSONResponse({"error": "schema", "details": [e.type_name for e in list(xsd.error_log)[:5]]}, status_code=422)
        kenmerk = root.findtext(f"{{{NAMESPACE}}}Kenmerk") or ""
        number = f"VT-{region[:3].upper()}-{len(state.received) + 1:05d}"
        record = {"region": region, "kenmerk": kenmerk, "ontvangstnummer": number, "xml": body.decode("utf-8"),
                  "authorization": request.headers.get("Authorization")}
        state.keys[key] = record
        state.received.append(record)
        task = asyncio.create_task(feedback(region, kenmerk, number))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if mode == "late":
            await asyncio.sleep(state.faults.delay)
        return JSONResponse({"ontvangstnummer": number}, status_code=201, headers={"X-Receipt-Id": number})

    @app.post("/_control")
    async def control(request: Request) -> dict[str, Any]:
        data = await request.json()
        if "mode" in data or "random" in data:  # the other keys leave the faults as they are
            state.faults.set(data)
        for name in ("callback_url", "tokens", "ack_delay", "decision_delay", "decision", "end_delay"):
            if name in data:
                setattr(state, name, data[name])
        return {"mode": state.faults.mode}

    @app.get("/_received")
    async def received() -> dict[str, Any]:
        return {"items": state.received, "duplicates": state.duplicates, "requests": state.requests, "sent": state.sent}

    return app
