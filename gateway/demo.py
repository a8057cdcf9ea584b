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


def _seed_demo_consent(session: Any, gw: Gateway, actor: audit.Actor) -> None:
    """The fictional demo client has consented to notices to the generic webhook partners."""
    from gateway.core.consent import ConsentIn, record
    from gateway.core.models import Consent

    subject = gw.pseudonymise(DEMO_CLIENT)
    if session.scalar(select(Consent.id).where(Consent.client == subject, Consent.status == "active")) is None:
        record(session, ConsentIn(client_id=DEMO_CLIENT, partner_kind="webhook", purpose="signalering",
                                  evidence_reference="demo: fictief toestemmingsformulier"), subject, actor)


def demo_tokens(gw: Gateway, path: Path) -> dict[str, str]:
    """One token per human role for the demo, kept (owner-only) in the data directory."""
    if path.exists():
        tokens = json.loads(path.read_text())
        with gw.store.reading() as session:
            names = set(session.scalars(select(ApiToken.name).where(ApiToken.revoked_at.is_(None))))
        if all(f"demo-{role}" in names for role in tokens):
            return tokens
    tokens: dict[str, Any] = {}
    with gw.store.transaction() as session:
        for role in DEMO_ROLES:
            _, plain = create_token(session, f"demo-{role}", role, actor=audit.Actor.system("demo"))
            tokens[role] = plain
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle, indent=2)
    return tokens
