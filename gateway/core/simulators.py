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
