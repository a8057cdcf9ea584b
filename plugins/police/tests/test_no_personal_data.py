"""The police flows, logged at DEBUG, leave no personal data in the logs or in their error answers."""

from __future__ import annotations

from gateway.app import create_app
from plugins.police.tests.conftest import FIXTURES, REMOVED_PHONE, REMOVED_STAYS, huisverbod, wired
from tests.conftest import LiveGateway, grant_consent, make_settings
from tests.helpers import eventually, exchange_state
from tests.servers import ThreadServer

FATIMA, YOUSSEF, SANNE = (FIXTURES["clients"][c] for c in ("C-0004", "C-0005", "C-0001"))
CANARIES = [FATIMA["bsn"], YOUSSEF["bsn"], SANNE["bsn"], "Zwaluwdijk", "Kanariebos", FATIMA["phone"], REMOVED_PHONE,
            REMOVED_STAYS["straat"], FATIMA["address"]["postcode"], SANNE["address"]["street"]]


def test_no_canary_in_what_the_police_flows_log_or_answer(database_url, tmp_path, capfd):
    answers = []
    notice = huisverbod()
    # Started inside the test, so everything it logs — up to its shutdown — is captured.
    settings = make_settings(database_url, tmp_path, log_level="DEBUG")
    with ThreadServer(create_app(settings)) as server, wired(LiveGateway(server)) as world, \
            world.partner("gemeente-nieuwegein") as municipality, world.partner("politie-utrecht") as police, \
            world.live.client() as admin:
        accepted = municipality.post("/partners/police/huisverboden", json=notice)
        answers += [accepted.text,
                    municipality.post("/partners/police/huisverboden", json={**notice, "einde": "2099-01-01T00:00:00+01:00"}).text,
                    police.post("/partners/police/huisverboden", json={
                        "versie": "1.0", "soort": "verlengd", "kenmerk": notice["kenmerk"], "gemeentecode": "0356",
                        "beslist_op": notice["beslist_op"], "verlengd_tot": notice["einde"]}).text,
                    municipality.post("/partners/police/informatieverzoeken", json={
                        "versie": "1.0", "kenmerk": "IV-LOG-1", "bsn": SANNE["bsn"], "doel": "Zonder grondslag (fictief).",
                        "gevraagd": ["contactpersoon"]}).text]
        for referral in accepted.json()["referrals"]:
            eventually(lambda: exchange_state(admin, referral["exchange_id"]) == "delivered")
        grant_consent(world.live.gw, SANNE["bsn"], partner_id="gemeente-amsterdam", purpose="warme_overdracht")
        with world.live.client("hulpverlener") as worker:
            handover = worker.post("/api/v1/police/overdrachten", json={"dossier_id": "D-0001", "partner_id": "gemeente-amsterdam"})
            answers.append(handover.text)
        eventually(lambda: exchange_state(admin, handover.json()["exchange_id"]) == "acknowledged")
    captured = capfd.readouterr()
    emitted = captured.out + captured.err + "\n".join(answers)
    assert "exchange_submitted" in emitted, "the DEBUG log was not captured, so this test would prove nothing"
    for canary in CANARIES:
        assert canary not in emitted, f"{canary!r} was logged or answered"
