"""Reporting to Veilig Thuis from a dossier: draft, send, follow up.

The functions behind both the worker API (``api.py``) and the console wizard (``console.py``), so
the two can never drift apart: the draft is a pure function of the dossier, sending re-reads the
dossier and hands the melding to the core pipeline, which checks the basis, minimises, persists
and audits it.
"""

from __future__ import annotations

import functools
import json
from datetime import date
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.auth import Principal
from gateway.core.models import Exchange
from gateway.core.pipeline import Answer
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_care4.client import Care4Unavailable
from schakel_care4.ecd import ecd_client
from schakel_veiligthuis import feedback as fb
from schakel_veiligthuis import melding
from schakel_veiligthuis.plugin import FEEDBACK_ROUTE, MELDING_ROUTE

CANNOT_SEND_REASON = ("vertrouwelijk in het dossier, maar Veilig Thuis vereist het: deze melding kan niet digitaal; "
                      "meld telefonisch")
DECISION_WORKING_DAYS = 5
DOSSIER_READ = "dossier.read"
WITHHELD_REASON = "vertrouwelijk in het dossier; deze melding neemt het niet mee"


async def read_dossier(gw: Gateway, dossier_id: str) -> tuple[dict[str, Any], dict[str, Any], list[str], str]:
    """The dossier bundle, the draft melding, its confidential paths and the gemeentecode."""
    try:
        bundle = await ecd_client(gw).dossier_bundle(dossier_id)
    except Care4Unavailable:
        raise Problem("unavailable", "The ECD does not answer; try again shortly.") from None
    draft, confidential, gemeentecode = melding.build_draft(bundle)
    return bundle, draft, confidential, gemeentecode


def subject_of(bundle: dict[str, Any]) -> str:
    client = bundle["client"]
    return client["bsn"] or f"care4:{client['id']}"


async def draft(gw: Gateway, principal: Principal, dossier_id: str, edits: melding.Edits | None = None,
                answers: melding.Answers | None = None) -> dict[str, Any]:
    """The melding as it would leave: fields, what is withheld and why, the region, the basis.

    With ``edits`` and ``answers`` it previews the completed melding exactly as sending would
    build it, before anything is sent. A person reads the client's data here, so each draft is
    in the audit log (``dossier.read``), whether or not the melding is sent.
    """
    bundle, built, confidential, gemeentecode = await read_dossier(gw, dossier_id)
    if edits is not None:
        built = melding.apply_edits(built, edits)
    if answers is not None:
        built = melding.complete(built, answers)
    subject = gw.pseudonymise(subject_of(bundle))

    def preview() -> dict[str, Any]:
        from gateway.core.consent import find_active

        with gw.store.reading() as session:
            region = partner_registry.resolve(session, "veiligthuis", "gemeentecode", gemeentecode)
            route = gw.registry.routes.get(MELDING_ROUTE.id, MELDING_ROUTE)  # as configured (a routes file may replace it)
            consent = (find_active(session, subject, region, {"veiligthuis", "veilig_thuis"}, route.purpose,
                                   route.data_categories)
                       if region else None)
        suggested = "toestemming" if consent else "meldrecht"
        basis = answers.legal_basis if answers is not None else suggested
        result = gw.mappings[route.mapping or ""].apply(built, confidential=frozenset(confidential), basis=basis)
        with gw.store.transaction() as session:
            audit.record(session, DOSSIER_READ, actor=principal.actor(), action_code="R", purpose=route.purpose,
                         client=subject, message_type=MELDING_ROUTE.message_type, fields=sorted(result.names),
                         detail="a Veilig Thuis melding drafted from the client's dossier")
        return {
            "dossier_id": dossier_id,
            "region": {"partner_id": region.id, "name": region.name} if region else None,
            "melding": result.fields,
            "leaves": result.names,
            "withheld": [{"field": path, "reason": WITHHELD_REASON} for path, _ in result.withheld],
            "cannot_send": [{"field": path, "reason": CANNOT_SEND_REASON} for path in melding.unsendable(confidential)],
            "to_answer": melding.still_to_answer(),
            "consent": {"present": consent is not None, "consent_id": consent.id if consent else None},
            "suggested_basis": suggested,
        }

    return await run_in_threadpool(preview)


async def send(gw: Gateway, principal: Principal, dossier_id: str, answers: melding.Answers, edits: melding.Edits,
               idempotency_key: str | None, request_body: bytes) -> Answer:
    """Re-read the dossier, complete it with the worker's answers and submit it to the pipeline.

    ``request_body`` is what the worker sent (her answers and edits): the idempotency key holds
    her to it, so a double click sends one melding and a changed resend is refused.
    """
    bundle, built, confidential, gemeentecode = await read_dossier(gw, dossier_id)
    blocked = melding.unsendable(confidential)
    if blocked:
        raise Problem("message-invalid", f"The ECD marks {', '.join(blocked)} confidential, and a Veilig Thuis melding "
                                         "requires it: this melding cannot be sent electronically; report it by phone.")
    envelope = {
        "melding": melding.complete(melding.apply_edits(built, edits), answers),
        "confidential": confidential,
        "gemeentecode": gemeentecode,
        "subject": subject_of(bundle),
        "dossier_id": dossier_id,
        "client_id": bundle["client"]["id"],
        "evidence": melding.meldrecht_evidence(answers, principal.name) if answers.legal_basis == "meldrecht" else None,
    }
    return await run_in_threadpool(functools.partial(
        gw.pipeline.submit, MELDING_ROUTE.id, json.dumps(envelope).encode(), "application/json", principal,
        idempotency_key, answers.legal_basis, None, internal=True, request_body=request_body))


def melding_status(gw: Gateway, today: date | None = None) -> list[dict[str, Any]]:
    """Every melding sent, with its receipt, decision and end, and whether a decision is overdue."""
    today = today or date.today()
    with gw.store.reading() as session:
        sent = list(session.scalars(select(Exchange).where(Exchange.route_id == MELDING_ROUTE.id)
                                    .order_by(Exchange.created_at.desc())))
        answers = list(session.scalars(select(Exchange).where(
            Exchange.route_id == FEEDBACK_ROUTE.id, Exchange.correlation_id.in_([e.correlation_id for e in sent]))))
    feedback: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        context = gw.box.decrypt_json(answer.context_encrypted) if answer.context_encrypted else {}
        feedback.setdefault(answer.correlation_id, []).append(context)
    rows = []
    for exchange in sent:
        received = feedback.get(exchange.correlation_id, [])
        decision = next((f for f in received if f.get("type") == "besluit"), None)
        ended = any(f.get("type") == "einde_betrokkenheid" for f in received)
        sent_on = (exchange.delivered_at or exchange.created_at).date()
        due = fb.add_working_days(sent_on, DECISION_WORKING_DAYS)
        rows.append({
            "exchange_id": exchange.id, "state": exchange.state, "partner_id": exchange.partner_id,
            "legal_basis": exchange.legal_basis, "sent_on": sent_on.isoformat() if exchange.delivered_at else None,
            "receipt": exchange.receipt, "acknowledged": any(f.get("type") == "ontvangstbevestiging" for f in received),
            "decision": decision.get("decision") if decision else None,
            "decision_date": decision.get("date") if decision else None,
            "decision_due": due.isoformat(), "ended": ended,
            "overdue": exchange.delivered_at is not None and decision is None and today > due,
        })
    return rows


async def enter_feedback(gw: Gateway, principal: Principal, exchange_id: str, feedback: fb.Feedback) -> Answer:
    """Feedback that came by phone or letter, typed in by the worker: into the dossier through the outbox."""
    if feedback.melding_kenmerk != exchange_id:
        raise Problem("validation-failed", "melding_kenmerk must be the melding this feedback is about.")
    payload = {**feedback.model_dump(mode="json"), "entered_by": principal.name}
    return await run_in_threadpool(functools.partial(
        gw.pipeline.submit, FEEDBACK_ROUTE.id, json.dumps(payload).encode(), "application/json", principal, None, None, None,
        internal=True))
