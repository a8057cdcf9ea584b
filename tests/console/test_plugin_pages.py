"""Worker pages other plugins contribute through ``register_console_pages``: the gezinsactieplannen
due and overdue (wmo), the referrals from huisverbod notices with their deadlines, and starting a
warm handover (police) — in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from schakel_care4.fixtures import build
from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET
from schakel_care4.simulator import create_app as create_care4
from tests.conftest import LiveGateway, grant_consent, make_settings
from tests.helpers import eventually
from tests.servers import ThreadServer

FIXTURES = build()
SANNE = FIXTURES["clients"]["C-0001"]  # at a secret shelter address


@pytest.fixture
def plugin_world(tmp_path: Path) -> Iterator[tuple[LiveGateway, ThreadServer]]:
    from schakel_police.simulator import create_app as create_contacts

    settings = make_settings(f"sqlite:///{tmp_path / 'gateway.db'}", tmp_path, enabled_plugins=["care4", "wmo", "police"])
    with ThreadServer(create_app(settings)) as server, \
            ThreadServer(create_care4(), ready_path="/docs") as care4, \
            ThreadServer(create_contacts(), ready_path="/_received") as contacts:
        live = LiveGateway(server)
        live.gw.settings.public_base_url = live.url
        live.add_partner("care4-ecd", care4.url, connector_type="care4", consenting_clients=(),
                         config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        live.add_partner("gemeente-diemen", "http://127.0.0.1:9/berichten", connector_type="wmo", consenting_clients=(),
                         identifiers={"gemeentecode": "0384"}, routing={"gemeentecode": ["0384"]},
                         config={"aanbieder_agb": "42420001"})
        for partner_id, identifiers in {"gemeente-amsterdam": {"soort": "gemeente", "gemeentecode": "0363"},
                                        "gemeente-nieuwegein": {"soort": "gemeente", "gemeentecode": "0356"},
                                        "politie-utrecht": {"soort": "politie", "werkgebied": "0344"}}.items():
            live.add_partner(partner_id, f"{contacts.url}/{partner_id}", connector_type="police", consenting_clients=(),
                             identifiers=identifiers, name=f"{partner_id} (fictief)")
        httpx.post(contacts.url + "/_control", json={"gateway_url": live.url, "tokens": {
            "gemeente-amsterdam": live.token("partner", "gemeente-amsterdam")}}, timeout=10).raise_for_status()
        yield live, contacts


def plan(plan_id: str, signed: date) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Ondersteuningsplan xmlns="urn:schakel:ondersteuningsplan:1.0" versie="1.0">
  <PlanId>{plan_id}</PlanId>
  <Client><Bsn>999900006</Bsn><Voornamen>Tim</Voornamen><Achternaam>de Wit</Achternaam><Geboortedatum>1967-08-13</Geboortedatum></Client>
  <Gemeente><Code>0384</Code></Gemeente>
  <WmoConsulent><Naam>M. Consulent (fictief)</Naam></WmoConsulent>
  <Ondertekend>{signed.isoformat()}</Ondertekend>
  <Arrangement>intramuraal</Arrangement>
  <Zrm2017><Domein code="financien" score="2"><Resultaat>U heeft uw financiën op orde</Resultaat></Domein></Zrm2017>
</Ondersteuningsplan>""".encode()


def test_a_worker_sees_the_gezinsactieplannen_due_and_overdue(plugin_world, console_factory):
    live, _ = plugin_world
    with live.client("partner", "gemeente-diemen") as municipality:
        for plan_id, days_ago in (("OP-2026-0101", 12), ("OP-2026-0102", 3)):
            sent = municipality.post("/partners/wmo/ondersteuningsplannen", content=plan(plan_id, date.today() - timedelta(days=days_ago)),
                                     headers={"Content-Type": "application/xml"})
            assert sent.status_code == 202, sent.text
    with live.client("hulpverlener") as api:
        eventually(lambda: all(i["document_id"] for i in api.get("/api/v1/wmo/gezinsactieplannen").json()["items"]))

    worker = console_factory(live)
    worker.login("hulpverlener")
    worker.page.get_by_role("link", name="Gezinsactieplannen").first.click()
    assert worker.heading() == "Gezinsactieplannen"
    rows = worker.page.locator("tbody tr")
    assert rows.count() == 2
    overdue, due = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "OP-2026-0101" in overdue and "te laat" in overdue and "2 dag(en) te laat" in overdue
    assert "OP-2026-0102" in due and "open" in due and "nog 7 dag(en)" in due and "D-0024" in due
    worker.check("gezinsactieplannen")
    worker.page.get_by_label("Toon").select_option("te_laat,bijna")
    worker.submit("Tonen")
    assert worker.page.locator("tbody tr").count() == 1 and "OP-2026-0101" in worker.page.locator("tbody").inner_text()


def test_a_worker_starts_a_warm_handover_with_consent_and_sees_it_fetched(plugin_world, console_factory):
    live, contacts = plugin_world
    worker = console_factory(live)
    worker.login("hulpverlener")
    worker.page.get_by_role("link", name="Warme overdracht").first.click()
    assert worker.heading() == "Warme overdracht"
    receivers = worker.page.get_by_role("combobox", name="Ontvanger").locator("option").all_inner_texts()
    assert "gemeente-amsterdam (fictief)" in receivers and "politie-utrecht (fictief)" not in receivers
    worker.check("overdracht")

    # Without her consent nothing leaves, and the page says why.
    worker.page.get_by_label("Dossiernummer").fill("D-0001")
    worker.page.get_by_role("combobox", name="Ontvanger").select_option("gemeente-amsterdam")
    worker.submit("Overdracht aankondigen")
    assert "Niet overgedragen: er is geen geldige grondslag" in worker.page.locator(".error-summary").inner_text()
    worker.check("overdracht-geweigerd")

    grant_consent(live.gw, SANNE["bsn"], partner_id="gemeente-amsterdam", purpose="warme_overdracht")
    worker.page.get_by_label("Toelichting voor de ontvanger (optioneel)").fill("Kennismaking gepland (fictief).")
    worker.submit("Overdracht aankondigen")
    assert "De overdracht is aangekondigd" in worker.flash()

    def fetched_and_confirmed() -> bool:
        worker.page.reload()
        row = worker.page.locator("tbody tr").first.inner_text()
        return "bevestigd" in row and "nog niet" not in row

    eventually(fetched_and_confirmed, timeout=30, interval=0.5)
    received = httpx.get(contacts.url + "/_received", timeout=10).json()
    assert SANNE["address"]["street"] not in str(received)
    worker.check("overdracht-bevestigd")


def test_their_pages_declare_the_roles_of_the_api_endpoints_they_call(plugin_world, console_factory):
    from tests.console.test_roles import console_routes, declared_roles

    live, _ = plugin_world
    routes = console_routes(live.server.app)
    assert declared_roles(routes[("GET", "/console/wmo/gezinsactieplannen")]) == {"hulpverlener", "privacy"}
    assert declared_roles(routes[("GET", "/console/police/overdrachten")]) == {"hulpverlener", "privacy"}
    assert declared_roles(routes[("POST", "/console/police/overdrachten")]) == {"hulpverlener"}
    officer = console_factory(live)
    officer.login("privacy")
    assert "Warme overdracht" not in officer.page.locator("nav.menu").inner_text()
    officer.goto("/console/police/overdrachten")
    assert officer.heading() == "Warme overdracht" and officer.page.locator("form[action$=overdrachten]").count() == 0


def test_a_worker_sees_the_referrals_of_a_huisverbod_with_the_deadline_for_help(plugin_world, console_factory):
    from plugins.police.tests.conftest import huisverbod

    live, _ = plugin_world
    notice = huisverbod()
    with live.client("partner", "gemeente-nieuwegein") as municipality:
        assert municipality.post("/partners/police/huisverboden", json=notice).status_code == 202
    worker = console_factory(live)
    worker.login("hulpverlener")
    worker.page.get_by_role("link", name="Huisverboden").first.click()
    assert worker.heading() == "Verwijzingen na een huisverbod"
    rows = worker.page.locator("tbody tr")
    assert rows.count() == 2
    table = worker.page.locator("tbody").inner_text()
    assert "wie achterblijft" in table and "wie uit huis is geplaatst" in table and notice["kenmerk"] in table
    deadline = (date.fromisoformat(notice["beslist_op"][:10]) + timedelta(days=10)).isoformat()
    assert table.count(deadline) >= 2, "both referrals show the day help must start"
    worker.check("huisverbod-verwijzingen")
