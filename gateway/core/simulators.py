"""Partner simulators that plugins ship, so the gateway runs end to end on one machine."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.responses import JSONResponse, Response, StreamingResponse


@dataclass(frozen=True)
class DemoPartner:
    """A partner ``gateway demo`` registers, pointing at a path on the simulator server."""

    id: str
    connector_type: str
    name: str
    path: str
    identifiers: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    routing: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Simulator:
    """``app`` builds the ASGI app; it is mounted under ``/<name>`` on the simulator server.

    ``configure``, if given, is called by ``gateway demo`` once both servers run, as
    ``configure(simulator_url, gateway_url, partner_tokens)`` with a partner token per demo partner,
    so that a simulator can call the gateway back (receipts, feedback) as that partner.
    """

    name: str
    app: Callable[[], Any]
    description: str = ""
    demo_partners: tuple[DemoPartner, ...] = ()
    configure: Callable[[str, str, dict[str, str]], None] | None = None


@dataclass
class Faults:
    """The fault switch every simulator shares: ``mode`` holds for ``count`` more requests (or,
    with no count, until changed), then the simulator is healthy again. For the chaos run,
    ``random`` (``{"status_500": 0.1, "late": 0.05, "reset": 0.05}``) instead draws a fault by
    chance for every request, from a seeded generator so a run can be repeated."""

    mode: str = "ok"
    status: int = 503
    count: int | None = None
    delay: float = 1.0
    random: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7513))

    def next(self) -> str:
        if self.mode == "ok":
            return "ok"
        if self.count is not None:
            if self.count <= 0:
                self.mode, self.count = "ok", None
                return "ok"
            self.count -= 1
        return self.mode

    def draw(self) -> str:
        """The fault for this request: by chance when ``random`` is set, else the switch's mode.
        ``status`` or ``status_<n>`` answer an error without applying; ``reset`` drops the
        connection without applying; ``late`` applies, then answers after ``delay`` seconds."""
        if self.random:
            roll = self.rng.random()
            for name, chance in self.random.items():
                if roll < chance:
                    return name
                roll -= chance
            return "ok"
        return self.next()

    def status_of(self, fault: str) -> int:
        """The HTTP status a ``status`` / ``status_<n>`` fault answers with."""
        return int(fault.split("_", 1)[1]) if "_" in fault else self.status

    def refusal(self, fault: str) -> Response | None:
        """The answer for a fault that means the message is not taken at all (an error status, a
        dropped connection); ``None`` for the others, which the simulator handles after taking it."""
        if fault.startswith("status"):
            return JSONResponse({"error": "simulated"}, status_code=self.status_of(fault))
        if fault == "reset":
            return dropped_connection()
        return None

    def set(self, data: dict[str, Any]) -> None:
        self.mode = data.get("mode", "ok")
        self.status = int(data.get("status", 503))
        self.count = data.get("count")
        self.delay = float(data.get("delay", 1.0))
        self.random = dict(data.get("random") or {})


class _Reset(Exception):
    """Raised once the answer has started, so the server drops the connection mid-answer."""


def dropped_connection() -> StreamingResponse:
    """An answer that never comes: the connection is dropped after the request was read."""
    async def broken() -> Any:
        raise _Reset()
        yield b""  # pragma: no cover - makes this an async generator

    return StreamingResponse(broken(), media_type="application/json")
