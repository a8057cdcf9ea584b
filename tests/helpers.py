"""Small waits and builders shared by the tests."""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")


def notice(reference: str, partner: str = "partner-a", **extra: Any) -> dict[str, Any]:
    return {"reference": reference, "category": "signaal", "text": "Fictieve melding", "client_id": "C-1001",
            "partner": partner, **extra}


def submit(client: httpx.Client, body: dict[str, Any], key: str | None = None, route: str = "webhook.notice") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/routes/{route}/messages", json=body, headers=headers)


def exchange_state(client: httpx.Client, exchange_id: str) -> str:
    return client.get(f"/api/v1/exchanges/{exchange_id}").json()["state"]


def sink_stats(sink_url: str) -> dict[str, int]:
    return httpx.get(f"{sink_url}/_stats", timeout=10).json()


def sink_control(sink_url: str, **settings: Any) -> None:
    httpx.post(f"{sink_url}/_control", json=settings, timeout=10).raise_for_status()


def ordered_notice_route(tmp_path: Any) -> Any:
    """A routes file with the webhook notice route made ordered: one message per client at a time."""
    import json

    routes = tmp_path / "routes.yaml"
    routes.write_text(json.dumps({"routes": [{
        "id": "webhook.notice-ordered", "message_type": "notice", "target": "webhook", "purpose": "signalering",
        "legal_bases": ["toestemming"], "mapping": "webhook_notice", "ordered": True}]}))
    return routes
