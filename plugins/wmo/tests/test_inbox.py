"""A municipality sends iWmo messages and gets the matching retour; allocations reach the ECD."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from lxml import etree

from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET
from schakel_care4.simulator import create_app as create_care4
from schakel_wmo import iwmo
from tests.helpers import eventually
from tests.servers import ThreadServer

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "iwmo-3.2" / "voorbeeldberichten"
pytestmark = pytest.mark.skipif(not EXAMPLES.exists(), reason=f"the official iWmo examples are not at {EXAMPLES}")
NS = {"r": iwmo.namespace("WMO302")}


@pytest.fixture
def wmo_world(live_gateway):
    with ThreadServer(create_care4(), ready_path="/docs") as care4:
        live_gateway.add_partner("care4-ecd", care4.url, connector_type="care4", consenting_clients=(),
                                 config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        live_gateway.add_partner("gemeente-diemen", "http://127.0.0.1:9/berichten", connector_type="wmo",
                                 consenting_clients=(), identifiers={"gemeentecode": "0384"})
        live_gateway.add_partner("gemeente-utrecht", "http://127.0.0.1:9/berichten", connector_type="wmo",
                                 consenting_clients=(), identifiers={"gemeentecode": "0344"})
        yield live_gateway, care4


def post(live, xml: bytes, partner: str = "gemeente-diemen") -> httpx.Response:
    with live.client("partner", partner) as municipality:
        return municipality.post("/partners/wmo/berichten", content=xml, headers={"Content-Type": "application/xml"})


def codes(response: httpx.Response) -> list[str]:
    return [c.text for c in etree.fromstring(response.content).iterfind(".//r:RetourCode", namespaces=NS)]


def header_codes(response: httpx.Response) -> list[str]:
    root = etree.fromstring(response.content)
    return [c.text for c in root.iterfind("r:Header/r:RetourCodes/r:RetourCode", namespaces=NS)]


def arrangements(care4) -> dict:
    return care4.app.state.ecd.arrangements


def test_the_official_301_is_accepted_answered_with_a_valid_302_and_allocated_in_the_ecd(wmo_world):
    live, care4 = wmo_world
    response = post(live, (EXAMPLES / "WMO301.xml").read_bytes())
    assert response.status_code == 200 and response.headers["content-type"] == "application/xml"
    assert iwmo.validate("WMO302", etree.fromstring(response.content)) == []
    assert set(codes(response)) == {"0200"}
    eventually(lambda: arrangements(care4))
    (arrangement,) = arrangements(care4).values()
    assert arrangement["client_id"] == "C-0024" and arrangement["allocation_number"] == "101"
    assert (arrangement["product_category"], arrangement["product_code"]) == ("01", "01A01")
    assert (arrangement["start"], arrangement["end"], arrangement["volume"], arrangement["unit"]) == (
        "2023-01-01", "2023-12-31", 10, "01")


def test_the_same_message_twice_gets_the_same_retour_and_makes_one_exchange(wmo_world):
    live, _ = wmo_world
    xml = (EXAMPLES / "WMO301.xml").read_bytes()
    first, second = post(live, xml), post(live, xml)
    assert second.content == first.content and second.headers["Idempotent-Replayed"] == "true"
    with live.client() as admin:
        assert len(admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing"}).json()["items"]) == 1
    other = xml.replace(b"<iwmo:Volume>10</iwmo:Volume>", b"<iwmo:Volume>12</iwmo:Volume>")
    reused = post(live, other)
    assert reused.status_code == 200 and header_codes(reused) == ["9056"]


def test_an_allocation_missing_from_a_newer_301_has_ended(wmo_world):
    live, care4 = wmo_world
    xml = (EXAMPLES / "WMO301.xml").read_bytes()
    assert post(live, xml).status_code == 200
    eventually(lambda: arrangements(care4))
    newer = (xml.replace(b"<iwmo:Identificatie>123456789012</iwmo:Identificatie>",
                         b"<iwmo:Identificatie>123456789013</iwmo:Identificatie>")
             .replace(b"<wmo301:ToewijzingNummer>101</wmo301:ToewijzingNummer>",
                      b"<wmo301:ToewijzingNummer>102</wmo301:ToewijzingNummer>"))
    assert post(live, newer).status_code == 200
    # The newer 301 is written in steps (102 first, then 101 ended): wait for the whole of it.
    states = lambda: {a["allocation_number"]: a["status"] for a in arrangements(care4).values()}  # noqa: E731
    eventually(lambda: states() == {"101": "beeindigd", "102": "actief"})


def test_bad_messages_get_clear_answers_and_nothing_is_processed(wmo_world):
    live, care4 = wmo_world
    xml = (EXAMPLES / "WMO301.xml").read_bytes()
    bad_bsn = post(live, xml.replace(b"<wmo301:Bsn>999900006</wmo301:Bsn>", b"<wmo301:Bsn>999900007</wmo301:Bsn>"))
    invalid = post(live, xml.replace(b"<wmo301:BerichtCode>414</wmo301:BerichtCode>", b""))
    old_release = post(live, xml.replace(b"iwmo/3_2/wmo301", b"iwmo/2_4/wmo301"))
    wrong_sender = post(live, xml, partner="gemeente-utrecht")
    attack = post(live, b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    retour_inbound = post(live, (EXAMPLES / "WMO302.xml").read_bytes())
    assert bad_bsn.status_code == 200 and header_codes(bad_bsn) == ["0001"]
    for response, slug in ((invalid, "message-invalid"), (old_release, "message-invalid"),
                           (wrong_sender, "partner-mismatch"), (attack, "xml-forbidden-construct"),
                           (retour_inbound, "message-invalid")):
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["type"] == f"/problems/{slug}"
    with live.client() as admin:
        assert admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing"}).json()["items"] == []
    assert arrangements(care4) == {}
