"""A municipality sends iWmo messages and gets the matching retour; allocations reach the ECD."""

from __future__ import annotations

import pytest
from lxml import etree

from schakel_wmo import iwmo
from tests.core.test_xml import ATTACKS
from tests.helpers import eventually

from .conftest import addressed_to_us, example, header_codes, retour_codes


def newer_301(xml: bytes, identificatie: str, dagtekening: str, allocation: str = "102") -> bytes:
    return (xml.replace(b"<iwmo:Identificatie>123456789012</iwmo:Identificatie>",
                        f"<iwmo:Identificatie>{identificatie}</iwmo:Identificatie>".encode())
            .replace(b"<iwmo:Dagtekening>2023-08-13</iwmo:Dagtekening>",
                     f"<iwmo:Dagtekening>{dagtekening}</iwmo:Dagtekening>".encode())
            .replace(b"<wmo301:ToewijzingNummer>101</wmo301:ToewijzingNummer>",
                     f"<wmo301:ToewijzingNummer>{allocation}</wmo301:ToewijzingNummer>".encode()))


def test_the_official_301_is_accepted_answered_with_a_valid_302_and_allocated_in_the_ecd(wmo_world):
    response = wmo_world.post(example("WMO301"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/xml"
    assert iwmo.validate("WMO302", etree.fromstring(response.content)) == []
    assert set(retour_codes(response.content)) == {"0200"}
    eventually(wmo_world.arrangements)
    (arrangement,) = wmo_world.arrangements().values()
    assert arrangement["client_id"] == "C-0024" and arrangement["allocation_number"] == "101"
    assert (arrangement["product_category"], arrangement["product_code"]) == ("01", "01A01")
    assert (arrangement["start"], arrangement["end"], arrangement["volume"], arrangement["unit"]) == (
        "2023-01-01", "2023-12-31", 10, "01")


def test_the_same_message_twice_gets_the_same_retour_and_makes_one_exchange(wmo_world):
    xml = example("WMO301")
    first, second = wmo_world.post(xml), wmo_world.post(xml)
    assert second.content == first.content and second.headers["Idempotent-Replayed"] == "true"
    with wmo_world.live.client() as admin:
        assert len(admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing"}).json()["items"]) == 1
    # The same document with other line endings (a transport that rewrites them) is the same message.
    assert b"\r\n" in xml  # the official example's own line endings
    rewritten = wmo_world.post(xml.replace(b"\r\n", b"\n"))
    assert rewritten.content == first.content and rewritten.headers["Idempotent-Replayed"] == "true"
    other = xml.replace(b"<iwmo:Volume>10</iwmo:Volume>", b"<iwmo:Volume>12</iwmo:Volume>")
    reused = wmo_world.post(other)
    assert reused.status_code == 200 and header_codes(reused.content) == ["9056"]


def test_an_allocation_missing_from_a_newer_301_has_ended(wmo_world):
    assert wmo_world.post(example("WMO301")).status_code == 200
    eventually(wmo_world.arrangements)
    assert wmo_world.post(newer_301(example("WMO301"), "123456789013", "2023-09-01")).status_code == 200
    # The newer 301 is written in steps (102 first, then 101 ended): wait for the whole of it.
    states = lambda: {a["allocation_number"]: a["status"] for a in wmo_world.arrangements().values()}  # noqa: E731
    eventually(lambda: states() == {"101": "beeindigd", "102": "actief"})


def test_bad_messages_get_clear_answers_and_nothing_is_processed(wmo_world):
    xml = example("WMO301")
    post = wmo_world.post
    bad_bsn = post(xml.replace(b"<wmo301:Bsn>999900006</wmo301:Bsn>", b"<wmo301:Bsn>999900007</wmo301:Bsn>"))
    invalid = post(xml.replace(b"<wmo301:BerichtCode>414</wmo301:BerichtCode>", b""))
    old_release = post(xml.replace(b"iwmo/3_2/wmo301", b"iwmo/2_4/wmo301"))
    wrong_sender = post(xml, partner="gemeente-utrecht")
    attack = post(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    retour_inbound = post(example("WMO302"))
    provider_message = post(example("WMO305"))
    assert bad_bsn.status_code == 200 and header_codes(bad_bsn.content) == ["0001"]
    for response, slug in ((invalid, "message-invalid"), (old_release, "message-invalid"),
                           (wrong_sender, "partner-mismatch"), (attack, "xml-forbidden-construct"),
                           (retour_inbound, "message-invalid"), (provider_message, "message-invalid")):
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["type"] == f"/problems/{slug}"
    with wmo_world.live.client() as admin:
        assert admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing"}).json()["items"] == []
    assert wmo_world.arrangements() == {}


def test_a_301_for_another_provider_or_dated_ahead_is_not_processed(wmo_world):
    """Another provider's client never reaches our ECD; and a 301 dated ahead (iWmo rule 8848) is
    refused, so that it cannot outrank, and so silence, every later 301 for the client."""
    xml = example("WMO301")
    elsewhere = wmo_world.post(xml.replace(b"<wmo301:Ontvanger>42420001</wmo301:Ontvanger>",
                                           b"<wmo301:Ontvanger>99999999</wmo301:Ontvanger>"))
    assert elsewhere.status_code == 422 and elsewhere.headers["content-type"] == "application/problem+json"
    assert elsewhere.json()["type"] == "/problems/message-invalid"
    assert "addressed to AGB code 99999999" in elsewhere.json()["detail"]
    ahead = wmo_world.post(newer_301(xml, "123456789013", "9999-12-31"))
    assert ahead.status_code == 200 and header_codes(ahead.content) == ["8848"]
    assert iwmo.validate("WMO302", etree.fromstring(ahead.content)) == []
    retour_ahead = wmo_world.post(example("WMO316").replace(b"<iwmo:Dagtekening>2023-07-15</iwmo:Dagtekening>",
                                                            b"<iwmo:Dagtekening>9999-12-31</iwmo:Dagtekening>"))
    assert retour_ahead.status_code == 422 and retour_ahead.json()["type"] == "/problems/message-invalid"
    with wmo_world.live.client() as admin:
        assert admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing"}).json()["items"] == []
    # The next 301, dated as it should be, is processed as usual.
    assert set(retour_codes(wmo_world.post(xml).content)) == {"0200"}
    eventually(lambda: [a["allocation_number"] for a in wmo_world.arrangements().values()] == ["101"])


def test_a_319_that_answers_no_request_of_ours_gets_a_320_with_9063_and_is_not_processed(wmo_world):
    response = wmo_world.post(addressed_to_us(example("WMO319")))
    assert response.status_code == 200 and response.headers["content-type"] == "application/xml"
    assert retour_codes(response.content, "WMO320") == ["0200", "9063"]  # header fine, Antwoord unmatched
    with wmo_world.live.client() as admin:
        assert admin.get("/api/v1/exchanges", params={"route": "wmo.antwoord"}).json()["items"] == []


def test_a_316_for_a_315_we_never_sent_is_refused(wmo_world):
    response = wmo_world.post(example("WMO316"))
    assert response.status_code == 404 and response.json()["type"] == "/problems/not-found"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_the_core_parser_refuses_is_refused_by_every_wmo_xml_endpoint(wmo_world, attack):
    body = ATTACKS[attack]
    refused = {"xml-malformed", "xml-forbidden-construct", "xml-limits-exceeded", "payload-too-large"}
    with wmo_world.live.client("partner", "gemeente-diemen") as municipality:
        answers = [municipality.post(path, content=body, headers={"Content-Type": "application/xml"})
                   for path in ("/partners/wmo/berichten", "/partners/wmo/ondersteuningsplannen")]
    with wmo_world.live.client("beheerder") as admin:
        batch = admin.post("/api/v1/wmo/batches", content=body, headers={"Content-Type": "application/xml"})
    for answer in answers:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].rsplit("/", 1)[-1] in refused, answer.text
    if batch.status_code == 200:  # one message, refused inside the batch
        assert batch.json()["outcomes"][0]["problem"] in refused
    else:
        assert batch.json()["type"].rsplit("/", 1)[-1] in refused
    with wmo_world.live.client() as admin:
        assert admin.get("/api/v1/exchanges").json()["items"] == []


def test_an_older_301_arriving_after_a_newer_one_does_not_reopen_what_the_newer_one_ended(wmo_world):
    xml = example("WMO301")
    newer = newer_301(xml, "123456789013", "2023-09-01")  # allocation 102 only: 101 has ended
    older = xml                                            # dated 2023-08-13, still naming 101
    assert wmo_world.post(newer).status_code == 200
    eventually(lambda: {a["allocation_number"] for a in wmo_world.arrangements().values()} == {"102"})
    answer = wmo_world.post(older)
    assert answer.status_code == 200 and set(retour_codes(answer.content)) == {"0200"}  # a valid message, accepted
    with wmo_world.live.client() as admin:
        def older_exchange():
            items = admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing"}).json()["items"]
            return [e for e in items if e["state"] == "delivered" and "superseded" in (e.get("state_reason") or "")]
        eventually(older_exchange)
    assert {a["allocation_number"]: a["status"] for a in wmo_world.arrangements().values()} == {"102": "actief"}
