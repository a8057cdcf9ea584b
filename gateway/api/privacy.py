"""Consents, the audit trail, the client access report and break-the-glass viewing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from gateway.api.deps import GatewayDep, require
from gateway.api.params import MAX_SEQ, Since, Until, moment
from gateway.api.schemas import ReasonIn
from gateway.core import access_report, audit, audit_chain, audit_export
from gateway.core import consent as consents
from gateway.core.auth import Principal
from gateway.core.models import AuditCheckpoint, AuditEntry, Consent, Exchange
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway

router = APIRouter(prefix="/api/v1", tags=["privacy"])

Privacy = Annotated[Principal, Depends(require("privacy"))]
Worker = Annotated[Principal, Depends(require("hulpverlener"))]
WorkerOrPrivacy = Annotated[Principal, Depends(require("hulpverlener", "privacy"))]
AuditReader = Annotated[Principal, Depends(require("privacy", "beheerder"))]
SUBJECT = r"^psn:[0-9a-f]{40}$"


class ClientRef(BaseModel):
    client_id: str = Field(min_length=1, max_length=64, description="BSN or ECD client number")


class SubjectOut(BaseModel):
    subject: str


class BreakGlassIn(BaseModel):
    reason: str = Field(min_length=10, max_length=1000, description="Why the body must be seen; kept in the audit log")


def _subject(gw: Gateway, client_id: str) -> str:
    return gw.pseudonymise(client_id)


@router.post("/pseudonyms", response_model=SubjectOut, summary="The pseudonym the gateway knows a client by")
def pseudonym(body: ClientRef, gw: GatewayDep, _: WorkerOrPrivacy) -> SubjectOut:
    return SubjectOut(subject=_subject(gw, body.client_id))


# --- consents ------------------------------------------------------------------------------------

@router.post("/consents", status_code=201, summary="Record a client's consent (FHIR R4 Consent shape)")
def record_consent(body: consents.ConsentIn, gw: GatewayDep, principal: Worker) -> dict[str, Any]:
    with gw.store.transaction() as session:
        row = consents.record(session, body, _subject(gw, body.client_id), principal.actor())
        return consents.as_dict(row)


def _record_read(gw: Gateway, principal: Principal, event_type: str, *, client: str | None = None,
                 purpose: str, detail: str) -> None:
    """A person read clients' data here (the register, the trail): in the audit log, as NEN 7513
    wants every read of personal data to be."""
    with gw.store.transaction() as session:
        audit.record(session, event_type, actor=principal.actor(), action_code="R", client=client, purpose=purpose,
                     detail=detail)


@router.get("/consents", summary="The consent register, with withdrawn and expired consents kept; a worker "
                                 "reads one client's (subject), a privacy officer anyone's")
def list_consents(gw: GatewayDep, principal: WorkerOrPrivacy,
                  subject: Annotated[str | None, Query(pattern=SUBJECT)] = None,
                  status: Literal["active", "inactive"] | None = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    if subject is None and principal.role != "privacy":
        raise Problem("forbidden", "A worker reads the consents of one client: give her pseudonym as subject.")
    query = select(Consent).order_by(Consent.recorded_at.desc()).limit(limit)
    if subject:
        query = query.where(Consent.client == subject)
    if status:
        query = query.where(Consent.status == status)
    with gw.store.reading() as session:
        rows = [consents.as_dict(c) for c in session.scalars(query)]
    _record_read(gw, principal, "consents.read", client=subject, purpose="toestemmingenregister",
                 detail=f"the consent register{' of one client' if subject else ''}: {len(rows)} consent(s)")
    return rows


@router.get("/consents/{consent_id}", summary="One consent; ?format=fhir for a FHIR R4 Consent resource")
def show_consent(consent_id: str, gw: GatewayDep, principal: WorkerOrPrivacy,
                 format: Literal["json", "fhir"] = "json") -> dict[str, Any]:
    with gw.store.reading() as session:
        row = session.get(Consent, consent_id)
        if row is None:
            raise Problem("not-found", "No consent with that id.")
        shown = consents.as_fhir(row) if format == "fhir" else consents.as_dict(row)
        client = row.client
    _record_read(gw, principal, "consents.read", client=client, purpose="toestemmingenregister",
                 detail=f"consent {consent_id}")
    return shown


@router.post("/consents/{consent_id}/withdraw", summary="Withdraw a consent; waiting messages relying on it are refused")
def withdraw_consent(consent_id: str, body: ReasonIn, gw: GatewayDep, principal: WorkerOrPrivacy) -> dict[str, Any]:
    with gw.store.transaction() as session:
        row, stopped, in_flight = consents.withdraw(session, consent_id, body.reason, principal.actor())
        return {**consents.as_dict(row), "stopped_exchanges": stopped, "in_flight_exchanges": in_flight}


# --- audit ---------------------------------------------------------------------------------------

@router.get("/audit", summary="Search the audit trail")
def search_audit(gw: GatewayDep, principal: Privacy,
                 subject: Annotated[str | None, Query(pattern=SUBJECT)] = None,
                 partner: str | None = None, legal_basis: str | None = None,
                 outcome: Annotated[int | None, Query(ge=0, le=12)] = None, event_type: str | None = None,
                 exchange: str | None = None, since: Since = None, until: Until = None,
                 after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    query = select(AuditEntry).where(AuditEntry.seq > after_seq)
    for column, value in ((AuditEntry.client, subject), (AuditEntry.partner_id, partner),
                          (AuditEntry.legal_basis, legal_basis), (AuditEntry.outcome, outcome),
                          (AuditEntry.event_type, event_type), (AuditEntry.exchange_id, exchange)):
        if value is not None:
            query = query.where(column == value)
    since_at, until_at = moment(since, "since"), moment(until, "until")
    if since_at is not None:
        query = query.where(AuditEntry.occurred_at >= since_at)
    if until_at is not None:
        query = query.where(AuditEntry.occurred_at < until_at)
    with gw.store.reading() as session:
        rows = list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))
        items = [audit_export.entry_dict(row) for row in rows]
    # Read first, then recorded: a search never finds itself. Its later pages are the same search
    # (recording each would give a paging reader a new entry to page to, for ever). The filters
    # other than the client's pseudonym (which goes in its own field) name no one.
    if not after_seq:
        filters = {"partner": partner, "legal_basis": legal_basis, "outcome": outcome, "event_type": event_type,
                   "exchange": exchange, "since": since_at, "until": until_at}
        _record_read(gw, principal, "audit.searched", client=subject, purpose="privacy_toezicht",
                     detail="; ".join(f"{name}={value}" for name, value in filters.items() if value is not None)
                     + f" ({len(items)} entries on the first page)")
    return {"items": items, "next_after_seq": items[-1]["seq"] if len(items) == limit else None}


@router.get("/audit/verify", summary="Walk the hash chain and the checkpoints; name the first broken entry")
def verify_audit(gw: GatewayDep, _: AuditReader) -> JSONResponse:
    with gw.store.reading() as session:
        result = audit_chain.verify(session, trusted=audit_chain.trusted_keys(gw.settings))
    return JSONResponse(result.as_dict(), status_code=200 if result.ok else 409)


@router.get("/audit/checkpoints", summary="Signed checkpoints of the chain head, for export")
def list_checkpoints(gw: GatewayDep, _: AuditReader) -> list[dict[str, Any]]:
    with gw.store.reading() as session:
        return [audit_chain.export_checkpoint(row) for row in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))]


@router.post("/audit/checkpoints", status_code=201, summary="Sign the current chain head now")
def create_checkpoint(gw: GatewayDep, _: AuditReader) -> dict[str, Any]:
    if gw.settings.audit_signing_key is None:
        raise Problem("state-conflict", "No audit signing key is configured (GATEWAY_AUDIT_SIGNING_KEY).")
    with gw.store.transaction() as session:
        row = audit_chain.checkpoint(session, gw.settings.audit_signing_key)
        if row is None:
            raise Problem("state-conflict", "The audit log is empty.")
        return audit_chain.export_checkpoint(row)


@router.get("/audit/export", summary="The audit trail as JSON lines or FHIR R4 AuditEvent resources (one per line)",
            responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                         "application/fhir+ndjson": {"schema": {"type": "string"}}}}})
def export_audit(gw: GatewayDep, principal: Privacy, format: Literal["jsonl", "fhir"] = "jsonl",
                 subject: Annotated[str | None, Query(pattern=SUBJECT)] = None) -> StreamingResponse:
    query = select(AuditEntry)
    if subject:
        query = query.where(AuditEntry.client == subject)
    with gw.store.transaction() as session:
        audit.record(session, "audit.exported", actor=principal.actor(), action_code="R", client=subject, detail=format)

    def generate() -> Any:
        with gw.store.reading() as session:
            yield from audit_export.lines(session, format, query)

    media = "application/fhir+ndjson" if format == "fhir" else "application/x-ndjson"
    return StreamingResponse(generate(), media_type=media)


# --- the client -----------------------------------------------------------------------------------

@router.post("/access-report", summary="AVG art. 15: everything shared about one client; ?format=html prints",
             responses={200: {"content": {"application/json": {}, "text/html": {"schema": {"type": "string"}}}}})
def client_access_report(body: ClientRef, gw: GatewayDep, principal: Privacy,
                         format: Literal["json", "html"] = "json") -> Any:
    subject = _subject(gw, body.client_id)
    with gw.store.transaction() as session:
        audit.record(session, "access_report.generated", actor=principal.actor(), action_code="R", client=subject,
                     purpose="inzage_betrokkene")
    with gw.store.reading() as session:
        report = access_report.build(session, subject)
    if format == "html":
        # A page about one client: never cached, never framed, no script (its style is inline).
        return HTMLResponse(access_report.render_html(report), headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"})
    return report


@router.post("/exchanges/{exchange_id}/break-glass", summary="View a message body, with a reason; audited")
def break_the_glass(exchange_id: str, body: BreakGlassIn, gw: GatewayDep, principal: Privacy) -> dict[str, Any]:
    with gw.store.transaction() as session:
        exchange = session.get(Exchange, exchange_id)
        if exchange is None:
            raise Problem("not-found", "No exchange with that id.")
        if exchange.payload_encrypted is None:
            raise Problem("state-conflict", "This exchange has no stored body (refused, or purged under the retention rule).")
        audit.record(session, "body.viewed", actor=principal.actor(), action_code="R", outcome=audit.SUCCESS,
                     purpose="break_the_glass", client=exchange.subject, exchange_id=exchange.id,
                     message_type=exchange.message_type, partner_id=exchange.partner_id, legal_basis=exchange.legal_basis,
                     consent_id=exchange.consent_id, fields=exchange.fields_out, payload_digest=exchange.payload_digest,
                     detail=body.reason)
        content = gw.box.decrypt(exchange.payload_encrypted)
    return {"exchange_id": exchange_id, "media_type": exchange.content_type, "body": content.decode("utf-8", "replace"),
            "fields": exchange.fields_out}
