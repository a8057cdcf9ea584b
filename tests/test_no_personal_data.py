"""No personal data in logs, traces, metrics, error answers, dead-letter reasons or tracebacks.

Fictional clients are seeded and sent through every flow — delivered, refused, invalid, retried,
dead-lettered, crashed — and everything the gateway emitted is searched for their BSNs, names,
addresses, phone numbers and e-mail addresses.
"""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import telemetry
from gateway.app import create_app
from gateway.core.pseudonyms import elfproef
from tests.conftest import LiveGateway, make_settings
from tests.helpers import eventually, exchange_state, sink_control
from tests.plugins import canary_crash
from tests.servers import ThreadServer

CLIENTS = [
    {"bsn": "111222333", "name": "Fenna Kanarie", "address": "Kanariestraat 13", "phone": "0612345678",
     "email": "fenna.kanarie@example.org"},
    {"bsn": "123456782", "name": "Joris Vinkenoog", "address": "Vinkenlaan 7", "phone": "+31 20 7654321",
     "email": "joris.vinkenoog@example.org"},
]
CANARIES = [value for client in CLIENTS for value in client.values()] + ["Kanarie", "Vinkenoog", "0207654321"]


@pytest.fixture(scope="module")
def telemetry_capture():
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    settings = make_settings("sqlite:///:memory:", __import__("pathlib").Path("/tmp"))
    provider = telemetry.configure(settings, extra=SimpleSpanProcessor(spans), metric_reader=reader)
    if provider is None:
        pytest.skip("telemetry was already configured in this process")
    return spans, reader


def notice_for(client: dict, reference: str, partner: str = "partner-a") -> dict:
    return {"reference": reference, "category": "signaal", "client_id": client["bsn"], "partner": partner,
            "text": f"{client['name']} woont op {client['address']}, tel {client['phone']}, {client['email']}"}


def test_no_canary_appears_anywhere_the_gateway_writes(database_url, tmp_path, capfd, telemetry_capture):
    assert all(elfproef(c["bsn"]) for c in CLIENTS)
    spans, reader = telemetry_capture
    settings = make_settings(database_url, tmp_path, log_level="DEBUG")
    answers: list[str] = []
    from gateway.builtin.webhook.simulator import create_app as create_sink

    with ThreadServer(create_app(settings, plugins=[canary_crash])) as server, \
            ThreadServer(create_sink(), ready_path="/_stats") as sink:
        live = LiveGateway(server)
        live.add_partner("partner-a", sink.url + "/inbox", consenting_clients=(CLIENTS[0]["bsn"],))
        live.add_partner("partner-crash", "http://127.0.0.1:9/never", connector_type="crashing",
                         consenting_clients=(CLIENTS[0]["bsn"],))
        with live.client("hulpverlener") as worker, live.client("privacy") as officer, live.client() as admin:
            def keep(response: httpx.Response) -> httpx.Response:
                answers.append(response.text)
                return response

            post = lambda route, body, **kw: keep(worker.post(f"/api/v1/routes/{route}/messages", json=body, **kw))  # noqa: E731
            fenna, joris = CLIENTS
            # delivered after retries
            sink_control(sink.url, mode="status", status=503, count=2)
            delivered = post("webhook.notice", notice_for(fenna, "c-1")).json()["exchange_id"]
            eventually(lambda: exchange_state(worker, delivered) == "delivered")
            # refused: no consent for Joris
            assert post("webhook.notice", notice_for(joris, "c-2")).status_code == 403
            # invalid: an unknown field and an over-long one, both full of personal data
            assert post("webhook.notice", {**notice_for(fenna, "c-3"), "adres": fenna["address"]}).status_code == 422
            assert post("webhook.notice", notice_for(fenna, fenna["name"] * 10)).status_code == 422
            assert keep(worker.post("/api/v1/routes/webhook.notice/messages", content=fenna["name"].encode(),
                                    headers={"Content-Type": "application/json"})).status_code == 422
            assert keep(worker.post("/api/v1/consents", json={"client_id": fenna["bsn"] * 10, "purpose": "x"})).status_code == 422
            # dead letter from a partner that quotes the message back in its error
            sink_control(sink.url, mode="status", status=422, echo=True)
            dead = post("webhook.notice", notice_for(fenna, "c-4")).json()["exchange_id"]
            eventually(lambda: exchange_state(worker, dead) == "dead")
            sink_control(sink.url, mode="ok")
            # a connector that raises with personal data in the message
            crashed = post("crashing.notice", notice_for(fenna, "c-5", partner="partner-crash"), headers={"X-Correlation-ID": "c-5"}).json()["exchange_id"]
            eventually(lambda: worker.get(f"/api/v1/exchanges/{crashed}").json()["attempts"] >= 2)
            # an endpoint that raises with personal data in its message and locals
            crash = keep(httpx.post(server.url + "/partners/canary/crash"))
            assert crash.status_code == 500 and crash.json()["type"] == "/problems/internal-error"
            # every reading path a person uses
            for path in ("/api/v1/exchanges", f"/api/v1/exchanges/{dead}", f"/api/v1/exchanges/{crashed}"):
                keep(admin.get(path))
            keep(admin.get("/api/v1/dead-letters"))
            keep(officer.get("/api/v1/audit", params={"limit": 1000}))
            keep(officer.post("/api/v1/access-report", json={"client_id": fenna["bsn"]}))
            keep(officer.get("/api/v1/audit/export", params={"format": "fhir"}))
            dead_reason = admin.get(f"/api/v1/exchanges/{dead}").json()["last_error"]
            crash_reason = admin.get(f"/api/v1/exchanges/{crashed}").json()["last_error"]
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    span_text = json.dumps([json.loads(span.to_json()) for span in spans.get_finished_spans()])
    metrics_data = reader.get_metrics_data()
    metric_text = metrics_data.to_json() if metrics_data is not None else ""
    assert "exchange_submitted" in logs and "delivery_attempt" in logs and "unhandled_error" in logs
    assert "pipeline.persist" in span_text and "delivery.attempt" in span_text
    assert "schakel.exchange.transitions" in metric_text
    assert dead_reason == "HTTP 422 from partner" and crash_reason == "connector error: ValueError (outcome unknown)"
    places = {"logs and tracebacks": logs, "spans": span_text, "metrics": metric_text, "answers": "\n".join(answers),
              "dead-letter reasons": f"{dead_reason}\n{crash_reason}"}
    leaks = [f"{canary!r} in {where}" for where, text in places.items() for canary in CANARIES if canary in text]
    assert not leaks, leaks
