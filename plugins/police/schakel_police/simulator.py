"""A simulator of the police and municipality side, with fictional data only.

Each police unit or municipality lives under its own path (``/<partner id>``):

- ``POST /<partner>/notificaties`` takes a VNG Notificaties API notification (the seven keys of
  its webhook body, checked), answers 204, then — as Open Zaak subscribers do — fetches the
  object at ``resourceUrl`` from the gateway with the partner's own token, and confirms receipt
  (``POST <resourceUrl>/ontvangst``), retrying while the gateway is busy or down;
- ``POST /<partner>/informatieverzoeken/antwoorden`` takes the answer to an information request;
- ``POST /<partner>/_send/<huisverboden|zorgmeldingen|informatieverzoeken>`` sends a message to the
  gateway as that partner (for the demo: the police side typing nothing).

Both receiving endpoints de-duplicate by ``Idempotency-Key``. ``POST /_control`` for tests and
the demo::

    {"gateway_url": "http://127.0.0.1:8000", "tokens": {"gemeente-amsterdam": "sk_..."}}
    {"mode": "status", "status": 503, "count": 2}          fail the next 2 deliveries to us
    {"mode": "late", "delay": 5, "count": 1}               take the next one, answer after 5 s
    {"mode": "reset", "count": 1}                          drop the connection, not taking it
    {"random": {"status_500": 0.1, "late": 0.05, "reset": 0.05}, "delay": 3}
                                                          those faults by chance, for every delivery
                                                          to us (the chaos run); {"random": {}}: off
    {"fetch": false} / {"acknowledge": false}             receive notifications but do not follow up

Without a fault set, every partner here behaves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from gateway.core.simulators import Faults

SENDABLE = ("huisverboden", "zorgmeldingen", "informatieverzoeken")


class Notificatie(BaseModel):
    """The Notificaties API webhook body, as a subscriber receives it."""

    model_config = ConfigDict(extra="forbid")

    kanaal: str
    hoofdObject: str
    resource: str
    resourceUrl: str
    actie: str
    aanmaakdatum: AwareDatetime
    kenmerken: dict[str, str]


@dataclass
class ContactsState:
    notifications: list[dict[str, Any]] = field(default_factory=list)
    fetched: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    duplicates: int = 0
    faults: Faults = field(default_factory=Faults)
    gateway_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    fetch: bool = True
    acknowledge: bool = True


def create_app() -> FastAPI:
    app = FastAPI(title="Police units and municipalities (simulator)", docs_url=None, redoc_url=None)
    state = ContactsState()
    app.state.contacts = state
    tasks: set[asyncio.Task[None]] = set()

    def later(work: Any) -> None:
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def follow(partner: str, notification: Notificatie) -> None:
        """Fetch the announced handover with our own token, then confirm its receipt."""
        token = state.tokens.get(partner)
        if not (state.fetch and token):
            return
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            got = await client.get(notification.resourceUrl, headers=headers)
            state.fetched.append({"partner": partner, "url": notification.resourceUrl, "status": got.status_code,
                                  "body": got.json() if got.headers.get("content-type", "").endswith("json") else None})
            if got.status_code != 200 or not state.acknowledge:
                return
            receipt = {"ontvangen_op": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "ontvangen_door": "Team Toegang Wijkzorg (simulator)",
                       "zaaknummer": f"ZAAK-{len(state.fetched):05d}"}
            for attempt in range(25):  # the notification may not be recorded as delivered yet: keep trying
                try:
                    answer = await client.post(notification.resourceUrl + "/ontvangst", json=receipt, headers=headers)
                    state.receipts.append({"partner": partner, "url": notification.resourceUrl,
                                           "status": answer.status_code})
                    if answer.status_code < 500 and answer.status_code != 409:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(min(0.05 * 2 ** attempt, 2))

    def fresh(request: Request) -> tuple[bool, str] | Response:
        """Whether this delivery is new (by its key), and the fault to answer it with after taking
        it; or the answer itself where the fault means it is not taken at all."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return JSONResponse({"error": "Idempotency-Key required"}, status_code=400)
        fault = state.faults.draw()
        refused = state.faults.refusal(fault)
        if refused is not None:
            return refused
        if key in state.keys:
            state.duplicates += 1
            return False, fault
        state.keys.add(key)
        return True, fault

    async def answer_late(fault: str) -> None:
        if fault == "late":  # taken, but the answer comes after the caller stopped waiting
            await asyncio.sleep(state.faults.delay)

    @app.post("/{partner}/notificaties")
    async def notify(partner: str, request: Request) -> Response:
        try:
            notification = Notificatie.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": "not a Notificaties API body",
                                 "fields": [".".join(map(str, e["loc"])) for e in exc.errors()]}, status_code=400)
        checked = fresh(request)
        if isinstance(checked, Response):
            return checked
        first, fault = checked
        if first:
            state.notifications.append({"partner": partner, "notification": notification.model_dump(mode="json"),
                                        "authorization": request.headers.get("Authorization")})
            later(follow(partner, notification))
        await answer_late(fault)
        return Response(status_code=204)

    @app.post("/{partner}/informatieverzoeken/antwoorden")
    async def answer(partner: str, request: Request) -> Response:
        # The whole body first: a caller that hangs up mid-request has delivered nothing, so its key
        # must not be taken (its retry would then count as a repeat of an answer never kept).
        body = await request.json()
        checked = fresh(request)
        if isinstance(checked, Response):
            return checked
        first, fault = checked
        if first:
            state.answers.append({"partner": partner, "answer": body})
        await answer_late(fault)
        return JSONResponse({"ontvangen": True}, status_code=200)

    @app.post("/{partner}/_send/{what}")
    async def send(partner: str, what: str, request: Request) -> JSONResponse:
        token = state.tokens.get(partner)
        if what not in SENDABLE or not (state.gateway_url and token):
            return JSONResponse({"error": "unknown message kind, or no gateway or token configured"}, status_code=400)
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            sent = await client.post(f"{state.gateway_url}/partners/police/{what}", content=await request.body(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        return JSONResponse({"status": sent.status_code, "body": sent.json()}, status_code=200)

    @app.post("/_control")
    async def control(request: Request) -> dict[str, Any]:
        data = await request.json()
        if "mode" in data or "random" in data:  # the other keys leave the faults as they are
            state.faults.set(data)
        for name in ("gateway_url", "tokens", "fetch", "acknowledge"):
            if name in data:
                setattr(state, name, data[name])
        return {"mode": state.faults.mode}

    @app.get("/_received")
    async def received() -> dict[str, Any]:
        return {"notifications": state.notifications, "fetched": state.fetched, "receipts": state.receipts,
                "answers": state.answers, "duplicates": state.duplicates}

    return app
