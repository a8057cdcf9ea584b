"""A worker reports start and stop of care and requests allocations; the municipality receives valid
iWmo 3.2 messages built from the ECD, and its answers come back into the dossier."""

from __future__ import annotations

from typing import Any

from lxml import etree

from schakel_wmo import iwmo
from tests.helpers import eventually

from .conftest import AGB, addressed_to_us, example, retour_codes

DOSSIER = "D-0024"  # Tim de Wit (C-0024, BSN 999900006, gemeente 0384): the client of the official examples


def allocate(world) -> None:
    assert world.post(example("WMO301")).status_code == 200
    eventually(lambda: any(a["allocation_number"] == "101" for a in world.arrangements().values()))


def received(world, bericht: str) -> list[dict[str, Any]]:
    return [r for r in world.received()["items"] if r["bericht"] == bericht]


def parsed(item: dict[str, Any]) -> etree._Element:
    root = etree.fromstring(item["xml"].encode())
    assert iwmo.validate(item["bericht"], root) == [], "what the municipality received validates against the XSD"
    return root


def text(root: etree._Element, bericht: str, path: str) -> list[str]:
    return [e.text for e in root.iterfind(path, namespaces={"m": iwmo.namespace(bericht), "b": iwmo.BASIS})]


def exchange(world, exchange_id: str) -> dict[str, Any]:
    with world.live.client() as admin:
        return admin.get(f"/api/v1/exchanges/{exchange_id}").json()


def test_start_and_stop_of_care_reach_the_municipality_as_valid_305_and_307_built_from_the_ecd(wmo_world):
    allocate(wmo_world)
    with wmo_world.worker() as worker:
        started = worker.post("/api/v1/wmo/start", json={"dossier_id": DOSSIER, "allocation_numbers": ["101"],
                                                          "begindatum": "2023-01-05"})
        stopped = worker.post("/api/v1/wmo/stop", json={"dossier_id": DOSSIER, "allocation_numbers": ["101"],
                                                         "begindatum": "2023-01-05", "einddatum": "2023-06-30",
                                                         "reden": "19"})
    assert started.status_code == 202 and stopped.status_code == 202, (started.text, stopped.text)
    eventually(lambda: received(wmo_world, "WMO305") and received(wmo_world, "WMO307"))
    start = parsed(received(wmo_world, "WMO305")[0])
    stop = parsed(received(wmo_world, "WMO307")[0])
    assert text(start, "WMO305", "m:Header/m:Afzender") == [AGB]
    assert text(start, "WMO305", "m:Header/m:BerichtIdentificatie/b:Identificatie") == [started.json()["identificatie"]]
    assert text(start, "WMO305", "m:Client/m:Bsn") == ["999900006"]
    assert text(start, "WMO305", "m:Client/m:Naam/b:Geslachtsnaam/b:Voorvoegsel") == ["de"]
    assert text(start, "WMO305", ".//m:StartProduct/m:ToewijzingNummer") == ["101"]
    assert text(start, "WMO305", ".//m:StartProduct/m:Begindatum") == ["2023-01-05"]
    assert text(stop, "WMO307", ".//m:StopProduct/m:RedenBeeindiging") == ["19"]
    assert text(stop, "WMO307", ".//m:StopProduct/m:Einddatum") == ["2023-06-30"]
    # Minimal data: nothing of the dossier beyond the mapped fields (no address, no other party).
    for item in (received(wmo_world, "WMO305")[0], received(wmo_world, "WMO307")[0]):
        assert "Adres" not in item["xml"] and "Onbekend" not in item["xml"]


def test_a_request_is_linked_to_its_retour_its_answer_and_the_301_that_grants_it(wmo_world):
    with wmo_world.worker() as worker:
        response = worker.post("/api/v1/wmo/verzoeken/toewijzing", json={
            "dossier_id": DOSSIER, "gemeentecode": "0384", "verwijzer": {"type": "01", "naam": "Wmo-consulent"},
            "products": [{"product_category": "01", "product_code": "01A01", "start": "2023-01-01",
                          "end": "2023-12-31", "volume": 10, "unit": "01", "frequency": "4"}]})
    assert response.status_code == 202, response.text
    sent = response.json()
    identificatie, reference = sent["identificatie"], sent["referentie_aanbieder"] + "-1"
    eventually(lambda: received(wmo_world, "WMO315"))
    request = parsed(received(wmo_world, "WMO315")[0])
    assert text(request, "WMO315", ".//m:AangevraagdProduct/m:ReferentieAanbieder") == [reference]
    request_exchange = exchange(wmo_world, sent["exchange_id"])

    # The municipality's retour (the official WMO316) on our 315 ...
    retour = (example("WMO316").replace(b"<iwmo:Identificatie>123456789012</iwmo:Identificatie>",
                                        f"<iwmo:Identificatie>{identificatie}</iwmo:Identificatie>".encode()))
    answered = wmo_world.post(retour)
    assert answered.status_code == 200 and answered.json()["request_exchange"] == sent["exchange_id"]
    # ... its answer (the official WMO319) naming our ReferentieAanbieder ...
    answer = addressed_to_us(example("WMO319")).replace(b"<wmo319:ReferentieAanbieder>9003</wmo319:ReferentieAanbieder>",
                                       f"<wmo319:ReferentieAanbieder>{reference}</wmo319:ReferentieAanbieder>".encode())
    answer_retour = wmo_world.post(answer)
    assert answer_retour.status_code == 200 and retour_codes(answer_retour.content, "WMO320") == ["0200", "0200"]
    # ... both end up as notes in the dossier the request came from.
    eventually(lambda: len(wmo_world.notes(DOSSIER)) == 2)
    notes = " ".join(n["text"] for n in wmo_world.notes(DOSSIER))
    assert "ontvangen en goedgekeurd" in notes and "verzoek afgewezen; reden: zorginhoudelijke afkeur" in notes

    # A 301 that grants the request names the same reference: it joins the request's timeline.
    grant = example("WMO301").replace(b"<wmo301:ReferentieAanbieder>42420002</wmo301:ReferentieAanbieder>",
                                      f"<wmo301:ReferentieAanbieder>{reference}</wmo301:ReferentieAanbieder>".encode())
    assert wmo_world.post(grant).status_code == 200
    with wmo_world.live.client() as admin:
        linked = admin.get("/api/v1/exchanges", params={"correlation_id": request_exchange["correlation_id"]}).json()
    assert {e["route_id"] for e in linked["items"]} == {"wmo.verzoek_toewijzing", "wmo.antwoord", "wmo.toewijzing"}


def test_a_change_request_keeps_every_other_current_allocation_unchanged(wmo_world):
    allocate(wmo_world)
    with wmo_world.worker() as worker:
        response = worker.post("/api/v1/wmo/verzoeken/wijziging", json={
            "dossier_id": DOSSIER, "gemeentecode": "0384", "reden": "1",
            "new": [{"product_category": "01", "product_code": "01A12", "start": "2023-04-02", "end": "2023-12-31",
                     "volume": 20, "unit": "14", "frequency": "4"}]})
    assert response.status_code == 202, response.text
    eventually(lambda: received(wmo_world, "WMO317"))
    change = parsed(received(wmo_world, "WMO317")[0])
    assert text(change, "WMO317", ".//m:OngewijzigdProduct/m:ToewijzingNummer") == ["101"]
    assert text(change, "WMO317", ".//m:Verzoek/m:ReferentieAanbieder") == [response.json()["referentie_aanbieder"]]


def test_a_retry_keeps_its_identification_and_9056_on_the_retry_counts_as_delivered(wmo_world):
    allocate(wmo_world)
    # The municipality takes the first attempt but answers after our deadline: we retry the same bytes.
    wmo_world.control_municipality(mode="late", delay=3, count=1)
    with wmo_world.worker() as worker:
        response = worker.post("/api/v1/wmo/start", json={"dossier_id": DOSSIER, "allocation_numbers": ["101"],
                                                           "begindatum": "2023-01-05"})
    exchange_id = response.json()["exchange_id"]
    eventually(lambda: exchange(wmo_world, exchange_id)["state"] == "delivered", timeout=30)
    delivered = exchange(wmo_world, exchange_id)
    assert delivered["attempts"] >= 2 and "9056" in (delivered.get("state_reason") or "")
    assert len(received(wmo_world, "WMO305")) == 1 and wmo_world.received()["duplicates"] >= 1
    assert received(wmo_world, "WMO305")[0]["identificatie"] == response.json()["identificatie"]


def test_requests_that_cannot_make_a_valid_message_are_refused_before_anything_is_queued(wmo_world):
    allocate(wmo_world)
    with wmo_world.worker() as worker:
        unknown_allocation = worker.post("/api/v1/wmo/start", json={
            "dossier_id": DOSSIER, "allocation_numbers": ["999"], "begindatum": "2023-01-05"})
        bad_reason = worker.post("/api/v1/wmo/stop", json={
            "dossier_id": DOSSIER, "allocation_numbers": ["101"], "begindatum": "2023-01-05",
            "einddatum": "2023-06-30", "reden": "77"})
        no_partner = worker.post("/api/v1/wmo/verzoeken/toewijzing", json={
            "dossier_id": DOSSIER, "gemeentecode": "0999", "verwijzer": {"type": "01"},
            "products": [{"product_category": "01", "start": "2023-01-01"}]})
        schema_invalid = worker.post("/api/v1/wmo/verzoeken/toewijzing", json={
            "dossier_id": DOSSIER, "gemeentecode": "0384", "verwijzer": {"type": "99"},
            "products": [{"product_category": "01", "start": "2023-01-01"}]})
        nothing_to_change = worker.post("/api/v1/wmo/verzoeken/wijziging", json={
            "dossier_id": DOSSIER, "gemeentecode": "0384", "reden": "1"})
    for response, slug in ((unknown_allocation, "validation-failed"), (bad_reason, "validation-failed"),
                           (no_partner, "no-partner"), (schema_invalid, "message-invalid"),
                           (nothing_to_change, "validation-failed")):
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["type"] == f"/problems/{slug}", response.text
    assert schema_invalid.json()["errors"][0]["path"].endswith("Verwijzer/iwmo:Type")
    with wmo_world.live.client() as admin:
        routes = {e["route_id"] for e in admin.get("/api/v1/exchanges").json()["items"]}
    assert routes == {"wmo.toewijzing"}, "only the allocation itself became an exchange"
