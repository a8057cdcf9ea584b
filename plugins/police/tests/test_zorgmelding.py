"""A police zorgmelding about a household becomes a referral for the ambulant team."""

from __future__ import annotations

import httpx

from plugins.police.tests.conftest import FIXTURES, person
from schakel_police.clock import today
from tests.helpers import eventually


def zorgmelding(kenmerk: str = "PL0900-2026112201") -> dict:
    """Police were called to Bram (C-0002, household H-0002 in Utrecht); his son was home."""
    clients, household = FIXTURES["clients"], FIXTURES["households"]["H-0002"]
    return {
        "versie": "1.0", "kenmerk": kenmerk, "gemeentecode": "0344", "datum": "2026-11-21",
        "omschrijving": "Ruzie met fysiek geweld; melder is de man, partner is vertrokken voor aankomst (fictief).",
        "kinderen_aanwezig": True,
        "adres": {"straat": "Schijnhof", "huisnummer": "132", "postcode": "3612 CL", "plaats": "Utrecht"},
        "betrokkenen": [{**person(clients["C-0002"]), "rol": "slachtoffer"},
                        {"voornamen": "Iris", "achternaam": "Merelhof", "geboortedatum": "1987-01-09", "rol": "pleger"},
                        {**person(household["children"][0]), "rol": "kind"}],
    }


def test_a_zorgmelding_becomes_a_referral_for_the_ambulant_team_with_its_source_and_date(world):
    # The police unit's own system (the simulator) sends it with the unit's token.
    relayed = httpx.post(world.contacts.url + "/politie-utrecht/_send/zorgmeldingen", json=zorgmelding(), timeout=30).json()
    assert relayed["status"] == 202, relayed
    with world.partner("politie-utrecht") as police:
        again = police.post("/partners/police/zorgmeldingen", json=zorgmelding())
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["exchange_id"] == relayed["body"]["exchange_id"]
    referral = eventually(lambda: world.referral("zorgmelding"))
    assert referral["team"] == "ambulant team" and referral["household_id"] == "H-0002"
    assert referral["source"] == "politie-utrecht (fictief): zorgmelding PL0900-2026112201"
    assert referral["received_on"] == today().isoformat()
    assert referral["details"]["datum_incident"] == "2026-11-21" and referral["details"]["kinderen_aanwezig"] is True
    assert [b["rol"] for b in referral["details"]["betrokkenen"]] == ["slachtoffer", "pleger", "kind"]
    assert len(world.referrals) == 1
    with world.live.client("privacy") as officer:
        events = officer.get("/api/v1/audit", params={"exchange": relayed["body"]["exchange_id"]}).json()["items"]
    assert {e["legal_basis"] for e in events} == {"wettelijke_plicht"}
    assert {e["partner_message_id"] for e in events} == {"PL0900-2026112201"}


def test_only_a_police_unit_sends_zorgmeldingen_and_only_for_its_own_area(world):
    with world.partner("gemeente-nieuwegein") as municipality:
        by_municipality = municipality.post("/partners/police/zorgmeldingen", json=zorgmelding())
    with world.partner("politie-utrecht") as police:
        elsewhere = police.post("/partners/police/zorgmeldingen", json={**zorgmelding(), "gemeentecode": "0363"})
    assert by_municipality.status_code == 403 and by_municipality.json()["type"] == "/problems/forbidden"
    assert elsewhere.status_code == 403 and elsewhere.json()["type"] == "/problems/partner-mismatch"
    assert world.referrals == []
