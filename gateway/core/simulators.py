"""Partner simulators that plugins ship, so the gateway runs end to end on one machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


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
    with no count, until changed), then the simulator is healthy again."""

    mode: str = "ok"
    status: int = 503
    count: int | None = None
    delay: float = 1.0

    def next(self) -> str:
        if self.mode == "ok":
            return "ok"
        if self.count is not None:
            if self.count <= 0:
                self.mode, self.count = "ok", None
                return "ok"
            self.count -= 1
        return self.mode

    def set(self, data: dict[str, Any]) -> None:
        self.mode = data.get("mode", "ok")
        self.status = int(data.get("status", 503))
        self.count = data.get("count")
        self.delay = float(data.get("delay", 1.0))
