"""Partners: register, configure (secrets write-only), pause and resume, routing table."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.api.deps import Admin, GatewayDep, Staff
from gateway.api.schemas import PartnerOut, ReasonIn
from gateway.core import partners as partner_registry
from gateway.core.models import Exchange, OutboxItem, Partner
from gateway.core.partners import PartnerIn, PartnerPatch
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway

router = APIRouter(prefix="/api/v1", tags=["partners"])


def partner_out(gw: Gateway, session: Session, partner: Partner) -> PartnerOut:
    connector = gw.registry.connectors.get(partner.connector_type)
    data = partner_registry.public(partner, connector.manifest if connector else None, gw.box)
    held = dict(session.execute(
        select(OutboxItem.held, func.count()).where(OutboxItem.partner_id == partner.id).group_by(OutboxItem.held)
    ).all())
    dead = session.scalar(select(func.count()).where(Exchange.partner_id == partner.id, Exchange.state == "dead")) or 0
    # Derived, not stored: a column updated on every delivery would serialise them all.
    last_success = session.scalar(select(func.max(Exchange.delivered_at)).where(Exchange.partner_id == partner.id))
    last_failure = session.scalar(select(func.max(Exchange.updated_at)).where(
        Exchange.partner_id == partner.id, Exchange.state.in_(("failed", "dead"))))
    return PartnerOut(**data, routing=partner_registry.routing_of(session, partner.id), queued=held.get(False, 0),
                      parked=held.get(True, 0), dead=dead, last_success_at=last_success, last_failure_at=last_failure)


def _manifest(gw: Gateway, connector_type: str):  # type: ignore[no-untyped-def]
    connector = gw.registry.connectors.get(connector_type)
    if connector is None:
        raise Problem("validation-failed", "No enabled connector type with that id.",
                      extensions={"errors": [{"location": ["body", "connector_type"], "reason": "unknown"}]})
    return connector.manifest


@router.get("/partners", response_model=list[PartnerOut], summary="Registered partners")
def list_partners(gw: GatewayDep, _: Staff, connector_type: str | None = None) -> list[PartnerOut]:
    with gw.store.reading() as session:
        query = select(Partner).order_by(Partner.connector_type, Partner.id)
        if connector_type:
            query = query.where(Partner.connector_type == connector_type)
        return [partner_out(gw, session, partner) for partner in session.scalars(query)]


@router.post("/partners", response_model=PartnerOut, status_code=201, summary="Register a partner")
def create_partner(body: PartnerIn, gw: GatewayDep, principal: Admin) -> PartnerOut:
    manifest = _manifest(gw, body.connector_type)
    with gw.store.transaction() as session:
        partner = partner_registry.create(session, body, manifest, gw.box, principal.actor())
        return partner_out(gw, session, partner)


@router.get("/partners/{partner_id}", response_model=PartnerOut, summary="One partner")
def show_partner(partner_id: str, gw: GatewayDep, _: Staff) -> PartnerOut:
    with gw.store.reading() as session:
        return partner_out(gw, session, partner_registry.get(session, partner_id))


@router.patch("/partners/{partner_id}", response_model=PartnerOut, summary="Change a partner's settings")
def update_partner(partner_id: str, body: PartnerPatch, gw: GatewayDep, principal: Admin) -> PartnerOut:
    with gw.store.transaction() as session:
        partner = partner_registry.get(session, partner_id)
        partner_registry.update(session, partner, body, _manifest(gw, partner.connector_type), gw.box, principal.actor())
        return partner_out(gw, session, partner)


@router.post("/partners/{partner_id}/pause", response_model=PartnerOut, summary="Hold this partner's messages")
def pause_partner(partner_id: str, body: ReasonIn, gw: GatewayDep, principal: Admin) -> PartnerOut:
    with gw.store.transaction() as session:
        partner = partner_registry.get(session, partner_id)
        partner_registry.set_partner_state(session, partner, "paused", body.reason, principal.actor())
        return partner_out(gw, session, partner)


@router.post("/partners/{partner_id}/resume", response_model=PartnerOut, summary="Let this partner's messages flow")
def resume_partner(partner_id: str, body: ReasonIn, gw: GatewayDep, principal: Admin) -> PartnerOut:
    with gw.store.transaction() as session:
        partner = partner_registry.get(session, partner_id)
        partner_registry.set_partner_state(session, partner, "active", body.reason, principal.actor())
        result = partner_out(gw, session, partner)
    gw.wake_workers()
    return result
