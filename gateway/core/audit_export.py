"""Exporting the audit log: JSON lines, and FHIR R4 AuditEvent resources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gateway.core.models import AuditEntry

_OUTCOME = {0: "0", 4: "4", 8: "8", 12: "12"}


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq, "event_id": entry.event_id, "event_type": entry.event_type, "action_code": entry.action_code,
        "occurred_at": entry.occurred_at.isoformat(), "outcome": entry.outcome, "user_id": entry.user_id,
        "role": entry.role, "on_behalf_of": entry.on_behalf_of, "purpose_of_use": entry.purpose_of_use,
        "access_point": entry.access_point, "client": entry.client, "exchange_id": entry.exchange_id,
        "message_type": entry.message_type, "partner_message_id": entry.partner_message_id,
        "partner_id": entry.partner_id, "legal_basis": entry.legal_basis, "consent_id": entry.consent_id,
        "fields": entry.fields, "payload_digest": entry.payload_digest, "detail": entry.detail,
        "prev_hash": entry.prev_hash, "hash": entry.hash,
    }


def fhir_audit_event(entry: AuditEntry) -> dict[str, Any]:
    """One entry as a FHIR R4 AuditEvent (NEN 7513 fields mapped to agent, entity and source)."""
    agent: dict[str, Any] = {
        "who": {"identifier": {"value": entry.user_id}},
        "requestor": True,
        "role": [{"coding": [{"system": "urn:schakel:role", "code": entry.role}]}] if entry.role else [],
    }
    if entry.purpose_of_use:
        agent["purposeOfUse"] = [{"coding": [{"system": "urn:schakel:purpose", "code": entry.purpose_of_use}]}]
    policies = [p for p in (entry.legal_basis and f"urn:schakel:legal-basis:{entry.legal_basis}",
                            entry.consent_id and f"urn:schakel:consent:{entry.consent_id}") if p]
    if policies:
        agent["policy"] = policies
    if entry.access_point:
        agent["network"] = {"address": entry.access_point, "type": "2"}
    agents = [agent]
    if entry.on_behalf_of:
        agents.append({"who": {"identifier": {"value": entry.on_behalf_of}}, "requestor": False})
    entities: list[dict[str, Any]] = []
    if entry.client:
        entities.append({"what": {"identifier": {"system": "urn:schakel:pseudonym", "value": entry.client}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    if entry.exchange_id:
        detail = [{"type": "fields", "valueString": ",".join(entry.fields or [])}]
        if entry.payload_digest:
            detail.append({"type": "payload-digest", "valueString": entry.payload_digest})
        if entry.partner_message_id:
            detail.append({"type": "partner-message-id", "valueString": entry.partner_message_id})
        entities.append({"what": {"identifier": {"system": "urn:schakel:exchange", "value": entry.exchange_id}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                         "name": entry.message_type, "detail": detail})
    if entry.partner_id:
        entities.append({"what": {"identifier": {"system": "urn:schakel:partner", "value": entry.partner_id}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "3"}})
    return {
        "resourceType": "AuditEvent",
        "id": entry.event_id,
        "type": {"system": "urn:schakel:event-type", "code": entry.event_type},
        "action": entry.action_code,
        "recorded": entry.occurred_at.isoformat(),
        "outcome": _OUTCOME.get(entry.outcome, "8"),
        "outcomeDesc": entry.detail,
        "agent": agents,
        "source": {"observer": {"display": "Schakel gateway"}, "type": [{"code": "4"}]},
        "entity": entities,
        "extension": [{"url": "urn:schakel:audit-chain", "valueString": f"{entry.seq}:{entry.prev_hash}:{entry.hash}"}],
    }


def iter_entries(session: Session, query: Select[tuple[AuditEntry]] | None = None, batch: int = 2000) -> Iterator[AuditEntry]:
    query = query if query is not None else select(AuditEntry)
    after = 0
    while True:
        rows = list(session.scalars(query.where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)))
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def lines(session: Session, fmt: str, query: Select[tuple[AuditEntry]] | None = None) -> Iterator[str]:
    render = fhir_audit_event if fmt == "fhir" else entry_dict
    for entry in iter_entries(session, query):
        yield json.dumps(render(entry), ensure_ascii=False, sort_keys=True) + "\n"
