"""The embedded demo: partner simulators on one server, partners seeded to point at them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.auth import create_token
from gateway.core.models import ApiToken, Partner
from gateway.core.plugins import Registry
from gateway.core.runtime import Gateway

DEMO_ROLES = ("beheerder", "hulpverlener", "privacy")
DEMO_CLIENT = "DEMO-0001"  # a fictional client number in the demo ECD


def simulators_app(registry: Registry) -> Starlette:
    """Every registered simulator, mounted under ``/<name>``."""
    return Starlette(routes=[Mount(f"/{name}", app=sim.app()) for name, sim in sorted(registry.simulators.items())])


def seed(gw: Gateway, simulator_base_url: str) -> list[str]:
    """Register the simulators' demo partners (once) and return the ids it created."""
    actor = audit.Actor.system("demo")
    created = []
    with gw.store.transaction() as session:
        for name, simulator in sorted(gw.registry.simulators.items()):
            for demo in simulator.demo_partners:
                if session.get(Partner, demo.id) is not None or demo.connector_type not in gw.registry.connectors:
                    continue
                data = partner_registry.PartnerIn(
                    id=demo.id, connector_type=demo.connector_type, name=demo.name,
                    endpoint=f"{simulator_base_url.rstrip('/')}/{name}{demo.path}",
                    identifiers=demo.identifiers, config=demo.config, routing=demo.routing,
                )
                partner_registry.create(session, data, gw.registry.connectors[demo.connector_type].manifest, gw.box, actor)
                created.append(demo.id)
        _seed_demo_consent(session, gw, actor)
    return created


DEMO_CONSENTS = (
    # (client number or BSN, partner kind, purpose): fictional consents the demo starts with.
    (DEMO_CLIENT, "webhook", "signalering"),
    ("care4:C-0002", "veiligthuis", "melding_huiselijk_geweld"),
    ("care4:C-0001", "police", "warme_overdracht"),
)


def _seed_demo_consent(session: Any, gw: Gateway, actor: audit.Actor) -> None:
    """Fictional consents: the demo client for webhook notices, and — if the Care4 simulator is
    there — the male victim of household H-0002 for a melding to Veilig Thuis."""
    from gateway.core.consent import ConsentIn, record
    from gateway.core.models import Consent

    for client_id, kind, purpose in DEMO_CONSENTS:
        if client_id.startswith("care4:"):
            client_id = _care4_bsn(client_id.removeprefix("care4:"))
            if client_id is None:
                continue
        subject = gw.pseudonymise(client_id)
        exists = session.scalar(select(Consent.id).where(Consent.client == subject, Consent.status == "active",
                                                         Consent.partner_kind == kind))
        if exists is None and kind in gw.registry.connectors:
            record(session, ConsentIn(client_id=client_id, partner_kind=kind, purpose=purpose,
                                      evidence_reference="demo: fictief toestemmingsformulier"), subject, actor)


def _care4_bsn(client_id: str) -> str | None:
    try:
        from schakel_care4.fixtures import build
    except ImportError:
        return None
    return build()["clients"][client_id]["bsn"]


def configure_simulators(gw: Gateway, simulator_base_url: str, gateway_url: str, tokens: dict[str, str]) -> None:
    partner_tokens = {key.removeprefix("partner:"): token for key, token in tokens.items() if key.startswith("partner:")}
    for name, simulator in gw.registry.simulators.items():
        if simulator.configure is not None:
            simulator.configure(f"{simulator_base_url.rstrip('/')}/{name}", gateway_url, partner_tokens)


def demo_tokens(gw: Gateway, path: Path) -> dict[str, str]:
    """A token per human role, and one per demo partner (``partner:<id>``) that simulators use to
    call back; kept (owner-only) in the data directory."""
    wanted = [*DEMO_ROLES, *(f"partner:{p.id}" for sim in gw.registry.simulators.values() for p in sim.demo_partners)]
    if path.exists():
        tokens = json.loads(path.read_text())
        with gw.store.reading() as session:
            names = set(session.scalars(select(ApiToken.name).where(ApiToken.revoked_at.is_(None))))
        if set(tokens) == set(wanted) and all(f"demo-{key}" in names for key in tokens):
            return tokens
    tokens: dict[str, Any] = {}
    with gw.store.transaction() as session:
        for key in wanted:
            role, _, partner_id = key.partition(":")
            _, plain = create_token(session, f"demo-{key}", role, partner_id=partner_id or None,
                                    actor=audit.Actor.system("demo"))
            tokens[key] = plain
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle, indent=2)
    return tokens
