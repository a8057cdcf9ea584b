"""The policy seam: the one place an exchange is authorised.

It is asked twice: when a message is submitted (before anything is queued) and again before
every delivery attempt, so that what changed while a message waited — a consent withdrawn or
expired, a route withdrawn — stops it from leaving.

A route lists the legal bases it accepts. The submitter may name one (``Schakel-Legal-Basis``);
otherwise they are tried in the route's order: ``toestemming`` holds with an active consent of
the client for this partner (or kind of partner), purpose and data categories; ``wettelijke_plicht``
holds by the route; the other named grounds hold only with valid recorded evidence. Plugins may
add restrictions through their own checks; nothing here can be loosened by a plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.core import consent as consents
from gateway.core import legal
from gateway.core.models import Consent, utcnow
from gateway.core.sql import Bind, Read, Statement
from gateway.core.store import defer_checks, queue_checked

if TYPE_CHECKING:
    from gateway.core.models import Exchange, Partner
    from gateway.core.plugins import Registry
    from gateway.core.routing import Route
    from gateway.core.runtime import Gateway


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    basis: str | None = None
    consent_id: str | None = None
    missing: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """What the policy sees: never the payload, only what decides whether it may leave."""

    stage: Literal["submit", "deliver"]
    route: "Route"
    partner: "Partner"
    subject: str | None
    claimed_basis: str | None = None
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class BasisCheck:
    """What a plugin's ``basis_still_holds`` sees: the recorded evidence, never the payload."""

    route: "Route"
    basis: str
    evidence: dict[str, Any]
    subject: str | None
    session: Session
    gateway: "Gateway"


log = structlog.get_logger("gateway.policy")

_CONSENTS = Consent.__table__
# A share lock: a withdrawal committing now waits for this attempt's decision, or wins.
_CONSENT_SHARED = Statement(select(_CONSENTS).where(_CONSENTS.c.id == bindparam("id")).with_for_update(read=True))


def _still_for(consent: Any, route: "Route", partner: "Partner", partner_kinds: set[str]) -> str | None:
    """Why the consent a message relied on no longer covers its route as configured now (its
    purpose or kinds of data changed since the message was accepted), or ``None``."""
    if consent.purpose != route.purpose:
        return f"the consent is for {consent.purpose}; route {route.id} now serves {route.purpose}"
    if not consents.names_partner(consent, partner, partner_kinds):
        return "the consent does not name this partner"
    if not legal.covers(consent.data_categories, route.data_categories):
        return f"the consent does not cover the kinds of data route {route.id} now carries"
    return None


class Policy:
    def __init__(self, registry: "Registry", gateway: "Gateway | None" = None) -> None:
        self.registry = registry
        self.gateway = gateway

    def _partner_kinds(self, partner: "Partner") -> set[str]:
        kinds = {partner.connector_type}
        connector = self.registry.connectors.get(partner.connector_type)
        if connector is not None:
            kinds.add(connector.manifest.partner_kind)
        return kinds

    def reads(self, route_id: str, subject: str | None, claimed_basis: str | None) -> list[Read]:
        """The look-ups :meth:`authorise` may make for a request on this route about this subject,
        whichever partner it is for: for :func:`gateway.core.sql.prefetch`."""
        route = self.registry.routes.get(route_id)
        if route is None or subject is None:
            return []
        names = [claimed_basis] if claimed_basis else list(route.legal_bases)
        if any(name in legal.BASES and legal.BASES[name].consent for name in names):
            return [consents.active_read(subject, route.purpose)]
        return []

    def authorise(self, session: Bind, request: Request) -> Decision:
        route = self.registry.routes.get(request.route.id)
        if route is None:
            return Decision(False, f"route {request.route.id} is no longer configured")
        if request.partner.connector_type != route.target:
            return Decision(False, f"partner is not a {route.target} partner")
        if not route.legal_bases:
            return Decision(False, f"route {route.id} declares no legal basis, so nothing may leave on it")
        claimed = request.claimed_basis
        if claimed is not None and claimed not in route.legal_bases:
            return Decision(False, f"route {route.id} does not accept the basis {claimed}; it accepts "
                                   f"{', '.join(route.legal_bases)}", missing=route.legal_bases)
        reasons: dict[str, str] = {}
        for name in ([claimed] if claimed else list(route.legal_bases)):
            basis = legal.BASES[name]
            if basis.consent:
                if request.subject is None:
                    reasons[name] = "no client is identified, so no consent can be found"
                    continue
                found = consents.find_active(session, request.subject, request.partner,
                                             self._partner_kinds(request.partner), route.purpose, route.data_categories)
                if found is not None:
                    return Decision(True, f"consent {found.id}", basis=name, consent_id=found.id)
                reasons[name] = (f"no active consent of the client for partner {request.partner.id} and purpose "
                                 f"{route.purpose}")
                continue
            if not basis.evidence:
                return Decision(True, f"{basis.title} ({basis.law})", basis=name)
            problem = basis.check_evidence(request.evidence.get(name), utcnow(), self._valid_hours(basis))
            if problem is None:
                return Decision(True, f"{basis.title} ({basis.law}), evidence recorded", basis=name)
            reasons[name] = problem
        missing = tuple(reasons)
        return Decision(False, "no basis allows this exchange: " + "; ".join(reasons.values()), missing=missing,
                        reasons=reasons)

    def recheck(self, session: Session, exchange: "Exchange", partner: "Partner") -> Decision:
        """The basis again, before an attempt: the route still takes it, and a consent it rests on
        is still valid — read under a share lock, so a withdrawal committing meanwhile either
        waits for this transaction or is seen by it."""
        route = self.registry.routes.get(exchange.route_id)
        if route is None:
            return Decision(False, f"route {exchange.route_id} is no longer configured")
        if exchange.legal_basis not in route.legal_bases:
            return Decision(False, f"route {route.id} no longer accepts the basis {exchange.legal_basis}")
        if exchange.legal_basis == "toestemming":
            if exchange.consent_id and defer_checks(session):
                # In a transaction several units share on PostgreSQL, the share-locked read goes
                # with the batch's other checked statements as one pipeline just before the
                # commit, which happens only if the consent is still valid then; otherwise the
                # batch runs again unit by unit, and each unit reads it here below.
                kinds = self._partner_kinds(partner)
                queue_checked(session, _CONSENT_SHARED, {"id": exchange.consent_id},
                              accept=lambda consent: consent is not None and consents.is_valid(consent, utcnow())
                              and _still_for(consent, route, partner, kinds) is None)
                return Decision(True, f"consent {exchange.consent_id}", basis="toestemming",
                                consent_id=exchange.consent_id)
            consent = _CONSENT_SHARED.first(session, id=exchange.consent_id) if exchange.consent_id else None
            now = utcnow()
            if consent is None:
                return Decision(False, "the consent this message relied on no longer exists")
            if not consents.is_valid(consent, now):
                return Decision(False, consents.why_invalid(consent, now))
            why = _still_for(consent, route, partner, self._partner_kinds(partner))
            if why is not None:
                return Decision(False, why)
            return Decision(True, f"consent {consent.id}", basis="toestemming", consent_id=consent.id)
        why = self._evidence_lapsed(session, route, exchange)
        if why is not None:
            return Decision(False, f"the basis {exchange.legal_basis} no longer holds: {why}")
        return Decision(True, f"basis {exchange.legal_basis} recorded at submission", basis=exchange.legal_basis)

    def _valid_hours(self, basis: legal.LegalBasis) -> float | None:
        if basis.valid_for_setting is None or self.gateway is None:
            return None
        return float(getattr(self.gateway.settings, basis.valid_for_setting))

    def _evidence_lapsed(self, session: Session, route: "Route", exchange: "Exchange") -> str | None:
        """Why a named ground's recorded evidence no longer holds, or ``None``: by the core where
        the ground lapses with time (a vitaal_belang decision older than the setting allows), then
        by the plugins that can tell (a huisverbod withdrawn or ended since the message was accepted)."""
        basis = legal.BASES.get(exchange.legal_basis or "")
        gateway = self.gateway
        if basis is None or not basis.evidence or gateway is None:
            return None
        hook = gateway.pm.hook.basis_still_holds
        lapses, asked = "decided_at" in basis.evidence, bool(hook.get_hookimpls())
        if not lapses and not asked:
            return None
        encrypted = exchange.basis_evidence_encrypted
        evidence = gateway.box.decrypt_json(encrypted) if encrypted else {}
        if lapses:
            # Evidence missing here was erased (retention) or never stored: nothing leaves on it.
            why = basis.lapsed(evidence, utcnow(), self._valid_hours(basis))
            if why is not None:
                return why
        if not asked:
            return None
        try:
            reasons = hook(check=BasisCheck(route=route, basis=basis.name, evidence=evidence, subject=exchange.subject,
                                            session=session, gateway=gateway))
        except Exception as exc:  # a plugin's fault: nothing leaves on a basis nobody could confirm
            log.error("basis_check_failed", route=route.id, basis=basis.name, error=type(exc).__name__)
            return "a plugin's check of the recorded evidence failed, so it could not be confirmed"
        return "; ".join(reason for reason in reasons if reason) or None
