"""Connector types and their run-time state: manifest, pause and resume."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.api.deps import Admin, GatewayDep, Staff
from gateway.api.schemas import ConnectorOut, ReasonIn
from gateway.core import partners as partner_registry
from gateway.core.models import ConnectorState, Exchange, OutboxItem, Partner
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway

router = APIRouter(prefix="/api/v1", tags=["connectors"])


def connector_out(gw: Gateway, session: Session, connector_type: str) -> ConnectorOut:
    connector = gw.registry.connectors[connector_type]
    state = session.get(ConnectorState, connector_type)
    counts = dict(session.execute(
        select(OutboxItem.held, func.count()).where(OutboxItem.connector_type == connector_type).group_by(OutboxItem.held)
    ).all())
    dead = session.scalar(select(func.count()).where(Exchange.connector_type == connector_type, Exchange.state == "dead")) or 0
    partners = session.scalar(select(func.count()).where(Partner.connector_type == connector_type)) or 0
    return ConnectorOut(
        manifest=connector.manifest.as_dict(),
        state=state.state if state else "active",
        state_reason=state.reason if state else None,
        partners=partners,
        queued=counts.get(False, 0),
        parked=counts.get(True, 0),
        dead=dead,
    )


def _known(gw: Gateway, connector_type: str) -> None:
    if connector_type not in gw.registry.connectors:
        raise Problem("not-found", "No enabled connector type with that id.")


@router.get("/connectors", response_model=list[ConnectorOut], summary="Connector types with state and queues")
def list_connectors(gw: GatewayDep, _: Staff) -> list[ConnectorOut]:
    with gw.store.reading() as session:
        return [connector_out(gw, session, connector_type) for connector_type in sorted(gw.registry.connectors)]


@router.get("/connectors/{connector_type}", response_model=ConnectorOut, summary="One connector type and its manifest")
def show_connector(connector_type: str, gw: GatewayDep, _: Staff) -> ConnectorOut:
    _known(gw, connector_type)
    with gw.store.reading() as session:
        return connector_out(gw, session, connector_type)


def _set_state(gw: Gateway, connector_type: str, state: str, reason: str, actor) -> ConnectorOut:  # type: ignore[no-untyped-def]
    _known(gw, connector_type)
    with gw.store.transaction() as session:
        partner_registry.set_connector_state(session, connector_type, state, reason, actor)
    gw.wake_workers()
    with gw.store.reading() as session:
        return connector_out(gw, session, connector_type)


@router.post("/connectors/{connector_type}/pause", response_model=ConnectorOut, summary="Hold all its messages")
def pause_connector(connector_type: str, body: ReasonIn, gw: GatewayDep, principal: Admin) -> ConnectorOut:
    return _set_state(gw, connector_type, "paused", body.reason, principal.actor())


@router.post("/connectors/{connector_type}/resume", response_model=ConnectorOut, summary="Let held messages flow again")
def resume_connector(connector_type: str, body: ReasonIn, gw: GatewayDep, principal: Admin) -> ConnectorOut:
    return _set_state(gw, connector_type, "active", body.reason, principal.actor())


@router.get("/routes", summary="The configured routes")
def list_routes(gw: GatewayDep, _: Staff) -> list[dict]:  # type: ignore[type-arg]
    return [route.as_dict() for route in sorted(gw.registry.routes.values(), key=lambda r: r.id)]
