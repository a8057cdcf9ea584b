"""Real gateway processes: killed with SIGKILL mid-delivery, and three side by side on PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.auth import create_token
from gateway.core.models import Exchange
from gateway.core.runtime import Gateway
from gateway.core.store import upgrade
from sqlalchemy import func, select
from tests.conftest import CLIENT, grant_consent, settings_from_env, test_env
from tests.helpers import eventually, notice, sink_control, sink_stats
from tests.servers import ProcessServer, sink_process

pytestmark = pytest.mark.slow


def _prepare(database_url: str, data_dir: Path, sink_url: str) -> tuple[dict[str, str], str, Gateway]:
    env = test_env(database_url, data_dir)
    settings = settings_from_env(env)
    upgrade(settings.sqlalchemy_url())
    gw = Gateway(settings)
    with gw.store.transaction() as session:
        partner_registry.create(session, partner_registry.PartnerIn(
            id="partner-a", connector_type="webhook", name="Sink", endpoint=sink_url + "/inbox"),
            gw.registry.connectors["webhook"].manifest, gw.box, audit.Actor.system("test"))
        _, token = create_token(session, "load", "hulpverlener")
    grant_consent(gw, CLIENT, partner_kind="webhook")
    return env, token, gw


def _submit_all(urls: list[str], token: str, count: int, prefix: str) -> list[str]:
    # One client for all threads: a new httpx client per request costs more CPU than the gateway.
    client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                          limits=httpx.Limits(max_connections=32))

    def one(i: int) -> str:
        url = urls[i % len(urls)]
        for _ in range(50):
            try:
                response = client.post(f"{url}/api/v1/routes/webhook.notice/messages", json=notice(f"{prefix}-{i}"),
                                       headers={"Idempotency-Key": f"{prefix}-{i}"})
                if response.status_code == 202:
                    return response.json()["exchange_id"]
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"message {i} was never accepted")

    with client, concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(count)))


def _states(gw: Gateway) -> dict[str, int]:
    with gw.store.reading() as session:
        return dict(session.execute(select(Exchange.state, func.count()).group_by(Exchange.state)).all())


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_gateway_killed_with_sigkill_mid_delivery_loses_and_doubles_nothing(backend, tmp_path, request):
    database_url = (f"sqlite:///{tmp_path / 'gateway.db'}" if backend == "sqlite"
                    else request.getfixturevalue("postgres_url"))
    count = 300
    with sink_process(tmp_path / "sink.log") as sink:
        env, token, gw = _prepare(database_url, tmp_path, sink.url)
        # Every answer comes late, so deliveries are in flight when the process dies.
        sink_control(sink.url, mode="late", delay=0.3)
        gateway = ProcessServer(env, log=tmp_path / "gateway.log").start()
        try:
            ids = _submit_all([gateway.url], token, count, "kill")
            for _ in range(3):
                eventually(lambda: sink_stats(sink.url)["requests"] > 0)
                gateway.kill9()
                gateway.start()
            sink_control(sink.url, mode="ok")
            eventually(lambda: _states(gw).get("delivered", 0) == count, timeout=120)
            stats = sink_stats(sink.url)
        finally:
            gateway.stop()  # the last one started; it outlived every run before this line was here
    assert len(set(ids)) == count
    assert _states(gw) == {"delivered": count}
    assert stats["unique"] == count  # every message took effect exactly once
    gw.store.dispose()


@pytest.mark.postgres
def test_three_gateways_on_one_postgresql_deliver_2000_exchanges_exactly_once(postgres_url, tmp_path):
    count = 2000
    with sink_process(tmp_path / "sink.log") as sink:
        env, token, gw = _prepare(postgres_url, tmp_path, sink.url)
        sink_control(sink.url, random={"status_503": 0.05, "late": 0.02}, delay=2.5)
        gateways = [ProcessServer(env, log=tmp_path / f"gateway-{i}.log").start() for i in range(3)]
        try:
            ids = _submit_all([g.url for g in gateways], token, count, "multi")
            sink_control(sink.url, mode="ok")
            eventually(lambda: _states(gw).get("delivered", 0) == count, timeout=240)
            stats = sink_stats(sink.url)
        finally:
            for gateway in gateways:
                gateway.stop()
    assert len(set(ids)) == count
    assert _states(gw) == {"delivered": count}
    assert stats["unique"] == count
    # Faults made the gateways retry; the simulator absorbed those duplicates by Idempotency-Key.
    print(f"\nduplicates absorbed by the simulator: {stats['duplicates']} of {stats['requests']} requests")
    gw.store.dispose()
