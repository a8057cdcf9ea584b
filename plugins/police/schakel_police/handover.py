"""A warm handover: built from the dossier, announced, fetched by the partner, its receipt kept.

The worker names the dossier and the receiving municipality or organisation; the handover is
built from the ECD — the goals reached, the ongoing risks, the safety agreements, the contact
person — and leaves only with the client's consent and only as ``mappings/police_overdracht.yaml``
names it. What the ECD marks confidential about the client (a secret shelter address, a new phone
number) is withheld.

It leaves in two steps, as a municipality's ZGW systems expect: a Notificaties API notification
is pushed to the partner's callback, and the partner fetches the handover with its own token.
The fetch is the disclosure: the basis is checked again at that moment (a consent withdrawn in
between stops it) and the fetch is audited with the names of the fields and a digest of what was
handed over. The partner's receipt is kept with the exchange and audited as its acknowledgement.

The core records exchanges, not reads of them; the two small store writes here — an audit entry
per fetch, and the acknowledgement — use only its public functions (``audit.record``,
``exchange.transition``, ``Policy.recheck``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gateway.core import audit
from gateway.core.auth import Principal
from gateway.core.crypto import digest
from gateway.core.exchange import transition
from gateway.core.models import AuditEntry, Exchange, Partner, utcnow
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_police.clock import today
from schakel_police.messages import Ontvangstbevestiging
from schakel_police.plugin import HANDOVER_ROUTE

# Once the notification may have arrived the partner may fetch; a refused or dead handover is gone.
FETCHABLE = ("sending", "failed", "delivered", "acknowledged")
FETCHED = "exchange.fetched"
# The ECD's name of each client field the handover carries: whichever of them the ECD marks
# confidential is withheld.
_CLIENT_FIELDS = {"address": "adres", "phone": "telefoon", "bsn": "bsn", "date_of_birth": "geboortedatum",
                  "first_name": "voornaam", "last_name": "achternaam"}


def build(bundle: dict[str, Any], toelichting: str | None, collection_url: str) -> tuple[dict[str, Any], list[str]]:
    """The handover as it could leave, and the paths of it the ECD marks confidential."""
    client, dossier, household = bundle["client"], bundle["dossier"], bundle["household"]
    worker = dossier["worker"]
    address = client.get("address")
    data = {
        "notificatie": {"collectie": collection_url, "aanmaakdatum": utcnow().isoformat(timespec="seconds")},
        "overdracht": {
            "datum": today().isoformat(),
            "client": {
                "voornaam": client["first_name"], "achternaam": client["last_name"],
                "geboortedatum": client["date_of_birth"], "bsn": client.get("bsn"),
                "adres": {"straat": address["street"], "huisnummer": address["house_number"],
                          "postcode": address["postcode"], "plaats": address["city"]} if address else None,
                "telefoon": client.get("phone"),
            },
            "doelen_bereikt": [{"domein": g["domain"], "omschrijving": g["description"], "bereikt_op": g.get("reached_on")}
                               for g in dossier.get("goals", []) if g["reached"]],
            "lopende_risicos": [{"omschrijving": r["description"], "niveau": r["level"]} for r in dossier.get("risks", [])],
            "veiligheidsafspraken": [{"afspraak": a["description"], "sinds": a["since"]}
                                     for a in dossier.get("safety_agreements", [])],
            "contactpersoon": {"naam": worker["name"], "organisatie": worker["organisation"], "rol": worker["role"],
                               "telefoon": worker["phone"], "email": worker["email"]},
            "toelichting": toelichting,
        },
    }
    secret = set(client.get("confidential") or [])
    if "address" in (household.get("confidential") or []):
        secret.add("address")  # she lives where her household does: a secret household address is hers too
    confidential = sorted(f"overdracht.client.{_CLIENT_FIELDS[name]}" for name in secret if name in _CLIENT_FIELDS)
    return data, confidential


def _addressed_to(session: Any, exchange_id: str, principal: Principal, *, lock: bool = False) -> Exchange:
    exchange = session.get(Exchange, exchange_id, with_for_update=lock or None)
    # Another partner's handover, or none: the same answer, so ids reveal nothing.
    if exchange is None or exchange.route_id != HANDOVER_ROUTE or exchange.partner_id != principal.partner_id:
        raise Problem("not-found", "No handover with that id is addressed to you.")
    return exchange


def fetch(gw: Gateway, principal: Principal, exchange_id: str) -> bytes:
    """The handover for the partner it is addressed to, if the basis still holds; audited either way."""
    with gw.store.transaction() as session:
        exchange = _addressed_to(session, exchange_id, principal)
        if exchange.state not in FETCHABLE:
            raise Problem("state-conflict", "This handover is not available (it was stopped before it left).")
        if exchange.payload_encrypted is None:
            raise Problem("state-conflict", "This handover is no longer kept (its retention period ended).")
        partner = session.get(Partner, exchange.partner_id)
        assert partner is not None
        decision = gw.policy.recheck(session, exchange, partner)
        document = json.loads(gw.box.decrypt(exchange.payload_encrypted))["overdracht"]
        body = json.dumps(document, ensure_ascii=False).encode()
        fields = [name for name in exchange.fields_out if name.startswith("overdracht.")]
        audit.record(session, FETCHED if decision.allowed else "exchange.fetch_refused", actor=principal.actor(),
                     action_code="R", outcome=audit.SUCCESS if decision.allowed else audit.SERIOUS_FAILURE,
                     purpose=exchange.purpose, client=exchange.subject, exchange_id=exchange.id,
                     message_type=exchange.message_type, partner_message_id=exchange.partner_message_id,
                     partner_id=exchange.partner_id, legal_basis=exchange.legal_basis,
                     consent_id=decision.consent_id or exchange.consent_id,
                     fields=fields if decision.allowed else None, payload_digest=digest(body) if decision.allowed else None,
                     detail="fetched by the partner with its own token" if decision.allowed else decision.reason)
    if not decision.allowed:  # raised after the commit, so the refused fetch stays in the audit log
        raise Problem("refused", decision.reason, extensions={"exchange_id": exchange_id})
    return body


def acknowledge(gw: Gateway, principal: Principal, exchange_id: str, receipt: Ontvangstbevestiging) -> dict[str, Any]:
    """Keep the partner's receipt as evidence; the same receipt twice is one."""
    confirmed = receipt.model_dump(mode="json")
    with gw.store.transaction() as session:
        exchange = _addressed_to(session, exchange_id, principal, lock=True)
        if exchange.state == "acknowledged":
            if (exchange.receipt or {}).get("ontvangstbevestiging") != confirmed:
                raise Problem("state-conflict", "This handover's receipt was already confirmed differently.")
        else:
            fetched = session.scalar(select(AuditEntry.seq).where(AuditEntry.exchange_id == exchange.id,
                                                                  AuditEntry.event_type == FETCHED).limit(1))
            if fetched is None:
                raise Problem("state-conflict", "Fetch the handover before confirming its receipt.")
            if exchange.state != "delivered":
                raise Problem("state-conflict", "The notification is not recorded as delivered yet; try again shortly.")
            exchange.receipt = {**(exchange.receipt or {}), "ontvangstbevestiging": confirmed}
            case = f", its case {receipt.zaaknummer}" if receipt.zaaknummer else ""
            transition(session, exchange, "acknowledged", actor=principal.actor(), reason=f"receipt confirmed by the partner{case}")
    return {"exchange_id": exchange_id, "state": "acknowledged", "ontvangstbevestiging": confirmed}


def listing(gw: Gateway) -> list[dict[str, Any]]:
    """Every handover: to whom, whether announced, fetched and confirmed."""
    with gw.store.reading() as session:
        rows = list(session.scalars(select(Exchange).where(Exchange.route_id == HANDOVER_ROUTE)
                                    .order_by(Exchange.created_at.desc())))
        fetches: dict[str, datetime] = {}
        for entry in session.scalars(select(AuditEntry).where(
                AuditEntry.event_type == FETCHED, AuditEntry.exchange_id.in_([r.id for r in rows])).order_by(AuditEntry.seq)):
            fetches.setdefault(entry.exchange_id or "", entry.occurred_at)
        result = []
        for row in rows:
            context = gw.box.decrypt_json(row.context_encrypted) if row.context_encrypted else {}
            result.append({
                "exchange_id": row.id, "dossier_id": context.get("dossier_id"), "partner_id": row.partner_id,
                "state": row.state, "legal_basis": row.legal_basis, "consent_id": row.consent_id,
                "created_at": row.created_at.isoformat(),
                "announced_at": row.delivered_at.isoformat() if row.delivered_at else None,
                "fetched_at": fetches[row.id].isoformat() if row.id in fetches else None,
                "receipt": (row.receipt or {}).get("ontvangstbevestiging"),
                "reason": row.state_reason if row.state == "refused" else None,
            })
    return result
