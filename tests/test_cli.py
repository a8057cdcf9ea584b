"""The ``gateway`` command as an operator uses it, including ``gateway demo``."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.conftest import test_env
from tests.helpers import eventually
from tests.servers import ROOT, ProcessServer, free_port


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_db_upgrade_tokens_and_plugins(tmp_path):
    env = test_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    assert run(env, "db", "upgrade").returncode == 0
    created = run(env, "tokens", "create", "ops", "--role", "beheerder")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("sk_")
    listed = run(env, "tokens", "list")
    assert "ops" in listed.stdout and token not in listed.stdout
    wrong = run(env, "tokens", "create", "x", "--role", "koning")
    assert wrong.returncode == 1 and "role must be one of" in wrong.stdout
    plugins = run(env, "plugins")
    assert plugins.returncode == 0
    for name in ("care4", "veiligthuis", "wmo", "police", "webhook"):
        assert name in plugins.stdout


def test_partners_can_be_added_and_listed_from_the_cli(tmp_path):
    env = test_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    added = run(env, "partners", "add", "gemeente-demostad", "webhook", "Gemeente Demostad", "http://127.0.0.1:9/x",
                "--identifier", "gemeentecode=9999", "--config", '{"token": "geheim-123"}', "--serves", "region=west")
    assert added.returncode == 0, added.stdout + added.stderr
    listed = run(env, "partners", "list")
    assert "gemeente-demostad" in listed.stdout and "geheim-123" not in listed.stdout
    again = run(env, "partners", "add", "gemeente-demostad", "webhook", "Dubbel", "http://127.0.0.1:9/x")
    assert again.returncode == 1 and "already registered" in again.stdout


def test_gateway_demo_serves_with_simulators_and_seeded_partners(tmp_path):
    simulator_port = free_port()
    env = {"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_LOG_LEVEL": "WARNING"}
    demo = ProcessServer(env, command=[sys.executable, "-m", "gateway.cli", "demo", "--simulator-port", str(simulator_port)],
                         log=tmp_path / "demo.log")
    demo.command += ["--port", str(demo.port)]
    with demo:
        tokens = json.loads((tmp_path / "demo-tokens.json").read_text())
        assert {"beheerder", "hulpverlener", "privacy", "partner:vt-utrecht", "partner:care4-ecd"} <= set(tokens)
        headers = {"Authorization": f"Bearer {tokens['hulpverlener']}"}
        partners = httpx.get(f"{demo.url}/api/v1/partners", headers=headers).json()
        assert "wijkteam-demo" in {p["id"] for p in partners}
        sent = httpx.post(f"{demo.url}/api/v1/routes/webhook.notice/messages", headers=headers, json={
            "reference": "demo-1", "category": "signaal", "text": "Fictief", "client_id": "DEMO-0001",
            "partner": "wijkteam-demo"})
        assert sent.status_code == 202
        refused = httpx.post(f"{demo.url}/api/v1/routes/webhook.notice/messages", headers=headers, json={
            "reference": "demo-2", "category": "signaal", "client_id": "DEMO-0002", "partner": "wijkteam-demo"})
        assert refused.status_code == 403 and refused.json()["missing_basis"] == ["toestemming", "vitaal_belang"]
        # The partner simulators work together: a melding drafted from the Care4 simulator's dossier.
        draft = httpx.post(f"{demo.url}/api/v1/veiligthuis/drafts", headers=headers, json={"dossier_id": "D-0002"}).json()
        assert draft["region"]["partner_id"] == "vt-utrecht" and draft["suggested_basis"] == "toestemming"
        eventually(lambda: httpx.get(f"http://127.0.0.1:{simulator_port}/sink/_stats").json()["unique"] == 1)
    # Started again on the same data: nothing is seeded twice and the tokens still work.
    with ProcessServer(env, port=demo.port, command=demo.command, log=tmp_path / "demo.log") as again:
        assert httpx.get(f"{again.url}/api/v1/partners", headers=headers).status_code == 200
