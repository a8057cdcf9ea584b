"""A mayor's tijdelijk huisverbod becomes two referrals — help for those who stay and for the person
removed — each with the deadline by which help must start, and neither knowing where the other is."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx

from plugins.police.tests.conftest import FIXTURES, REMOVED_EMAIL, REMOVED_PHONE, REMOVED_STAYS, huisverbod
from tests.helpers import eventually, exchange_state

STAY, REMOVED = "huisverbod_achterblijvers", "huisverbod_uithuisgeplaatste"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def notify(world, notice, partner="gemeente-nieuwegein"):
    with world.partner(partner) as municipality:
        return municipality.post("/partners/police/huisverboden", json=notice)


def both_referrals(world) -> tuple[dict, dict]:
    eventually(lambda: world.referral(STAY) and world.referral(REMOVED))
    return world.referral(STAY), world.referral(REMOVED)


def test_a_notice_creates_both_referrals_with_the_deadline_and_neither_knows_where_the_other_is(world):
    notice = huisverbod()
    answer = notify(world, notice)
    assert answer.status_code == 202, answer.text
    assert [r["voor"] for r in answer.json()["referrals"]] == ["achterblijvers", "uithuisgeplaatste"]
    stay, removed = both_referrals(world)
    assert len(world.referrals) == 2
    # Help must start within the ten days of the order.
    for referral in (stay, removed):
        assert at(referral["deadline"]) == at(notice["einde"]) == at(notice["beslist_op"]) + timedelta(days=10)
        assert referral["team"] == "ambulant team" and referral["status"] == "open"
        assert "THV-0356-2026-0042" in referral["source"] and referral["details"]["huisverbod"]["opgelegd_door"] == "burgemeester"
    # Those who stay: linked to their household in the ECD, with their home and phone.
    assert stay["household_id"] == "H-0004" and stay["dossier_id"] is None
    assert stay["details"]["woning"]["postcode"] == "3746 DX"
    assert [a["voornamen"] for a in stay["details"]["achterblijvers"]] == ["Fatima", "Milan", "Milan"]
    assert stay["details"]["uithuisgeplaatste"] == {"voornamen": "Youssef", "achternaam": "Zwaluwdijk",
                                                    "geboortedatum": "1990-04-17"}
    # The person removed: a client himself, so linked to his own dossier, never to their household.
    assert removed["dossier_id"] == "D-0005" and removed["household_id"] is None
    assert removed["details"]["uithuisgeplaatste"]["bereikbaar"]["adres"] == REMOVED_STAYS
    assert {p["voornamen"] for p in removed["details"]["contactverbod"]} == {"Fatima", "Milan"}
    fatima = FIXTURES["clients"]["C-0004"]
    his = json.dumps(removed)
    for where_they_are in ("3746 DX", "Schijnhof", fatima["phone"], fatima["bsn"], "H-0004"):
        assert where_they_are not in his
    theirs = json.dumps(stay)
    for where_he_is in ("Logeerlaan", "3705 KL", REMOVED_PHONE, REMOVED_EMAIL):
        assert where_he_is not in theirs


def test_each_referral_is_an_audited_exchange_on_the_huisverbod_basis_about_its_own_person(world):
    answer = notify(world, huisverbod()).json()
    with world.live.client("privacy") as officer, world.live.client() as admin:
        for referral in answer["referrals"]:
            eventually(lambda: exchange_state(admin, referral["exchange_id"]) == "delivered")
            events = officer.get("/api/v1/audit", params={"exchange": referral["exchange_id"]}).json()["items"]
            delivered = next(e for e in events if e["event_type"] == "exchange.delivered")
            assert delivered["legal_basis"] == "huisverbod" and delivered["purpose_of_use"] == "huisverbod"
            assert delivered["partner_message_id"] == f"thv:0356:THV-0356-2026-0042:opgelegd:{referral['voor']}"
        subjects = {referral["voor"]: officer.get("/api/v1/audit", params={"exchange": referral["exchange_id"]})
                    .json()["items"][0]["client"] for referral in answer["referrals"]}
        fatima, youssef = (officer.post("/api/v1/pseudonyms", json={"client_id": FIXTURES["clients"][c]["bsn"]})
                           .json()["subject"] for c in ("C-0004", "C-0005"))
    assert subjects == {"achterblijvers": fatima, "uithuisgeplaatste": youssef}


def test_an_extension_to_day_28_moves_both_deadlines_and_a_withdrawal_closes_both(world):
    notice = huisverbod()
    decided = at(notice["beslist_op"])
    assert notify(world, notice).status_code == 202
    both_referrals(world)
    extension = {"versie": "1.0", "soort": "verlengd", "kenmerk": notice["kenmerk"], "gemeentecode": "0356",
                 "beslist_op": (decided + timedelta(days=9)).isoformat(),
                 "verlengd_tot": (decided + timedelta(days=28)).isoformat()}
    too_long = {**extension, "verlengd_tot": (decided + timedelta(days=28, hours=1)).isoformat()}
    refused = notify(world, too_long)
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/message-invalid"
    assert "28 days" in refused.json()["detail"]
    by_police = notify(world, extension, partner="politie-utrecht")
    assert by_police.status_code == 403 and "Only the mayor" in by_police.json()["detail"]
    extended = notify(world, extension)
    assert extended.status_code == 202, extended.text
    day_28 = decided + timedelta(days=28)
    eventually(lambda: all(at(r["deadline"]) == day_28 for r in world.referrals))
    for referral in world.referrals:
        assert at(referral["details"]["huisverbod"]["einde"]) == day_28
        # the first deadline stays visible: a start after it was late
        assert at(referral["details"]["huisverbod"]["eerste_termijn"]) == decided + timedelta(days=10)
    assert notify(world, extension).headers.get("Idempotent-Replayed") == "true"
    withdrawal = {"versie": "1.0", "soort": "ingetrokken", "kenmerk": notice["kenmerk"], "gemeentecode": "0356",
                  "beslist_op": (decided + timedelta(days=12)).isoformat(), "reden": "Beschikking ingetrokken (fictief)."}
    assert notify(world, withdrawal).status_code == 202
    eventually(lambda: all(r["status"] == "gesloten" for r in world.referrals))
    assert len(world.referrals) == 2
    again = notify(world, {**extension, "verlengd_tot": (decided + timedelta(days=27)).isoformat()})
    assert again.status_code == 409 and again.json()["type"] == "/problems/state-conflict"


def test_the_same_notice_twice_opens_the_referrals_once(world):
    notice = huisverbod()
    first = notify(world, notice)
    # the same notice, serialised differently, as a partner's retry may be
    with world.partner("gemeente-nieuwegein") as municipality:
        second = municipality.post("/partners/police/huisverboden", content=json.dumps(dict(reversed(notice.items()))),
                                   headers={"Content-Type": "application/json"})
    assert second.status_code == 202 and second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["referrals"] == first.json()["referrals"]
    both_referrals(world)
    changed = notify(world, {**notice, "aanleiding": "Een andere tekst onder hetzelfde kenmerk (fictief)."})
    assert changed.status_code == 422 and changed.json()["type"] == "/problems/idempotency-key-reused"
    by_police = notify(world, notice, partner="politie-utrecht")
    assert by_police.status_code == 409 and by_police.json()["type"] == "/problems/already-exists"
    with world.live.client() as admin:
        exchanges = admin.get("/api/v1/exchanges", params={"connector": "care4"}).json()["items"]
    assert len(exchanges) == 2 and len(world.referrals) == 2


def test_bad_notices_get_a_clear_problem_and_nothing_is_stored(world):
    notice = huisverbod()
    eleven_days = {**notice, "einde": (at(notice["start"]) + timedelta(days=11)).isoformat()}
    bad_bsn = {**notice, "uithuisgeplaatste": {**notice["uithuisgeplaatste"], "bsn": "123456789"}}
    unknown_field = {**notice, "adres_dader": "Verzinstraat 1"}
    other_municipality = notify(world, notice, partner="gemeente-amsterdam")
    organisation = notify(world, notice, partner="stichting-nazorg")
    with world.live.client("partner", "care4-ecd") as not_a_contact:
        ecd_token = not_a_contact.post("/partners/police/huisverboden", json=notice)
    for response, status, slug in ((notify(world, eleven_days), 422, "validation-failed"),
                                   (notify(world, bad_bsn), 422, "validation-failed"),
                                   (notify(world, unknown_field), 422, "validation-failed"),
                                   (other_municipality, 403, "partner-mismatch"),
                                   (organisation, 403, "forbidden"),
                                   (ecd_token, 403, "forbidden")):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == f"/problems/{slug}"
        assert "Verzinstraat" not in response.text and "123456789" not in response.text
    locations = [e["location"] for e in notify(world, bad_bsn).json()["errors"]]
    assert ["body", "opgelegd", "uithuisgeplaatste", "bsn"] in locations
    with world.live.client() as admin:
        assert admin.get("/api/v1/exchanges").json()["items"] == []


def test_a_notice_accepted_while_the_ecd_is_down_reaches_it_once_it_is_back(world):
    httpx.post(world.care4.url + "/_control", json={"fail_status": 503, "count": 6}, timeout=10)
    assert notify(world, huisverbod()).status_code == 202
    stay, removed = both_referrals(world)
    assert stay["household_id"] == "H-0004" and removed["dossier_id"] == "D-0005"
    assert len(world.referrals) == 2


def test_where_the_person_removed_can_be_reached_reaches_his_referral_only(world):
    notice = huisverbod()
    without = {key: value for key, value in notice["uithuisgeplaatste"].items() if key != "bereikbaar"}
    assert notify(world, {**notice, "uithuisgeplaatste": without}).status_code == 202
    stay, removed = both_referrals(world)
    assert "bereikbaar" not in removed["details"]["uithuisgeplaatste"]
    # He states within 24 hours where he can be reached; the police pass it on.
    stated = {"versie": "1.0", "soort": "bereikbaar", "kenmerk": notice["kenmerk"], "gemeentecode": "0356",
              "gemeld_op": (at(notice["beslist_op"]) + timedelta(hours=20)).isoformat(),
              "bereikbaar": notice["uithuisgeplaatste"]["bereikbaar"]}
    answer = notify(world, stated, partner="politie-utrecht")
    assert answer.status_code == 202, answer.text
    assert [r["voor"] for r in answer.json()["referrals"]] == ["uithuisgeplaatste"]
    eventually(lambda: "bereikbaar" in world.referral(REMOVED)["details"]["uithuisgeplaatste"])
    assert world.referral(REMOVED)["details"]["uithuisgeplaatste"]["bereikbaar"]["adres"] == REMOVED_STAYS
    assert "Logeerlaan" not in json.dumps(world.referral(STAY)) and REMOVED_PHONE not in json.dumps(world.referral(STAY))
    with world.live.client("privacy") as officer:
        events = officer.get("/api/v1/audit", params={"exchange": answer.json()["referrals"][0]["exchange_id"]}).json()
    assert {e["legal_basis"] for e in events["items"]} == {"huisverbod"}


def test_the_workers_list_shows_both_referrals_with_their_deadline_moved_by_an_extension(world):
    notice = huisverbod()
    decided = at(notice["beslist_op"])
    assert notify(world, notice).status_code == 202
    both_referrals(world)

    def listed() -> list[dict]:
        with world.live.client("hulpverlener") as worker:
            return worker.get("/api/v1/police/verwijzingen").json()

    first = listed()
    assert sorted(r["deel"] for r in first) == ["achterblijvers", "uithuisgeplaatste"]
    assert {at(r["termijn"]) for r in first} == {decided + timedelta(days=10)}
    assert {r["kenmerk"] for r in first} == {notice["kenmerk"]} and not any(r["verlengd"] for r in first)
    assert "bereikbaar" not in json.dumps(first) and "woning" not in json.dumps(first), "deadlines, not whereabouts"
    extension = {"versie": "1.0", "soort": "verlengd", "kenmerk": notice["kenmerk"], "gemeentecode": "0356",
                 "beslist_op": (decided + timedelta(days=9)).isoformat(),
                 "verlengd_tot": (decided + timedelta(days=28)).isoformat()}
    assert notify(world, extension).status_code == 202
    moved = listed()
    assert {at(r["termijn"]) for r in moved} == {decided + timedelta(days=28)} and all(r["verlengd"] for r in moved)
    assert {at(r["eerste_termijn"]) for r in moved} == {decided + timedelta(days=10)}
