"""Fixtures: a database per test (SQLite, and PostgreSQL where a server answers), live servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from gateway.app import create_app
from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.auth import create_token
from gateway.core.runtime import Gateway
from gateway.settings import Settings, load_settings
from tests.servers import ThreadServer

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_answers() -> str | None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:  # no server, wrong credentials: the reason goes into the skip message
        return f"{type(exc).__name__}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_answers()
    if problem is not None:
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_URL} ({problem}); PostgreSQL tests skipped")
    return POSTGRES_URL


def _fresh_postgres_database(server_url: str) -> Iterator[str]:
    import psycopg

    name = f"schakel_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    yield from _fresh_postgres_database(postgres_server)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        yield from _fresh_postgres_database(server)


def test_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a gateway process: fast retries and short leases for tests."""
    env = {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "GATEWAY_PSEUDONYM_KEY": "test-pseudonym-key-" + uuid.uuid4().hex,
        "GATEWAY_AUDIT_SIGNING_KEY": "test-audit-key-" + uuid.uuid4().hex,
        "GATEWAY_WORKER_POLL_INTERVAL": "0.05",
        "GATEWAY_RETRY_SCALE": "0.01",
        "GATEWAY_LEASE_SECONDS": "4",
        "GATEWAY_ATTEMPT_DEADLINE_SECONDS": "2",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


test_env.__test__ = False  # type: ignore[attr-defined]


def settings_from_env(env: dict[str, str], **overrides: Any) -> Settings:
    """The settings a gateway process started with ``env`` would read."""
    values: dict[str, Any] = {key.removeprefix("GATEWAY_").lower(): value for key, value in env.items()}
    values.update(overrides)
    return load_settings(**values)


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return settings_from_env(test_env(database_url, data_dir), **overrides)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


CLIENT = "C-1001"  # the fictional client of the generic notices in tests.helpers.notice


def grant_consent(gw: Gateway, client_id: str, partner_id: str | None = None, partner_kind: str | None = None,
                  purpose: str = "signalering") -> str:
    from gateway.core.consent import ConsentIn, record

    with gw.store.transaction() as session:
        row = record(session, ConsentIn(client_id=client_id, partner_id=partner_id, partner_kind=partner_kind,
                                        purpose=purpose, evidence_reference="toestemmingsformulier (fictief)"),
                     gw.pseudonymise(client_id), audit.Actor("test-hulpverlener", "hulpverlener"))
        return row.id


class LiveGateway:
    """A running gateway (real HTTP) plus direct access to its runtime for setting up and checking."""

    def __init__(self, server: ThreadServer) -> None:
        self.server = server
        self.url = server.url
        self.gw: Gateway = server.app.state.gateway
        self.tokens: dict[str, str] = {}

    def token(self, role: str, partner_id: str | None = None) -> str:
        key = f"{role}:{partner_id}"
        if key not in self.tokens:
            with self.gw.store.transaction() as session:
                _, plain = create_token(session, f"test-{role}-{partner_id or 'staff'}", role, partner_id=partner_id)
            self.tokens[key] = plain
        return self.tokens[key]

    def client(self, role: str = "beheerder", partner_id: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token(role, partner_id)}"},
                            timeout=30)

    def add_partner(self, partner_id: str, endpoint: str, connector_type: str = "webhook",
                    consenting_clients: tuple[str, ...] = (CLIENT,), **fields: Any) -> None:
        """Register a partner; the fictional clients named have consented to notices to it."""
        data = partner_registry.PartnerIn(id=partner_id, connector_type=connector_type, name=fields.pop("name", partner_id),
                                          endpoint=endpoint, **fields)
        with self.gw.store.transaction() as session:
            partner_registry.create(session, data, self.gw.registry.connectors[connector_type].manifest, self.gw.box,
                                    audit.Actor.system("test"))
        for client in consenting_clients:
            grant_consent(self.gw, client, partner_id=partner_id)


@pytest.fixture
def live_gateway(settings: Settings) -> Iterator[LiveGateway]:
    with ThreadServer(create_app(settings)) as server:
        yield LiveGateway(server)


@pytest.fixture
def sink() -> Iterator[ThreadServer]:
    from gateway.builtin.webhook.simulator import create_app as create_sink

    with ThreadServer(create_sink(), ready_path="/_stats") as server:
        yield server
