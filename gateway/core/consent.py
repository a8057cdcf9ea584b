"""The consent register, shaped like FHIR R4 Consent.

A consent names the client (pseudonym), the partner or the kind of partner, the purpose, the
data categories and a period. It is never changed, only withdrawn: a different consent is a new
record. Withdrawal stops every message that relies on it and is still waiting to leave.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.core import audit, legal
from gateway.core.exchange import transition
from gateway.core.models import Consent, Exchange, OutboxItem, utcnow
from gateway.core.problems import Problem
from gateway.core.sql import Bind, Read, Statement

if TYPE_CHECKING:
    from gateway.core.models import Partner


class ConsentIn(BaseModel):
    client_id: str = Field(min_length=1, max_length=64, description="BSN or ECD client number; stored only as a pseudonym")
    partner_id: str | None = Field(default=None, max_length=64)
    partner_kind: str | None = Field(default=None, max_length=64, description="A connector type, e.g. veiligthuis")
    purpose: str = Field(min_length=1, max_length=100)
    data_categories: list[str] = Field(default_factory=list, max_length=50,
                                       description="Limit the consent to these kinds of data (none: every kind its "
                                                   "purpose needs): " + ", ".join(legal.DATA_CATEGORIES))
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    evidence_reference: str | None = Field(default=None, max_length=500,
                                           description="Where the signed form or recorded conversation is kept")

    @field_validator("data_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = [category for category in value if category not in legal.DATA_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown data category {unknown[0]!r}; known: {', '.join(legal.DATA_CATEGORIES)}")
        return value

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone")
        return value


def record(session: Session, data: ConsentIn, subject: str, actor: audit.Actor) -> Consent:
    if (data.partner_id is None) == (data.partner_kind is None):
        raise Problem("validation-failed", "A consent names either one partner or one kind of partner.")
    valid_from = data.valid_from or utcnow()
    if data.valid_to is not None and data.valid_to <= valid_from:
        raise Problem("validation-failed", "valid_to must come after valid_from.")
    consent = Consent(
        id=str(uuid.uuid4()), client=subject, partner_id=data.partner_id, partner_kind=data.partner_kind,
        purpose=data.purpose, data_categories=sorted(set(data.data_categories)), valid_from=valid_from,
        valid_to=data.valid_to, status="active", recorded_by=actor.user_id, recorded_at=utcnow(),
        evidence_reference=data.evidence_reference,
    )
    session.add(consent)
    audit.record(session, "consent.recorded", actor=actor, action_code="C", purpose=data.purpose, client=subject,
                 partner_id=data.partner_id, consent_id=consent.id, legal_basis="toestemming",
                 detail=f"partner kind {data.partner_kind}" if data.partner_kind else None)
    return consent


def is_valid(consent: Any, at: datetime) -> bool:
    return (consent.status == "active" and consent.valid_from <= at
            and (consent.valid_to is None or at < consent.valid_to))


def why_invalid(consent: Consent, at: datetime) -> str:
    if consent.withdrawn_at is not None:
        return f"consent {consent.id} was withdrawn at {consent.withdrawn_at:%Y-%m-%d %H:%M} UTC"
    if consent.valid_to is not None and at >= consent.valid_to:
        return f"consent {consent.id} expired at {consent.valid_to:%Y-%m-%d %H:%M} UTC"
    if at < consent.valid_from:
        return f"consent {consent.id} is valid only from {consent.valid_from:%Y-%m-%d %H:%M} UTC"
    return f"consent {consent.id} is {consent.status}"


_TABLE = Consent.__table__
# Every active consent of the client for the purpose, newest first; partner and categories are
# matched here below (an IN over the partner's kinds would make the statement change per call).
_ACTIVE_FOR_PURPOSE = Statement(
    select(_TABLE).where(_TABLE.c.client == bindparam("subject"), _TABLE.c.status == "active",
                         _TABLE.c.purpose == bindparam("purpose"))
    .order_by(_TABLE.c.recorded_at.desc()))


def active_read(subject: str, purpose: str) -> Read:
    """The look-up :func:`find_active` makes, for :func:`gateway.core.sql.prefetch`."""
    return Read(_ACTIVE_FOR_PURPOSE, subject=subject, purpose=purpose)


def find_active(session: Bind, subject: str, partner: "Partner", partner_kinds: set[str], purpose: str,
                categories: tuple[str, ...], at: datetime | None = None) -> Any:
    """The client's newest active consent that covers this partner, purpose and data categories:
    its row (read on every submission, and only looked at), or None."""
    at = at or utcnow()
    for consent in active_read(subject, purpose).all(session):
        if names_partner(consent, partner, partner_kinds) and is_valid(consent, at) and legal.covers(
                consent.data_categories, categories):
            return consent
    return None


def names_partner(consent: Any, partner: "Partner", partner_kinds: set[str]) -> bool:
    """Whether the consent is for this partner, by its id or by one of its kinds."""
    return consent.partner_id == partner.id or consent.partner_kind in partner_kinds


def withdraw(session: Session, consent_id: str, reason: str, actor: audit.Actor) -> tuple[Consent, list[str], list[str]]:
    """Withdraw a consent and refuse every waiting message that relies on it.

    Returns the consent, the exchanges stopped, and those whose attempt was already in flight:
    an attempt on the wire cannot be recalled, but none starts after this commits, because each
    attempt re-reads the consent under a share lock that this transaction's update excludes.
    """
    # Lock order everywhere: outbox rows, then the consent, then exchanges — a claim locks its
    # outbox rows and then reads the consent under a share lock, so taking the consent first
    # here could deadlock with it (PostgreSQL would abort one of the two). A message queued
    # after these rows were locked finds the consent withdrawn when it is claimed.
    items = list(session.scalars(
        select(OutboxItem).join(Exchange, OutboxItem.exchange_id == Exchange.id)
        .where(Exchange.consent_id == consent_id).with_for_update(of=OutboxItem)))
    consent = session.get(Consent, consent_id, with_for_update=True)
    if consent is None:
        raise Problem("not-found", "No consent with that id.")
    if consent.status != "active":
        raise Problem("state-conflict", "The consent is not active.")
    now = utcnow()
    consent.status, consent.withdrawn_at, consent.withdrawn_by, consent.withdrawal_reason = "inactive", now, actor.user_id, reason
    audit.record(session, "consent.withdrawn", actor=actor, action_code="U", purpose=consent.purpose, client=consent.client,
                 partner_id=consent.partner_id, consent_id=consent.id, legal_basis="toestemming", detail=reason)
    stopped, in_flight = [], []
    for item in items:
        exchange = session.get(Exchange, item.exchange_id)
        if exchange is None:
            continue
        if exchange.state in ("queued", "failed", "parked"):
            transition(session, exchange, "refused", actor=actor, reason=why_invalid(consent, now))
            session.delete(item)
            stopped.append(exchange.id)
        elif exchange.state == "sending":
            # Already on the wire; its outcome is recorded, and no further attempt will start.
            in_flight.append(exchange.id)
    return consent, stopped, in_flight


def as_dict(consent: Consent) -> dict[str, Any]:
    return {
        "id": consent.id, "subject": consent.client, "partner_id": consent.partner_id, "partner_kind": consent.partner_kind,
        "purpose": consent.purpose, "data_categories": consent.data_categories, "valid_from": consent.valid_from,
        "valid_to": consent.valid_to, "status": consent.status, "recorded_by": consent.recorded_by,
        "recorded_at": consent.recorded_at, "evidence_reference": consent.evidence_reference,
        "withdrawn_at": consent.withdrawn_at, "withdrawn_by": consent.withdrawn_by,
        "withdrawal_reason": consent.withdrawal_reason,
    }


def as_fhir(consent: Consent) -> dict[str, Any]:
    """The consent as a FHIR R4 Consent resource (privacy-consent scope)."""
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    actor_reference = (f"Organization/{consent.partner_id}" if consent.partner_id
                       else f"Organization?type={consent.partner_kind}")
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {k: v for k, v in (("start", iso(consent.valid_from)), ("end", iso(consent.valid_to))) if v},
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                          "code": "IRCP"}]}, "reference": {"reference": actor_reference}}],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}]}],
        "purpose": [{"system": "urn:schakel:purpose", "code": consent.purpose}],
        "class": [{"system": "urn:schakel:data-category", "code": c} for c in consent.data_categories],
    }
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent.id,
        "status": consent.status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": "urn:schakel:pseudonym", "value": consent.client}},
        "dateTime": iso(consent.recorded_at),
        "performer": [{"display": consent.recorded_by}],
        "policyRule": {"coding": [{"system": "urn:schakel:legal-basis", "code": "toestemming"}]},
        "provision": provision,
    }
    if consent.evidence_reference:
        resource["sourceReference"] = {"display": consent.evidence_reference}
    return resource
