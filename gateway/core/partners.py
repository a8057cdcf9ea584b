"""Partners: the registered counterparts of a connector type, and the table that finds them.

A partner's configuration is validated against its connector type's config schema; fields the
schema marks secret (``SecretStr``) are stored encrypted and never returned by the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.core import audit
from gateway.core.crypto import Box
from gateway.core.models import ConnectorState, OutboxItem, Partner, PartnerRoute, utcnow
from gateway.core.problems import Problem, field_errors
from gateway.core.sql import Bind, Read, Statement

if TYPE_CHECKING:
    from gateway.core.connectors import ConnectorManifest

PARTNER_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"
MASK = "********"


@dataclass(frozen=True)
class PartnerView:
    """What a connector sees of a partner for one delivery: config with secrets decrypted."""

    id: str
    connector_type: str
    name: str
    endpoint: str
    identifiers: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    state: str = "active"


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently nothing

    id: str = Field(pattern=PARTNER_ID, description="Stable slug, e.g. vt-amsterdam-amstelland")
    connector_type: str
    name: str = Field(min_length=1, max_length=200)
    endpoint: str = Field(pattern=r"^https?://", max_length=500)
    identifiers: dict[str, str] = Field(default_factory=dict, description="gemeentecode, agb, region, ...")
    config: dict[str, Any] = Field(default_factory=dict)
    routing: dict[str, list[str]] = Field(
        default_factory=dict, description="attribute -> values this partner serves, e.g. gemeentecode"
    )


class PartnerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    endpoint: str | None = Field(default=None, pattern=r"^https?://", max_length=500)
    identifiers: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    routing: dict[str, list[str]] | None = None


def _split_config(manifest: "ConnectorManifest", config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        model = manifest.config_schema.model_validate(config)
    except ValidationError as exc:
        errors = field_errors(exc.errors(), ("config",))
        raise Problem("validation-failed", "The partner configuration does not match the connector's schema.",
                      extensions={"errors": errors}) from None
    secret_names = set(manifest.secret_fields())
    plain: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name in secret_names:
            if value is not None:
                secrets[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        else:
            plain[name] = value.model_dump() if isinstance(value, BaseModel) else value
    return plain, secrets


def public(partner: Partner, manifest: "ConnectorManifest | None" = None, box: Box | None = None) -> dict[str, Any]:
    """A partner as the API shows it: secret fields only say that they are set."""
    secret_names = manifest.secret_fields() if manifest else []
    stored = box.decrypt_json(partner.credentials_encrypted) if (box and partner.credentials_encrypted) else {}
    return {
        "id": partner.id,
        "connector_type": partner.connector_type,
        "name": partner.name,
        "endpoint": partner.endpoint,
        "identifiers": partner.identifiers,
        "config": {**partner.config, **{name: (MASK if name in stored else None) for name in secret_names}},
        "state": partner.state,
        "state_reason": partner.state_reason,
        "state_changed_at": partner.state_changed_at,
    }


def view(partner: Partner | PartnerRow, box: Box) -> PartnerView:
    """What plugins see of a partner (a Partner or its row), its secrets decrypted."""
    return PartnerView(
        id=partner.id,
        connector_type=partner.connector_type,
        name=partner.name,
        endpoint=partner.endpoint,
        identifiers=dict(partner.identifiers or {}),
        config=dict(partner.config or {}),
        secrets=box.decrypt_json(partner.credentials_encrypted) if partner.credentials_encrypted else {},
        state=partner.state,
    )


def get(session: Session, partner_id: str) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise Problem("not-found", "No partner with that id.")
    return partner


def create(session: Session, data: PartnerIn, manifest: "ConnectorManifest", box: Box, actor: audit.Actor) -> Partner:
    if session.get(Partner, data.id) is not None:
        raise Problem("already-exists", "A partner with that id is already registered.")
    plain, secrets = _split_config(manifest, data.config)
    partner = Partner(
        id=data.id,
        connector_type=data.connector_type,
        name=data.name,
        endpoint=data.endpoint,
        identifiers=data.identifiers,
        config=plain,
        credentials_encrypted=box.encrypt_json(secrets) if secrets else None,
        state="active",
        state_changed_at=utcnow(),
        state_changed_by=actor.user_id,
    )
    session.add(partner)
    session.flush()
    _replace_routing(session, partner, data.routing)
    audit.record(session, "partner.created", actor=actor, action_code="C", partner_id=partner.id,
                 fields=sorted(["name", "endpoint", "identifiers", *plain, *secrets]))
    return partner


def update(session: Session, partner: Partner, patch: PartnerPatch, manifest: "ConnectorManifest", box: Box,
           actor: audit.Actor) -> Partner:
    changed: list[str] = []
    for name in ("name", "endpoint", "identifiers"):
        value = getattr(patch, name)
        if value is not None:
            setattr(partner, name, value)
            changed.append(name)
    if patch.config is not None:
        old_secrets = box.decrypt_json(partner.credentials_encrypted) if partner.credentials_encrypted else {}
        # A field left out keeps its value; a secret sent back masked keeps its stored value.
        merged = {**partner.config, **old_secrets, **{k: v for k, v in patch.config.items() if v != MASK}}
        merged = {k: v for k, v in merged.items() if k in manifest.config_schema.model_fields}
        plain, secrets = _split_config(manifest, merged)
        partner.config = plain
        partner.credentials_encrypted = box.encrypt_json(secrets) if secrets else None
        changed.extend(sorted(patch.config))
    if patch.routing is not None:
        _replace_routing(session, partner, patch.routing)
        changed.append("routing")
    partner.updated_at = utcnow()
    audit.record(session, "partner.updated", actor=actor, action_code="U", partner_id=partner.id, fields=changed)
    return partner


def _replace_routing(session: Session, partner: Partner, routing: dict[str, list[str]]) -> None:
    for row in session.scalars(select(PartnerRoute).where(PartnerRoute.partner_id == partner.id)):
        session.delete(row)
    session.flush()
    for attribute, values in routing.items():
        for value in values:
            taken = session.scalar(select(PartnerRoute).where(
                PartnerRoute.connector_type == partner.connector_type,
                PartnerRoute.attribute == attribute, PartnerRoute.value == value))
            if taken is not None:
                raise Problem("already-exists", f"{attribute} {value} is already served by partner {taken.partner_id}.")
            session.add(PartnerRoute(connector_type=partner.connector_type, attribute=attribute, value=value,
                                     partner_id=partner.id))
    session.flush()


def routing_of(session: Session, partner_id: str) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for row in session.scalars(select(PartnerRoute).where(PartnerRoute.partner_id == partner_id).order_by(PartnerRoute.id)):
        table.setdefault(row.attribute, []).append(row.value)
    return table


# The look-ups below are made for every message, and their callers only look: they answer with
# the partner's row (its columns as attributes, like a Partner's), not an ORM object to keep track of.
PARTNERS = Partner.__table__
PartnerRow = Any  # a row of ``partners``: a Partner's columns as attributes, read-only


_BY_ID = Statement(select(PARTNERS).where(PARTNERS.c.id == bindparam("id")))
_BY_TYPE = Statement(select(PARTNERS).where(PARTNERS.c.connector_type == bindparam("connector_type")).limit(2))
_ROUTING = PartnerRoute.__table__
_BY_ROUTE = Statement(
    select(PARTNERS).join(_ROUTING, _ROUTING.c.partner_id == PARTNERS.c.id)
    .where(_ROUTING.c.connector_type == bindparam("connector_type"), _ROUTING.c.attribute == bindparam("attribute"),
           _ROUTING.c.value == bindparam("value")))


def find_read(partner_id: str) -> Read:
    """The look-up :func:`find` makes, for :func:`gateway.core.sql.prefetch`."""
    return Read(_BY_ID, id=partner_id)


def find(session: Bind, partner_id: str) -> PartnerRow | None:
    """The partner's row, or None."""
    return find_read(partner_id).first(session)


def find_many(session: Session, partner_ids: Iterable[str]) -> dict[str, PartnerRow]:
    """The rows of those partners that exist, by id."""
    return {row.id: row for row in session.connection().execute(
        select(PARTNERS).where(PARTNERS.c.id.in_(sorted(set(partner_ids)))))}


def resolve_read(connector_type: str, attribute: str, value: str) -> Read:
    """The look-up :func:`resolve` makes, for :func:`gateway.core.sql.prefetch`."""
    return Read(_BY_ROUTE, connector_type=connector_type, attribute=attribute, value=value)


def resolve(session: Bind, connector_type: str, attribute: str, value: str) -> PartnerRow | None:
    """The row of the partner of ``connector_type`` that serves this attribute value, or None."""
    return resolve_read(connector_type, attribute, value).first(session)


def only_partner_read(connector_type: str) -> Read:
    """The look-up :func:`only_partner` makes, for :func:`gateway.core.sql.prefetch`."""
    return Read(_BY_TYPE, connector_type=connector_type)


def only_partner(session: Bind, connector_type: str) -> PartnerRow | None:
    """The row of the one partner of ``connector_type``; None if there is none or more than one."""
    partners = only_partner_read(connector_type).all(session)
    return partners[0] if len(partners) == 1 else None


# --- pause and resume ------------------------------------------------------------------------------

def connector_paused(session: Session, connector_type: str) -> ConnectorState | None:
    state = session.get(ConnectorState, connector_type)
    return state if state is not None and state.state == "paused" else None


_CONNECTOR_STATES = ConnectorState.__table__
_CONNECTOR_STATE = Statement(select(_CONNECTOR_STATES.c.state)
                             .where(_CONNECTOR_STATES.c.connector_type == bindparam("connector_type")))


# The same reads under a share lock (PostgreSQL; SQLite writes one transaction at a time anyway).
_PARTNER_STATE_LOCKED = Statement(select(PARTNERS.c.state).where(PARTNERS.c.id == bindparam("partner_id"))
                                  .with_for_update(read=True))
_CONNECTOR_STATE_LOCKED = Statement(_CONNECTOR_STATE.statement.with_for_update(read=True))


def still_paused(session: Bind, partner_id: str, connector_type: str) -> str | None:
    """Why a claim that read the partner or its connector as paused may park a message: the
    state read again under a share lock, so that a resume committing meanwhile is either seen
    here, or waits for this transaction and then releases what it parked (a resume changes the
    state before it looks for parked messages). None: not paused after all."""
    connector = _CONNECTOR_STATE_LOCKED.first(session, connector_type=connector_type)
    if connector is not None and connector.state == "paused":
        return "connector paused"
    partner = _PARTNER_STATE_LOCKED.first(session, partner_id=partner_id)
    return "partner paused" if partner is not None and partner.state == "paused" else None


def is_connector_paused(session: Bind, connector_type: str) -> bool:
    """:func:`connector_paused` as a plain read, for the delivery worker's claim."""
    row = _CONNECTOR_STATE.first(session, connector_type=connector_type)
    return row is not None and row.state == "paused"


def set_partner_state(session: Session, partner: Partner, state: str, reason: str, actor: audit.Actor) -> Partner:
    if partner.state == state:
        raise Problem("state-conflict", f"The partner is already {state}.")
    partner.state, partner.state_reason = state, reason
    partner.state_changed_at, partner.state_changed_by = utcnow(), actor.user_id
    audit.record(session, f"partner.{'paused' if state == 'paused' else 'resumed'}", actor=actor, action_code="U",
                 partner_id=partner.id, detail=reason)
    if state == "active" and connector_paused(session, partner.connector_type) is None:
        _release_held(session, OutboxItem.partner_id == partner.id)
    return partner


def set_connector_state(session: Session, connector_type: str, state: str, reason: str, actor: audit.Actor) -> ConnectorState:
    row = session.get(ConnectorState, connector_type)
    if row is None:
        row = ConnectorState(connector_type=connector_type, state="active")
        session.add(row)
    if row.state == state:
        raise Problem("state-conflict", f"The connector is already {state}.")
    row.state, row.reason, row.changed_at, row.changed_by = state, reason, utcnow(), actor.user_id
    session.info.pop("connector_paused", None)  # what outbox.start_now noted in this transaction
    audit.record(session, f"connector.{'paused' if state == 'paused' else 'resumed'}", actor=actor, action_code="U",
                 detail=f"{connector_type}: {reason}")
    if state == "active":
        active = select(Partner.id).where(Partner.connector_type == connector_type, Partner.state == "active")
        _release_held(session, OutboxItem.partner_id.in_(active))
    return row


def _release_held(session: Session, condition: Any) -> None:
    """Parked messages flow again: back to ``queued`` and due now."""
    from gateway.core.exchange import release_parked

    items = list(session.scalars(select(OutboxItem).where(OutboxItem.held.is_(True), condition).with_for_update()))
    release_parked(session, items)
