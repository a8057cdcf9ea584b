"""The policy seam: the one place an exchange is authorised.

It is asked twice: when a message is submitted (before anything is queued) and again before
every delivery attempt, so that what changed while a message waited — a partner removed, a
route withdrawn, and (privacy core) a consent withdrawn or expired — stops it from leaving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from gateway.core.models import Exchange, Partner
    from gateway.core.plugins import Registry
    from gateway.core.routing import Route


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    basis: str | None = None
    consent_id: str | None = None
    missing: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Request:
    """What the policy sees: never the payload, only what decides whether it may leave."""

    stage: Literal["submit", "deliver"]
    route: "Route"
    partner: "Partner"
    subject: str | None
    claimed_basis: str | None = None


class Policy:
    """Allows only routes that are configured, to partners of the route's connector type."""

    def __init__(self, registry: "Registry") -> None:
        self.registry = registry

    def authorise(self, session: Session, request: Request) -> Decision:
        route = self.registry.routes.get(request.route.id)
        if route is None:
            return Decision(False, f"route {request.route.id} is no longer configured")
        if request.partner.connector_type != route.target:
            return Decision(False, f"partner is not a {route.target} partner")
        return Decision(True, f"route {route.id} is configured", basis=request.claimed_basis)

    def recheck(self, session: Session, exchange: "Exchange", partner: "Partner") -> Decision:
        route = self.registry.routes.get(exchange.route_id)
        if route is None:
            return Decision(False, f"route {exchange.route_id} is no longer configured")
        return self.authorise(session, Request("deliver", route, partner, exchange.subject, exchange.legal_basis))
