"""Only mapped fields leave; a confidential field leaves only where a mapping names it explicitly
and the exchange's basis allows — every other attempt is withheld and audited."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import httpx
import pytest

from gateway.app import create_app
from gateway.core.plugins import PluginError
from gateway.core.runtime import DEFAULT_MAPPINGS_DIR, Gateway
from tests.conftest import LiveGateway, make_settings
from tests.helpers import eventually, exchange_state
from tests.plugins import confidential
from tests.servers import ThreadServer

SECRET_ADDRESS = "Geheime Opvanglaan 1, Schuilplaats"


@pytest.fixture
def mappings(tmp_path):
    directory = tmp_path / "mappings"
    shutil.copytree(DEFAULT_MAPPINGS_DIR, directory)
    (directory / "shelter_notice.yaml").write_text("""
id: shelter_notice
version: 1
message_type: shelter_notice
fields:
  - {to: reference, from: reference, required: true}
  - {to: address, from: client.address}
""")
    (directory / "shelter_urgent.yaml").write_text("""
id: shelter_urgent
version: 1
message_type: shelter_notice
fields:
  - {to: reference, from: reference, required: true}
  - {to: address, from: client.address, confidential: true, bases: [vitaal_belang]}
""")
    return directory


def test_a_confidential_field_is_withheld_unless_named_and_allowed(database_url, tmp_path, mappings, sink):
    settings = make_settings(database_url, tmp_path, mappings_dir=mappings)
    message = {"reference": "s-1", "client_id": "C-1001", "partner": "partner-a", "client": {"address": SECRET_ADDRESS}}
    evidence = {"vitaal_belang": {"decided_by": "teamleider", "decided_at": datetime.now(timezone.utc).isoformat(),
                                  "reason": "acuut gevaar"}}
    with ThreadServer(create_app(settings, plugins=[confidential])) as server:
        live = LiveGateway(server)
        live.add_partner("partner-a", sink.url + "/inbox")
        with live.client("hulpverlener") as worker:
            plain = worker.post("/api/v1/routes/shelter.notice/messages", json=message).json()
            not_urgent = worker.post("/api/v1/routes/shelter.urgent/messages", json=message).json()
            urgent = worker.post("/api/v1/routes/shelter.urgent/messages", headers={"Schakel-Legal-Basis": "vitaal_belang"},
                                 json={**message, "reference": "s-3", "evidence": evidence}).json()
            for answer in (plain, not_urgent, urgent):
                eventually(lambda: exchange_state(worker, answer["exchange_id"]) == "delivered")
        with live.client("privacy") as officer:
            withheld = officer.get("/api/v1/audit", params={"event_type": "field.withheld"}).json()["items"]
    # Named without `confidential: true`: withheld. Named, but the basis is consent: withheld.
    for answer in (plain, not_urgent):
        assert answer["fields"] == ["reference"]
        assert answer["withheld"] == [{"field": "client.address",
                                       "reason": "confidential field not allowed by this mapping and basis"}]
    assert urgent["fields"] == ["address", "reference"] and urgent["withheld"] == []
    assert sorted(e["exchange_id"] for e in withheld) == sorted([plain["exchange_id"], not_urgent["exchange_id"]])
    assert all(e["fields"] == ["client.address"] and SECRET_ADDRESS not in str(e) for e in withheld)
    bodies = {item["body"] for item in httpx.get(sink.url + "/_received").json()["items"].values()}
    assert sum(SECRET_ADDRESS in body for body in bodies) == 1


def test_startup_names_a_broken_mapping_file_and_field(tmp_path, mappings):
    (mappings / "webhook_notice.yaml").write_text("id: webhook_notice\nversion: 1\nmessage_type: notice\n"
                                                  "fields:\n  - {to: x, from: 'not a path'}\n")
    with pytest.raises(PluginError, match=r"mapping webhook_notice.yaml: field fields.0.from"):
        Gateway(make_settings(f"sqlite:///{tmp_path}/g.db", tmp_path, mappings_dir=mappings))
    (mappings / "webhook_notice.yaml").unlink()
    with pytest.raises(PluginError, match=r"route 'webhook.notice' names mapping 'webhook_notice'.*does not exist"):
        Gateway(make_settings(f"sqlite:///{tmp_path}/g.db", tmp_path, mappings_dir=mappings))
