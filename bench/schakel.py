"""Schakel as the bench runs it: ``gateway serve`` processes on a fresh SQLite file or PostgreSQL
database, configured the way an administrator would (partners, tokens, a recorded consent).

Settings are the shipped defaults except what the bench must set: the database, the data
directory, the three secrets (``GATEWAY_ENVIRONMENT=production`` refuses to start without them),
the port, and the enabled plugins (the two it exercises). Logs stay at the default level (INFO,
JSON) and go to a file.
"""

from __future__ import annotations

import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from procs import Proc, free_port, wait_for

POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
JSON_CLIENT = "C-1001"  # the fictional ECD client number in bench/messages/notice.json
JSON_PARTNER = "bench-partner"
MUNICIPALITY = "gemeente-diemen"  # Afzender 0384 in bench/messages/wmo301.xml


def gateway_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "GATEWAY_ENVIRONMENT": "production",
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "GATEWAY_PSEUDONYM_KEY": secrets.token_urlsafe(32),
        "GATEWAY_AUDIT_SIGNING_KEY": secrets.token_urlsafe(32),
        # The plugins the bench exercises (the webhook connector is built in and always loads).
        "GATEWAY_ENABLED_PLUGINS": "care4,wmo",
    }


def gateway(env: dict[str, str]) -> Any:
    """The runtime a process started with ``env`` would build (for setting up and reading)."""
    from gateway.core.runtime import Gateway
    from gateway.settings import load_settings

    values = {key.removeprefix("GATEWAY_").lower(): value for key, value in env.items() if key.startswith("GATEWAY_")}
    return Gateway(load_settings(**values))


def create_postgres_database() -> str:
    import psycopg

    name = f"schakel_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def configure(env: dict[str, str], sink_url: str, care4_url: str) -> dict[str, str]:
    """Migrate, register the partners, record the consent; returns the tokens the load uses."""
    from gateway.core import audit
    from gateway.core import partners as partner_registry
    from gateway.core.auth import create_token
    from gateway.core.consent import ConsentIn, record
    from gateway.core.store import upgrade
    from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET

    gw = gateway(env)
    upgrade(gw.store.url)
    actor = audit.Actor.system("bench")
    partners = [
        partner_registry.PartnerIn(id=JSON_PARTNER, connector_type="webhook", name="Bench partner (webhook)",
                                   endpoint=sink_url + "/inbox"),
        partner_registry.PartnerIn(id="care4-ecd", connector_type="care4", name="Care4 (simulator)", endpoint=care4_url,
                                   config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        # Its endpoint is never called here: a WMO301's retour is the answer to the request itself.
        partner_registry.PartnerIn(id=MUNICIPALITY, connector_type="wmo", name="Gemeente Diemen (fictief)",
                                   endpoint=sink_url + "/gemeente", identifiers={"gemeentecode": "0384"},
                                   routing={"gemeentecode": ["0384"]}, config={"aanbieder_agb": "42420001"}),
    ]
    with gw.store.transaction() as session:
        for data in partners:
            partner_registry.create(session, data, gw.registry.connectors[data.connector_type].manifest, gw.box, actor)
        _, worker = create_token(session, "bench-hulpverlener", "hulpverlener", actor=actor)
        _, municipality = create_token(session, "bench-gemeente", "partner", partner_id=MUNICIPALITY, actor=actor)
        _, privacy = create_token(session, "bench-privacy", "privacy", actor=actor)
    with gw.store.transaction() as session:
        record(session, ConsentIn(client_id=JSON_CLIENT, partner_kind="webhook", purpose="signalering",
                                  evidence_reference="bench: fictief toestemmingsformulier"),
               gw.pseudonymise(JSON_CLIENT), actor)
    gw.store.dispose()
    return {"hulpverlener": worker, "gemeente": municipality, "privacy": privacy}


@dataclass
class SchakelRun:
    """N ``gateway serve`` processes on one database."""

    backend: str  # sqlite | postgres
    processes: int
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    _engine: Any = None

    @property
    def name(self) -> str:
        return f"schakel-{self.backend}-{self.processes}"

    @property
    def urls(self) -> list[str]:
        return [proc.env["GATEWAY_PUBLIC_BASE_URL"] for proc in self.procs]

    def start(self, sink_url: str, care4_url: str) -> "SchakelRun":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = (f"sqlite:///{self.workdir / 'schakel.db'}" if self.backend == "sqlite"
                             else create_postgres_database())
        self.env = gateway_env(self.database_url, self.workdir)
        self.tokens = configure(self.env, sink_url, care4_url)
        for i in range(self.processes):
            port = free_port()
            self.procs.append(Proc(f"{self.name}-{i}", [sys.executable, "-m", "gateway.cli", "serve"],
                                   {**self.env, "GATEWAY_PORT": str(port), "GATEWAY_HOST": "127.0.0.1",
                                    "GATEWAY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
                                   self.workdir / f"gateway-{i}.log").start())
        for proc in self.procs:
            wait_for(proc.env["GATEWAY_PUBLIC_BASE_URL"] + "/ready")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        if self._engine is not None:
            self._engine.dispose()
        if self.backend == "postgres" and self.database_url:
            drop_postgres_database(self.database_url)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy import create_engine, text

        if self._engine is None:
            url = self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
            self._engine = create_engine(url)
        with self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]

    def wait_drained(self, timeout: float) -> bool:
        """Until every exchange has reached a final state and the outbox is empty, twice a second
        apart: a request still in flight when wrk stopped may commit its exchange just after."""
        deadline = time.monotonic() + timeout
        settled = 0
        while time.monotonic() < deadline:
            left = self.query("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM exchanges "
                              "WHERE state NOT IN ('delivered', 'acknowledged', 'dead', 'refused', 'parked'))")[0][0]
            settled = settled + 1 if left == 0 else 0
            if settled == 2:
                return True
            time.sleep(0.5 if left == 0 else 0.25)
        return False
