"""Information requests from police units and municipalities: answered only on a basis, always audited.

A request names one client (her BSN) and what is asked. The gateway reads the minimum from the
ECD — whether she is known and, only where asked, the state of the help and whom to call — and
hands the answer to the pipeline, which decides on the basis: a running huisverbod that names her
and lies in the requester's area (checked here; its kenmerk is the evidence), or her consent for
this requester and purpose. Without one the request is refused with the reasons; either way the
request and its outcome are in the audit log. The refusal reads the same whether or not the ECD
knows her, and her whereabouts are never read for an answer at all.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.concurrency import run_in_threadpool

from gateway.core import audit
from gateway.core.auth import Principal
from gateway.core.models import utcnow
from gateway.core.pipeline import Answer
from gateway.core.policy import BasisCheck
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_care4.client import Care4Unavailable
from schakel_care4.ecd import ecd_client
from schakel_police import huisverbod
from schakel_police.connector import Contact
from schakel_police.messages import Informatieverzoek

ROUTE, ROUTE_PURPOSE = "police.informatieverzoek", "informatieverstrekking"


def huisverbod_evidence(gw: Gateway, contact: Contact, request: Informatieverzoek) -> tuple[dict[str, Any] | None, str | None]:
    """Evidence for the basis ``huisverbod``, or why it does not hold."""
    named = request.huisverbod
    if named is None:
        return None, None
    if named.gemeentecode not in contact.codes:
        return None, "the huisverbod named is not in your area"
    order = huisverbod.known(gw, named.gemeentecode, named.kenmerk)
    if order is None:
        return None, "no huisverbod with that kenmerk was notified to this organisation"
    if gw.pseudonymise(request.bsn) not in order.persons:
        return None, "the huisverbod named does not name this client"
    why_not = not_running(order)
    if why_not is not None:
        return None, why_not
    return {"decision_reference": named.kenmerk, "gemeentecode": named.gemeentecode,
            "checked": "a running huisverbod of the requester's area names this client"}, None


def not_running(order: huisverbod.Order) -> str | None:
    if order.withdrawn:
        return "the huisverbod named was withdrawn"
    if order.einde is None or utcnow() > order.einde:
        return "the huisverbod named has ended"
    return None


def answer_basis_lapsed(check: BasisCheck) -> str | None:
    """Before each attempt to deliver an answer given on a huisverbod: the order must still run.
    Withdrawn or ended while the answer waited for its partner, it no longer allows the answer."""
    if check.route.id != ROUTE or check.basis != "huisverbod":
        return None
    code, kenmerk = check.evidence.get("gemeentecode"), check.evidence.get("decision_reference")
    order = huisverbod.known(check.gateway, code, kenmerk, session=check.session) if code and kenmerk else None
    if order is None:
        return "the huisverbod it was given on is not known here"
    if check.subject not in order.persons:
        return "the huisverbod it was given on does not name this client"
    return not_running(order)


async def answer_data(gw: Gateway, request: Informatieverzoek) -> dict[str, Any]:
    """The most an answer can hold; the mapping and the basis decide what of it leaves."""
    ecd = ecd_client(gw)
    try:
        clients = (await ecd.get("/clients", bsn=request.bsn))["items"]
        data: dict[str, Any] = {"verzoek_kenmerk": request.kenmerk, "bekend": bool(clients)}
        if not clients or not request.gevraagd:
            return data
        dossiers = (await ecd.get("/dossiers", client_id=clients[0]["id"]))["items"]
    except Care4Unavailable:
        raise Problem("unavailable", "The ECD does not answer; try again shortly.") from None
    current = [d for d in dossiers if d["status"] != "gesloten"] or dossiers
    if not current:
        return data
    dossier = current[0]
    if "hulpverlening" in request.gevraagd:
        data["hulpverlening"] = {"status": dossier["status"], "sinds": dossier["opened_at"]}
    if "contactpersoon" in request.gevraagd:
        worker = dossier["worker"]
        data["contactpersoon"] = {"naam": worker["name"], "organisatie": worker["organisation"], "rol": worker["role"],
                                  "telefoon": worker["phone"], "email": worker["email"]}
    return data


def refuse_sender(gw: Gateway, contact: Contact, principal: Principal, request: Informatieverzoek) -> None:
    """A request from a partner that may not ask at all never reaches the pipeline; it is audited here."""
    why = "Only a police unit or a municipality sends information requests."
    with gw.store.transaction() as session:
        audit.record(session, "informatieverzoek.refused", actor=principal.actor(), outcome=audit.SERIOUS_FAILURE,
                     purpose=ROUTE_PURPOSE, client=gw.pseudonymise(request.bsn), partner_id=contact.partner_id,
                     partner_message_id=request.kenmerk, message_type="informatieverzoek", detail=why)
    raise Problem("forbidden", why)


async def receive(gw: Gateway, contact: Contact, principal: Principal, request: Informatieverzoek) -> Answer:
    if contact.soort not in ("politie", "gemeente"):
        await run_in_threadpool(refuse_sender, gw, contact, principal, request)
    evidence, why_not = await run_in_threadpool(huisverbod_evidence, gw, contact, request)
    data = await answer_data(gw, request)
    envelope = {"data": data, "subject": request.bsn, "partner_id": contact.partner_id,
                "evidence": {"huisverbod": evidence} if evidence else {},
                "context": {"verzoek": request.kenmerk, "doel": request.doel, "gevraagd": list(request.gevraagd)},
                "partner_message_id": request.kenmerk}
    answer = await run_in_threadpool(functools.partial(
        gw.pipeline.submit, ROUTE, json.dumps(envelope).encode(), "application/json", principal,
        f"informatieverzoek:{request.kenmerk}", request.grondslag, None, internal=True,
        request_body=request.model_dump_json().encode()))
    if answer.status == 403 and why_not:
        # The core names the basis that is missing; this says why the huisverbod named did not count.
        body = {**answer.body, "basis_reasons": {**answer.body.get("basis_reasons", {}), "huisverbod": why_not}}
        return Answer(answer.status, body, answer.media_type, answer.replayed)
    return answer
