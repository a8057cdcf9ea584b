"""Exchanges, their timelines, dead letters and replay."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from gateway.api.deps import Admin, GatewayDep, StaffOrPartner
from gateway.api.params import Since, Until, moment
from gateway.api.schemas import ExchangeDetail, ExchangeOut, ExchangePage, ReplayIn, ReplayOut, TransitionOut
from gateway.core import outbox
from gateway.core.auth import Principal
from gateway.core.exchange import STATES
from gateway.core.models import Exchange
from gateway.core.problems import Problem

router = APIRouter(prefix="/api/v1", tags=["exchanges"])


def exchange_out(exchange: Exchange) -> ExchangeOut:
    return ExchangeOut.model_validate(exchange, from_attributes=True)


def _cursor(exchange: Exchange) -> str:
    return base64.urlsafe_b64encode(f"{exchange.created_at.isoformat()}|{exchange.id}".encode()).decode()


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, exchange_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), exchange_id
    except (ValueError, UnicodeDecodeError):
        raise Problem("bad-request", "The cursor is not one this API handed out.") from None


def _visible(query, principal: Principal):  # type: ignore[no-untyped-def]
    # A partner sees what it sent, and what was sent to it: not what was meant for it but never
    # left (refused for want of a basis, or not yet tried), which would tell it about a client.
    if principal.role == "partner":
        return query.where(or_(and_(Exchange.partner_id == principal.partner_id, Exchange.attempts > 0,
                                    Exchange.state != "refused"),
                               Exchange.source == principal.source))
    return query


# Ours, not the partner's: our pseudonym of the client, the consent, why we decided what we did,
# and what the next system (the ECD) answered us.
_NOT_FOR_PARTNERS = {"subject": None, "consent_id": None, "state_reason": None, "last_error": None, "receipt": None}


def _for(principal: Principal, exchange: Exchange) -> ExchangeOut:
    shown = exchange_out(exchange)
    if principal.role != "partner":
        return shown
    # Who of ours sent it is ours too (a token's name names a worker): the partner sees the role.
    source = shown.source if shown.source == principal.source else shown.source.split(":", 1)[0]
    return shown.model_copy(update={**_NOT_FOR_PARTNERS, "source": source})


@router.get("/exchanges", response_model=ExchangePage, summary="List exchanges, newest first")
def list_exchanges(
    gw: GatewayDep,
    principal: StaffOrPartner,
    state: Annotated[Literal[STATES] | None, Query(description="One of the exchange states")] = None,
    route: str | None = None,
    partner: str | None = None,
    connector: str | None = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> ExchangePage:
    since_at, until_at = moment(since, "since"), moment(until, "until")
    query = _visible(select(Exchange), principal)
    for column, value in ((Exchange.state, state), (Exchange.route_id, route), (Exchange.partner_id, partner),
                          (Exchange.connector_type, connector)):
        if value is not None:
            query = query.where(column == value)
    if since_at is not None:
        query = query.where(Exchange.created_at >= since_at)
    if until_at is not None:
        query = query.where(Exchange.created_at < until_at)
    if cursor:
        created, exchange_id = _parse_cursor(cursor)
        query = query.where(or_(Exchange.created_at < created, and_(Exchange.created_at == created, Exchange.id < exchange_id)))
    query = query.order_by(Exchange.created_at.desc(), Exchange.id.desc()).limit(limit + 1)
    with gw.store.reading() as session:
        rows = list(session.scalars(query))
    page = rows[:limit]
    return ExchangePage(items=[_for(principal, row) for row in page],
                        next_cursor=_cursor(page[-1]) if len(rows) > limit else None)


@router.get("/exchanges/{exchange_id}", response_model=ExchangeDetail, summary="One exchange with its timeline")
def show_exchange(exchange_id: str, gw: GatewayDep, principal: StaffOrPartner) -> ExchangeDetail:
    with gw.store.reading() as session:
        query = _visible(select(Exchange).where(Exchange.id == exchange_id), principal).options(selectinload(Exchange.transitions))
        exchange = session.scalar(query)
        if exchange is None:
            raise Problem("not-found", "No exchange with that id is visible to you.")
        timeline = [TransitionOut.model_validate(t, from_attributes=True) for t in exchange.transitions]
        if principal.role == "partner":
            timeline = [t.model_copy(update={"reason": None, "actor": None}) for t in timeline]
        return ExchangeDetail(**_for(principal, exchange).model_dump(), timeline=timeline)


@router.post("/exchanges/{exchange_id}/replay", response_model=ExchangeOut, summary="Replay one dead letter")
def replay_exchange(exchange_id: str, body: ReplayIn, gw: GatewayDep, principal: Admin) -> ExchangeOut:
    result = outbox.replay_one(gw, exchange_id, principal.actor(), body.reason, exchange_out)
    gw.wake_workers()
    return result


@router.get("/dead-letters", response_model=ExchangePage, summary="Dead letters, with their last error")
def list_dead_letters(gw: GatewayDep, principal: Admin, partner: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> ExchangePage:
    return list_exchanges(gw, principal, state="dead", partner=partner, limit=limit, cursor=cursor)


@router.post("/dead-letters/replay", response_model=ReplayOut, summary="Replay many dead letters")
def replay_dead_letters(body: ReplayIn, gw: GatewayDep, principal: Admin) -> ReplayOut:
    if not body.all and not body.exchange_ids:
        raise Problem("validation-failed", "Name exchange_ids, or set all to true.")
    with gw.store.reading() as session:
        ids = body.exchange_ids or outbox.dead_letter_ids(session, body.partner_id)
    replayed, skipped = outbox.replay_many(gw, ids, principal.actor(), body.reason)
    gw.wake_workers()
    return ReplayOut(replayed=replayed, skipped=skipped)
