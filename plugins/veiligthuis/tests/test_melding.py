"""A worker drafts, reviews and sends a melding without re-typing it; Veilig Thuis's receipt and
feedback come back into the dossier."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update

from gateway.core.models import Exchange, utcnow
from gateway.core.xml import parse_xml
from plugins.veiligthuis.tests.conftest import answers
from schakel_care4.fixtures import REGIONS, build
from schakel_veiligthuis.melding import NAMESPACE, schema
from tests.conftest import grant_consent
from tests.helpers import eventually, exchange_state

FIXTURES = build()
NS = {"m": NAMESPACE}


def region_of(dossier_id: str) -> str:
    dossier = FIXTURES["dossiers"][dossier_id]
    household = FIXTURES["households"][dossier["household_id"]]
    client = FIXTURES["clients"][dossier["client_id"]]
    code = household["gemeentecode"] if household["children"] else client["address"]["gemeentecode"]
    return next(region for region, codes in REGIONS.items() if code in codes)


def leaves_of(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves_of(item, f"{prefix}{key}.")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            yield from leaves_of(item, prefix.rstrip(".") + "[].")
    else:
        yield prefix.rstrip(".")


# Every field of the VT melding schema that the ECD can supply (the rest is the worker's to answer).
CARE4_SUPPLIED = {
    "reporter.name", "reporter.organisation", "reporter.role", "reporter.phone", "reporter.email",
    "victim.first_name", "victim.last_name", "victim.gender", "victim.date_of_birth", "victim.bsn", "victim.address",
    "victim.phone", "other_party.first_name", "other_party.last_name", "other_party.gender",
    "other_party.date_of_birth", "other_party.relation", "other_party.address", "other_party.phone",
    "children[].first_name", "children[].last_name", "children[].gender", "children[].date_of_birth",
    "children[].bsn", "children[].parental_authority", "children[].school", "violence", "signals[].date",
    "signals[].kind", "signals[].description", "unsafety.acute", "unsafety.structural", "help_given",
    "network[].name", "network[].relation", "network[].supportive", "care_providers[].name", "care_providers[].role",
}


def test_the_draft_is_filled_from_the_dossier_and_shows_what_leaves_and_what_is_withheld(vt_world):
    with vt_world.live.client("hulpverlener") as worker:
        draft = worker.post("/api/v1/veiligthuis/drafts", json={"dossier_id": "D-0001"}).json()
    withheld = {item["field"] for item in draft["withheld"]}
    assert withheld == {"victim.address", "victim.phone", "children.school", "other_party.address", "other_party.phone"}
    filled = set(leaves_of(draft["melding"])) & CARE4_SUPPLIED
    can_leave = CARE4_SUPPLIED - {"victim.address", "victim.phone", "children[].school", "other_party.address",
                                  "other_party.phone"}
    assert len(filled) / len(can_leave) >= 0.9, sorted(can_leave - filled)
    assert draft["region"]["partner_id"] == "vt-amsterdam-amstelland"
    assert {q["field"] for q in draft["to_answer"]} >= {"meldcode_steps", "weighing.vermoeden", "decision",
                                                        "client_informed", "legal_basis"}
    assert draft["suggested_basis"] == "meldrecht" and draft["consent"]["present"] is False
    secret = FIXTURES["clients"]["C-0001"]["address"]["street"]
    assert secret not in str(draft["melding"])
    assert len(draft["melding"]["children"]) == 3


def test_reading_a_draft_is_audited_and_listed_in_the_clients_access_report_though_nothing_was_sent(vt_world):
    """A worker who drafts a melding reads the client's dossier: NEN 7513 wants that read logged."""
    with vt_world.live.client("hulpverlener") as worker:
        draft = worker.post("/api/v1/veiligthuis/drafts", json={"dossier_id": "D-0001"}).json()
    with vt_world.live.client("privacy") as officer:
        (read,) = officer.get("/api/v1/audit", params={"event_type": "dossier.read"}).json()["items"]
        report = officer.post("/api/v1/access-report", json={"client_id": FIXTURES["clients"]["C-0001"]["bsn"]}).json()
    assert read["action_code"] == "R" and read["role"] == "hulpverlener" and read["user_id"] == "test-hulpverlener-staff"
    assert read["client"] == vt_world.live.gw.pseudonymise(FIXTURES["clients"]["C-0001"]["bsn"])
    assert read["purpose_of_use"] == "melding_huiselijk_geweld" and read["fields"] == sorted(draft["leaves"])
    assert report["exchanges"] == []
    (listed,) = [r for r in report["reads"] if r["what"] == "dossier.read"]
    assert listed["by"] == "test-hulpverlener-staff" and listed["fields"] == sorted(draft["leaves"])


def test_with_meldrecht_and_a_recorded_weighing_it_reaches_the_right_region_once_without_the_secret_address(vt_world):
    with vt_world.live.client("hulpverlener") as worker:
        sent = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0001", "answers": answers()},
                           headers={"Idempotency-Key": "melding-d0001"})
        again = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0001", "answers": answers()},
                            headers={"Idempotency-Key": "melding-d0001"})
        assert sent.status_code == 202, sent.text
        assert again.json()["exchange_id"] == sent.json()["exchange_id"]
        exchange_id = sent.json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
        eventually(lambda: len(vt_world.ecd.notes) >= 1)
    received = vt_world.vt_received()
    assert [(r["region"], r["kenmerk"]) for r in received["items"]] == [("amsterdam-amstelland", exchange_id)]
    xml = received["items"][0]["xml"].encode()
    root = parse_xml(xml)
    assert schema().validate(root)
    client = FIXTURES["clients"]["C-0001"]
    for secret in (client["address"]["street"], client["address"]["postcode"], client["phone"]):
        assert secret not in xml.decode()
    for child in FIXTURES["households"]["H-0001"]["children"]:
        if child["school"]:
            assert child["school"] not in xml.decode()
    assert root.findtext("m:InformatieClient/m:Uitzondering", namespaces=NS) == "gevaar_kind_of_gezin"
    assert root.findtext("m:Melder/m:Naam", namespaces=NS) == FIXTURES["dossiers"]["D-0001"]["worker"]["name"]
    assert len(root.findall("m:Betrokkenen/m:Betrokkene", namespaces=NS)) == 5
    with vt_world.live.client("privacy") as officer:
        events = officer.get("/api/v1/audit", params={"exchange": exchange_id}).json()["items"]
    delivered = [e for e in events if e["event_type"] == "exchange.delivered"]
    assert delivered and delivered[0]["legal_basis"] == "meldrecht" and delivered[0]["partner_id"] == "vt-amsterdam-amstelland"
    assert "victim.address" not in delivered[0]["fields"]
    withheld = [e for e in events if e["event_type"] == "field.withheld"]
    assert {e["fields"][0] for e in withheld} >= {"victim.address", "children.school"}


def test_without_consent_or_a_recorded_weighing_it_is_refused_with_a_clear_reason(vt_world):
    with vt_world.live.client("hulpverlener") as worker:
        no_consent = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0002",
                                                                       "answers": answers("toestemming", informed=True)})
        no_weighing = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0002", "answers": {
            **answers(), "weighing": None}})
        not_informed_no_exception = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0002", "answers": {
            **answers(), "exception": None}})
    assert no_consent.status_code == 403
    assert no_consent.json()["missing_basis"] == ["toestemming"]
    assert "no active consent of the client for partner vt-utrecht" in no_consent.json()["detail"]
    assert no_weighing.status_code == 422 and no_weighing.headers["content-type"] == "application/problem+json"
    assert ["body", "answers", "weighing"] in [e["location"] for e in no_weighing.json()["errors"]]
    assert not_informed_no_exception.status_code == 422
    assert vt_world.vt_received()["items"] == []


def test_with_the_clients_consent_it_is_sent_on_that_basis(vt_world):
    bsn = FIXTURES["clients"]["C-0002"]["bsn"]
    grant_consent(vt_world.live.gw, bsn, partner_kind="veiligthuis", purpose="melding_huiselijk_geweld")
    with vt_world.live.client("hulpverlener") as worker:
        draft = worker.post("/api/v1/veiligthuis/drafts", json={"dossier_id": "D-0002"}).json()
        sent = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0002",
                                                                  "answers": answers("toestemming", informed=True)})
        eventually(lambda: exchange_state(worker, sent.json()["exchange_id"]) == "delivered")
        detail = worker.get(f"/api/v1/exchanges/{sent.json()['exchange_id']}").json()
    assert draft["suggested_basis"] == "toestemming" and draft["region"]["partner_id"] == "vt-utrecht"
    assert detail["legal_basis"] == "toestemming" and detail["consent_id"]
    assert [r["region"] for r in vt_world.vt_received()["items"]] == ["utrecht"]


def test_a_melding_never_reaches_the_wrong_region(vt_world):
    dossiers = ["D-0001", "D-0002", "D-0003", "D-0004", "D-0007", "D-0010", "D-0013", "D-0016"]
    with vt_world.live.client("hulpverlener") as worker:
        ids = {worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": d, "answers": answers()}).json()[
            "exchange_id"]: d for d in dossiers}
        eventually(lambda: all(exchange_state(worker, i) == "delivered" for i in ids))
    items = vt_world.vt_received()["items"]
    assert len(items) == len(dossiers)
    for item in items:
        assert item["region"] == region_of(ids[item["kenmerk"]])
    assert {region_of(d) for d in dossiers} == set(REGIONS)


def test_the_other_partys_own_dossier_never_leaks_into_the_victims_melding(vt_world):
    him = FIXTURES["clients"]["C-0005"]
    with vt_world.live.client("hulpverlener") as worker:
        exchange_id = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0004", "answers": answers()}).json()[
            "exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
    xml = vt_world.vt_received()["items"][0]["xml"]
    his_address = f"<Straat>{him['address']['street']}</Straat><Huisnummer>{him['address']['house_number']}</Huisnummer>"
    for private in (his_address, him["address"]["postcode"], him["phone"], him["email"], him["bsn"],
                    "agressieregulatietraining"):
        assert private not in xml
    assert "Youssef" in xml  # he is named as the other party, from her dossier


def test_veilig_thuis_down_for_a_while_then_delivered_once_and_feedback_lands_in_the_dossier(vt_world):
    vt_world.control_vt(mode="status", status=503, count=4, decision_delay=0.2, end_delay=0.2)
    with vt_world.live.client("hulpverlener") as worker:
        exchange_id = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0003", "answers": answers()}).json()[
            "exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered", timeout=30)
        # A note and then a status per feedback: wait for the last status, not only the last note.
        eventually(lambda: len([n for n in vt_world.ecd.notes.values() if n["dossier_id"] == "D-0003"]) == 3
                   and vt_world.ecd.data["dossiers"]["D-0003"]["status"] == "vt_afgesloten", timeout=30)
        status = worker.get("/api/v1/veiligthuis/meldingen").json()
    received = vt_world.vt_received()
    assert len(received["items"]) == 1 and received["requests"] == 5
    notes = sorted((n["text"] for n in vt_world.ecd.notes.values() if n["dossier_id"] == "D-0003"))
    assert any("bevestigt ontvangst" in n for n in notes)
    assert any("Veilig Thuis pakt de melding zelf op" in n for n in notes)
    assert any("einde van zijn betrokkenheid" in n for n in notes)
    assert vt_world.ecd.data["dossiers"]["D-0003"]["status"] == "vt_afgesloten"
    (row,) = status
    assert row["acknowledged"] and row["decision"] == "opgepakt" and row["ended"] and not row["overdue"]
    assert row["receipt"]["reference"].startswith("VT-AMS-")


def test_feedback_by_phone_is_entered_by_the_worker_and_a_late_decision_shows_overdue(vt_world):
    vt_world.control_vt(ack_delay=None)
    with vt_world.live.client("hulpverlener") as worker:
        exchange_id = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0006", "answers": answers()}).json()[
            "exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
        with vt_world.live.gw.store.transaction() as session:
            session.execute(update(Exchange).where(Exchange.id == exchange_id).values(
                delivered_at=utcnow() - timedelta(days=10)))
        overdue = worker.get("/api/v1/veiligthuis/meldingen", params={"overdue": True}).json()
        entered = worker.post(f"/api/v1/veiligthuis/meldingen/{exchange_id}/terugkoppeling", json={
            "type": "besluit", "melding_kenmerk": exchange_id, "date": "2026-11-20", "decision": "advies",
            "explanation": "Telefonisch doorgegeven door Veilig Thuis."})
        assert entered.status_code == 202, entered.text
        eventually(lambda: any("geeft advies" in n["text"] for n in vt_world.ecd.notes.values()))
        after = worker.get("/api/v1/veiligthuis/meldingen", params={"overdue": True}).json()
    assert [row["exchange_id"] for row in overdue] == [exchange_id]
    assert after == []
    note = next(n for n in vt_world.ecd.notes.values() if "geeft advies" in n["text"])
    assert note["dossier_id"] == "D-0006" and note["source"].startswith("handmatig ingevoerd door")


def test_a_region_cannot_answer_for_a_melding_sent_to_another(vt_world):
    with vt_world.live.client("hulpverlener") as worker:
        exchange_id = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0001", "answers": answers()}).json()[
            "exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
    with vt_world.live.client("partner", "vt-utrecht") as utrecht:
        wrong = utrecht.post("/partners/veiligthuis/terugkoppeling", json={
            "type": "besluit", "melding_kenmerk": exchange_id, "date": "2026-11-21", "decision": "opgepakt"})
        unknown = utrecht.post("/partners/veiligthuis/terugkoppeling", json={
            "type": "besluit", "melding_kenmerk": "no-such-melding", "date": "2026-11-21", "decision": "opgepakt"})
    assert wrong.status_code == 403 and wrong.json()["type"] == "/problems/forbidden"
    assert unknown.status_code == 422


def test_feedback_is_queued_while_the_ecd_is_down_and_written_once_after(vt_world):
    vt_world.control_vt(ack_delay=1.0)  # the receipt comes after the ECD went down
    with vt_world.live.client("hulpverlener") as worker:
        # Sending reads the dossier, so the ECD goes down only once the melding is on its way.
        exchange_id = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0008", "answers": answers()}).json()[
            "exchange_id"]
        vt_world.control_care4(fail_status=503, count=6)
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
        # The ECD writes the note a moment before the gateway records the delivery: wait for the record.
        feedback = eventually(lambda: [e for e in worker.get("/api/v1/exchanges", params={
            "route": "veiligthuis.terugkoppeling", "state": "delivered"}).json()["items"]], timeout=40)
    assert len([n for n in vt_world.ecd.notes.values() if n["dossier_id"] == "D-0008"]) == 1
    assert len(feedback) == 1 and feedback[0]["attempts"] > 1


def test_the_worker_edits_what_she_may_and_cannot_smuggle_in_more(vt_world):
    edits = {"violence": ["psychisch", "stalking"], "unsafety": {"acute": False, "structural": True},
             "signals_added": [{"date": "2026-11-21", "kind": "told", "description": "Cliënt vertelt over nieuwe dreiging."}],
             "help_added": ["Aanmelding bij het wijkteam gedaan"]}
    with vt_world.live.client("hulpverlener") as worker:
        smuggled = worker.post("/api/v1/veiligthuis/meldingen", json={
            "dossier_id": "D-0002", "answers": answers(), "edits": {**edits, "victim": {"address": "Nergens 1"}}})
        sent = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0002", "answers": answers(),
                                                                  "edits": edits})
        eventually(lambda: exchange_state(worker, sent.json()["exchange_id"]) == "delivered")
    assert smuggled.status_code == 422 and ["body", "edits", "victim"] in [e["location"] for e in smuggled.json()["errors"]]
    root = parse_xml(vt_world.vt_received()["items"][0]["xml"].encode())
    assert [v.text for v in root.findall("m:AardGeweld/m:Vorm", namespaces=NS)] == ["psychisch", "stalking"]
    assert root.findtext("m:Onveiligheid/m:Acuut", namespaces=NS) == "false"
    assert "nieuwe dreiging" in root.findtext("m:Signalen/m:Signaal[last()]/m:Omschrijving", namespaces=NS)
    assert "Aanmelding bij het wijkteam gedaan" in [h.text for h in root.findall("m:HulpVerleend/m:Hulp", namespaces=NS)]


def test_every_field_the_ecd_marks_confidential_is_withheld_not_only_address_phone_and_school():
    import copy

    from gateway.core.mapping import load_mapping
    from gateway.core.runtime import DEFAULT_MAPPINGS_DIR
    from schakel_veiligthuis import melding

    dossier = FIXTURES["dossiers"]["D-0001"]
    client = copy.deepcopy(FIXTURES["clients"][dossier["client_id"]])
    household = copy.deepcopy(FIXTURES["households"][dossier["household_id"]])
    client["confidential"] = ["bsn", "date_of_birth"]
    for child in household["children"]:
        child["confidential"] = ["bsn"]
    draft, confidential, _ = melding.build_draft({"dossier": dossier, "client": client, "household": household})
    completed = melding.complete(draft, melding.Answers(**answers("toestemming", informed=True)))
    left = load_mapping(DEFAULT_MAPPINGS_DIR / "vt_melding.yaml").apply(completed, confidential=frozenset(confidential),
                                                                        basis="toestemming")
    assert {"victim.bsn", "victim.date_of_birth", "children.bsn"} <= set(confidential)
    assert "bsn" not in left.fields["victim"] and "date_of_birth" not in left.fields["victim"]
    assert left.fields["victim"]["last_name"] == client["last_name"]
    assert all("bsn" not in child for child in left.fields["children"])
    assert client["bsn"] not in json.dumps(left.fields)


def test_a_melding_that_would_need_a_field_the_ecd_keeps_confidential_is_refused_before_anything_leaves(vt_world):
    """Her date of birth is confidential in the ECD and Veilig Thuis's schema requires it: the
    draft says the melding cannot go digitally, and sending it is refused with that reason."""
    vt_world.ecd.data["clients"]["C-0001"]["confidential"] = ["address", "phone", "date_of_birth"]
    with vt_world.live.client("hulpverlener") as worker:
        draft = worker.post("/api/v1/veiligthuis/drafts", json={"dossier_id": "D-0001"}).json()
        sent = worker.post("/api/v1/veiligthuis/meldingen", json={"dossier_id": "D-0001", "answers": answers()})
        listed = worker.get("/api/v1/exchanges", params={"route": "veiligthuis.melding"}).json()["items"]
    assert [item["field"] for item in draft["cannot_send"]] == ["victim.date_of_birth"]
    assert sent.status_code == 422 and sent.headers["content-type"] == "application/problem+json"
    assert "victim.date_of_birth confidential" in sent.json()["detail"] and "by phone" in sent.json()["detail"]
    assert listed == [] and not vt_world.vt_received()["items"]
