"""docker-compose.yml configures the gateway only through variables its settings read."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def known_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"GATEWAY_{name.upper()}")
    return names


def test_every_variable_set_for_a_gateway_service_is_a_setting():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gateway_services = {name: svc for name, svc in compose["services"].items() if svc.get("build") == "."}
    assert {"gateway-1", "gateway-2", "simulators"} <= set(gateway_services)
    known = known_variables()
    for name, service in gateway_services.items():
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_the_compose_file_runs_two_gateways_on_postgresql_with_a_collector():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("gateway-1", "gateway-2"):
        env = services[name]["environment"]
        assert env["GATEWAY_DATABASE_URL"].startswith("postgresql://")
        assert env["GATEWAY_ENVIRONMENT"] == "production"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector")
    assert "otel-collector" in services and "postgres" in services


def test_the_dockerfile_sets_only_known_variables():
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ENV ")]
    names = {pair.split("=", 1)[0] for line in lines for pair in line[4:].split()}
    assert names <= known_variables()
