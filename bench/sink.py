"""The partner end of the bench: it counts what arrived and when, for every system alike.

Two ASGI apps, each run in its own ``uvicorn`` process:

``create_sink``   a webhook partner. It takes any POST, finds the bench's message id in the body
                  (a JSON ``reference`` or an iWmo ``Identificatie``), de-duplicates by
                  ``Idempotency-Key`` (or by that id when a relay sends no key, as relays don't),
                  and answers ``{"received": true, "id": ...}`` so a relay hands the id back.
``create_care4``  the Care4 simulator of the care4 plugin, unchanged, with the same recording
                  around it: the partner of Schakel's WMO301 route.

Both record, per request, the wall-clock time it reached the app and the time the app was done
(``time.time()``: one clock for every process on this machine), and serve them at ``/_records``.
The sink's own time — done minus arrived — is what "partner time excluded" subtracts.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from typing import Any

Record = tuple[str, str, str, str, float, float, int]  # method, path, id, key, arrived, done, status

_ID = re.compile(rb'"reference"\s*:\s*"([^"]+)"|Identificatie>([^<]+)</')


class Recorder:
    """Per-request timings, plus the routes every bench partner shares (``/_records``, ``/_reset``)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.seen: set[str] = set()
        self.duplicates = 0

    def reset(self) -> None:
        self.records.clear()
        self.seen.clear()
        self.duplicates = 0

    async def control(self, scope: dict[str, Any], send: Any) -> bool:
        """Answer the bench's own routes; False when the request is for the partner."""
        path = scope["path"]
        if path == "/_records":
            await _answer(send, 200, json.dumps({"records": self.records, "duplicates": self.duplicates}).encode())
        elif path == "/_stats":
            await _answer(send, 200, json.dumps({"requests": len(self.records), "unique": len(self.seen),
                                                 "duplicates": self.duplicates}).encode())
        elif path == "/_reset":
            self.reset()
            await _answer(send, 200, b'{"reset":true}')
        else:
            return False
        return True


async def _answer(send: Any, status: int, body: bytes, media_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def create_sink() -> Any:
    """A raw ASGI app, so that the partner costs the machine as little as possible."""
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        arrived = time.time()
        if await recorder.control(scope, send):
            return
        body = await _read(receive)
        found = _ID.search(body)
        message_id = (found.group(1) or found.group(2)).decode() if found else ""
        key = _header(scope, b"idempotency-key")
        effect = key or message_id
        if effect in recorder.seen:
            recorder.duplicates += 1
        else:
            recorder.seen.add(effect)
        answer = b'{"received":true,"id":"%s"}' % message_id.encode()
        recorder.records.append((scope["method"], scope["path"], message_id, key, arrived, time.time(), 200))
        await _answer(send, 200, answer)

    app.recorder = recorder  # type: ignore[attr-defined]
    return app


# Fictional clients the bench adds to the simulator's own (23 with a BSN): a municipality's WMO301s
# name many clients, and the gateway delivers one client's messages in order, so the few fixture
# clients alone would make the load a queue per client that no real traffic looks like.
BENCH_CLIENTS = int(os.environ.get("BENCH_CARE4_CLIENTS", "1000"))


def bench_clients(count: int = BENCH_CLIENTS) -> dict[str, dict[str, Any]]:
    """``count`` invented clients, each with a generated BSN that passes the elfproef."""
    from gateway.core.pseudonyms import elfproef
    from schakel_care4.fixtures import build

    taken = {client["bsn"] for client in build()["clients"].values()}
    rng = random.Random(8)
    clients: dict[str, dict[str, Any]] = {}
    while len(clients) < count:
        bsn = str(rng.randint(100_000_000, 699_999_999))
        if bsn in taken or not elfproef(bsn):
            continue
        taken.add(bsn)
        cid = f"C-B{len(clients) + 1:05d}"
        clients[cid] = {"id": cid, "bsn": bsn, "alias": False, "household_id": f"H-B{len(clients) + 1:05d}", "first_name": "Bench",
                        "last_name": f"Cliënt {len(clients) + 1} (fictief)", "gender": "X", "date_of_birth": "1990-01-01",
                        "address": {"street": "Fictieflaan", "house_number": str(len(clients) % 199 + 1),
                                                           "postcode": "1111 AA", "city": "Diemen", "gemeentecode": "0384"},
                        "phone": None, "email": None, "confidential": [],
                        "updated_at": "2026-11-20T09:00:00Z"}
    return clients


def create_care4() -> Any:
    """The care4 plugin's ECD simulator, with the bench's clients added and the recorder around
    it; a write counts as arrived when its request reaches the simulator."""
    from schakel_care4.simulator import create_app

    inner = create_app()
    inner.state.ecd.data["clients"].update(bench_clients())
    recorder = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        arrived = time.time()
        if await recorder.control(scope, send):
            return
        status = 0

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Stamped before the last byte goes out, like the sink's: the partner's own time.
                key = _header(scope, b"idempotency-key")
                recorder.records.append((scope["method"], scope["path"], "", key, arrived, time.time(), status))
                if key and 200 <= status < 300:
                    recorder.seen.add(key)
            await send(message)

        await inner(scope, receive, recording_send)

    app.recorder = recorder  # type: ignore[attr-defined]
    return app
