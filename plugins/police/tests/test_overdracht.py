"""A worker hands a client over to a municipality: a structured handover from the dossier, with her
consent, announced through a Notificaties API notification and fetched by the municipality with its
own token — exactly the mapped fields, never the secret shelter address — and every step audited."""

from __future__ import annotations

import json

import httpx

from plugins.police.tests.conftest import FIXTURES
from tests.conftest import grant_consent
from tests.helpers import eventually, exchange_state

SANNE = FIXTURES["clients"]["C-0001"]  # at a secret shelter address, with a secret phone number
NOTIFICATION_KEYS = {"kanaal", "hoofdObject", "resource", "resourceUrl", "actie", "aanmaakdatum", "kenmerken"}


def leaves(value, prefix=""):
    """The dotted names of every value in a document, lists as ``name[]``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{prefix}{key}.")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            yield from leaves(item, prefix.rstrip(".") + "[].")
    else:
        yield prefix.rstrip(".")


def leaf_names(names):
    """Mapped names without the lists whose items are named too (``goals`` beside ``goals[].domain``)."""
    return {name for name in names if not any(other.startswith(name + "[].") for other in names)}


def hand_over(world, dossier_id="D-0001", partner_id="gemeente-amsterdam", **extra):
    with world.live.client("hulpverlener") as worker:
        return worker.post("/api/v1/police/overdrachten", json={"dossier_id": dossier_id, "partner_id": partner_id,
                                                                **extra})


def audit_of(world, exchange_id):
    with world.live.client("privacy") as officer:
        return officer.get("/api/v1/audit", params={"exchange": exchange_id}).json()["items"]


def test_a_handover_is_announced_fetched_with_exactly_the_mapped_fields_and_confirmed(world):
    consent_id = grant_consent(world.live.gw, SANNE["bsn"], partner_id="gemeente-amsterdam", purpose="warme_overdracht")
    sent = hand_over(world, toelichting="Kennismaking met de wijkcoach is gepland (fictief).")
    assert sent.status_code == 202, sent.text
    exchange_id = sent.json()["exchange_id"]
    assert {w["field"] for w in sent.json()["withheld"]} == {"overdracht.client.adres", "overdracht.client.telefoon"}

    with world.live.client() as admin:
        eventually(lambda: exchange_state(admin, exchange_id) == "acknowledged")
    received = world.received()
    (announced,) = received["notifications"]
    notification = announced["notification"]
    assert announced["partner"] == "gemeente-amsterdam" and set(notification) == NOTIFICATION_KEYS
    url = f"{world.live.url}/partners/police/overdrachten/{exchange_id}"
    assert (notification["kanaal"], notification["resource"], notification["actie"]) == ("overdrachten", "overdracht", "create")
    assert notification["hoofdObject"] == notification["resourceUrl"] == url
    assert SANNE["last_name"] not in json.dumps(notification) and SANNE["bsn"] not in json.dumps(notification)

    (fetched,) = received["fetched"]
    assert fetched["status"] == 200 and fetched["url"] == url
    handover = fetched["body"]
    fields_out = sent.json()["fields"]
    mapped = {name.removeprefix("overdracht.") for name in fields_out if name.startswith("overdracht.")}
    assert set(leaves(handover)) == leaf_names(mapped)
    dossier = FIXTURES["dossiers"]["D-0001"]
    assert handover["client"] == {"voornaam": "Sanne", "achternaam": "Kanariebos", "geboortedatum": "1991-03-14",
                                  "bsn": SANNE["bsn"]}
    assert [g["domein"] for g in handover["doelen_bereikt"]] == [g["domain"] for g in dossier["goals"] if g["reached"]]
    assert handover["lopende_risicos"][0]["niveau"] == "hoog"
    assert handover["veiligheidsafspraken"][0]["afspraak"].startswith("Geen contact met de andere partij")
    assert handover["contactpersoon"]["naam"] == dossier["worker"]["name"]
    everything = json.dumps(received)
    for secret in (SANNE["address"]["street"], SANNE["address"]["postcode"], SANNE["phone"]):
        assert secret not in everything

    events = audit_of(world, exchange_id)
    announced_event = next(e for e in events if e["event_type"] == "exchange.delivered")
    fetch_event = next(e for e in events if e["event_type"] == "exchange.fetched")
    receipt_event = next(e for e in events if e["event_type"] == "exchange.acknowledged")
    for event in (announced_event, fetch_event):
        assert (event["legal_basis"], event["consent_id"], event["partner_id"]) == ("toestemming", consent_id,
                                                                                    "gemeente-amsterdam")
        assert event["purpose_of_use"] == "warme_overdracht"
    assert any(name.startswith("notificatie.") for name in announced_event["fields"])
    assert fetch_event["fields"] == sorted(n for n in fields_out if n.startswith("overdracht."))
    assert fetch_event["user_id"] == "test-partner-gemeente-amsterdam" and fetch_event["action_code"] == "R"
    assert fetch_event["payload_digest"] and fetch_event["seq"] < receipt_event["seq"]
    assert "ZAAK-00001" in receipt_event["detail"]

    with world.live.client("hulpverlener") as worker:
        (listed,) = worker.get("/api/v1/police/overdrachten").json()
    assert listed["dossier_id"] == "D-0001" and listed["state"] == "acknowledged"
    assert listed["fetched_at"] and listed["receipt"]["zaaknummer"] == "ZAAK-00001"


def test_without_the_clients_consent_nothing_is_announced(world):
    refused = hand_over(world)
    assert refused.status_code == 403 and refused.json()["missing_basis"] == ["toestemming"]
    assert "no active consent of the client for partner gemeente-amsterdam" in refused.json()["detail"]
    police = hand_over(world, partner_id="politie-utrecht")
    assert police.status_code == 422 and police.json()["type"] == "/problems/validation-failed"
    assert world.received()["notifications"] == []


def test_only_the_receiver_fetches_and_a_consent_withdrawn_before_the_fetch_stops_it(world):
    world.control(fetch=False)  # the municipality is slow to fetch
    consent_id = grant_consent(world.live.gw, SANNE["bsn"], partner_id="gemeente-amsterdam", purpose="warme_overdracht")
    exchange_id = hand_over(world).json()["exchange_id"]
    with world.live.client() as admin:
        eventually(lambda: exchange_state(admin, exchange_id) == "delivered")
    path = f"/partners/police/overdrachten/{exchange_id}"
    with world.partner("gemeente-nieuwegein") as other:
        assert other.get(path).status_code == 404
        assert other.post(path + "/ontvangst", json={"ontvangen_op": "2026-11-22T10:00:00+01:00",
                                                     "ontvangen_door": "Team Toegang"}).status_code == 404
    with world.partner("gemeente-amsterdam") as receiver:
        early = receiver.post(path + "/ontvangst", json={"ontvangen_op": "2026-11-22T10:00:00+01:00",
                                                         "ontvangen_door": "Team Toegang"})
        assert early.status_code == 409 and "Fetch the handover" in early.json()["detail"]
        with world.live.client("hulpverlener") as worker:
            withdrawn = worker.post(f"/api/v1/consents/{consent_id}/withdraw", json={"reason": "Cliënt trekt in (fictief)."})
            assert withdrawn.status_code == 200
        late = receiver.get(path)
    assert late.status_code == 403 and late.json()["type"] == "/problems/refused"
    assert "withdrawn" in late.json()["detail"] and SANNE["last_name"] not in late.text
    refusal = next(e for e in audit_of(world, exchange_id) if e["event_type"] == "exchange.fetch_refused")
    assert refusal["outcome"] == 8 and refusal["fields"] == [] and refusal["user_id"] == "test-partner-gemeente-amsterdam"
    assert not any(e["event_type"] == "exchange.fetched" for e in audit_of(world, exchange_id))


def test_a_notification_that_failed_is_retried_with_the_same_key_and_fetched_once(world):
    grant_consent(world.live.gw, SANNE["bsn"], partner_id="gemeente-amsterdam", purpose="warme_overdracht")
    world.control(mode="status", status=503, count=2)
    exchange_id = hand_over(world).json()["exchange_id"]
    with world.live.client() as admin:
        eventually(lambda: exchange_state(admin, exchange_id) == "acknowledged")
        detail = admin.get(f"/api/v1/exchanges/{exchange_id}").json()
    assert detail["attempts"] == 3
    received = world.received()
    assert len(received["notifications"]) == 1 and len(received["fetched"]) == 1
    assert httpx.get(f"{world.live.url}/partners/police/overdrachten/{exchange_id}").status_code == 401


def test_whatever_the_ecd_marks_confidential_about_the_client_stays_out_of_the_handover():
    import copy

    from gateway.core.mapping import load_mapping
    from gateway.core.runtime import DEFAULT_MAPPINGS_DIR
    from schakel_police import handover

    dossier = FIXTURES["dossiers"]["D-0004"]
    client = copy.deepcopy(FIXTURES["clients"][dossier["client_id"]])
    client["confidential"] = ["bsn", "date_of_birth", "phone"]
    household = FIXTURES["households"][dossier["household_id"]]
    data, confidential = handover.build({"dossier": dossier, "client": client, "household": household}, None,
                                        "http://127.0.0.1:9/overdrachten/")
    left = load_mapping(DEFAULT_MAPPINGS_DIR / "police_overdracht.yaml").apply(
        data, confidential=frozenset(confidential), basis="toestemming")
    assert set(left.fields["overdracht"]["client"]) == {"voornaam", "achternaam", "adres"}
    assert client["bsn"] not in json.dumps(left.fields) and client["date_of_birth"] not in json.dumps(left.fields)
