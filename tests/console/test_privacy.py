"""A privacy officer at the console: finds the melding a worker sent in the audit log, views its
body through break-the-glass, opens the client's access report (printable), checks the chain and
reads the consent register — in a real browser."""

from __future__ import annotations

from schakel_care4.fixtures import build
from tests.conftest import grant_consent
from tests.console.test_worker import send_melding
from tests.helpers import eventually, exchange_state

FIXTURES = build()


def test_a_privacy_officer_finds_that_exchange_in_the_audit_and_opens_the_client_access_report(world, console_factory):
    client = FIXTURES["clients"]["C-0001"]
    worker = console_factory(world.live, "hulpverlener")
    worker.login("hulpverlener")
    exchange_id = send_melding(worker, "D-0001")
    with world.live.client("hulpverlener") as api:
        eventually(lambda: exchange_state(api, exchange_id) == "delivered")

    officer = console_factory(world.live, "privacy")
    officer.login("privacy")
    assert officer.heading() == "Auditlog doorzoeken"
    officer.check("audit-zoeken")

    # Audit search by the client's BSN, the partner and the basis: the delivery is there.
    officer.page.get_by_label("Cliënt").fill(client["bsn"])
    officer.page.get_by_label("Partner").select_option("vt-amsterdam-amstelland")
    officer.page.get_by_label("Grondslag").select_option("meldrecht")
    officer.submit("Zoeken")
    assert client["bsn"] not in officer.page.url  # a client number never lands in a URL or the history
    rows = officer.page.locator("tbody tr")
    delivered = rows.filter(has_text="exchange.delivered")
    assert delivered.count() == 1
    assert exchange_id[:8] in delivered.inner_text() and "test-hulpverlener-staff" in rows.first.inner_text()
    assert "victim.address" not in delivered.inner_text()
    officer.check("audit-resultaten")

    # Filtering on outcome narrows it; a search for another client finds nothing of hers.
    officer.page.get_by_label("Soort gebeurtenis").select_option("field.withheld")
    officer.submit("Zoeken")
    assert "victim.address" in officer.page.locator("tbody").inner_text()
    officer.page.get_by_label("Cliënt").fill(FIXTURES["clients"]["C-0002"]["bsn"])
    officer.page.get_by_label("Soort gebeurtenis").select_option("")
    officer.submit("Zoeken")
    assert "Geen gebeurtenissen gevonden" in officer.text()

    # From the audit to the exchange, and its body through break-the-glass, with a reason.
    officer.goto(f"/console/uitwisselingen/{exchange_id}")
    officer.check("uitwisseling")
    officer.page.get_by_role("link", name="Berichtinhoud inzien (break-the-glass)").click()
    officer.check("break-the-glass")
    officer.page.get_by_label("Reden voor inzage").fill("te kort")
    officer.submit("Inhoud tonen")
    assert "Te kort: minstens 10 tekens." in officer.page.locator(".error-summary").inner_text()
    officer.page.get_by_label("Reden voor inzage").fill("Klacht van cliënt over de melding, dossier K-2026-014 (fictief).")
    officer.submit("Inhoud tonen")
    body = officer.page.get_by_label("Berichtinhoud").inner_text()
    assert "<Melding" in body and exchange_id in body and client["address"]["street"] not in body
    officer.check("break-the-glass-inhoud")

    # The client access report: what was shared, with whom, why, on which basis — printable.
    officer.page.get_by_role("link", name="Inzageverslag").click()
    officer.check("inzage-formulier")
    officer.page.get_by_label("Cliënt").fill(client["bsn"])
    officer.submit("Verslag opstellen")
    assert officer.heading() == "Inzageverslag (AVG artikel 15)"
    shared = officer.page.locator("table.data").first.inner_text()
    assert "Veilig Thuis Amsterdam Amstelland" in shared and "vt_melding" in shared
    assert "Meldrecht" in shared and "Wmo 2015 art. 5.2.6" in shared and "gedeeld" in shared
    assert "test-hulpverlener-staff" in shared and "slachtoffer: voornaam" in shared and "slachtoffer: adres" not in shared
    assert "Klacht van cliënt over de melding" in officer.text()  # her break-the-glass view is reported to her
    officer.check("inzageverslag")
    officer.page.emulate_media(media="print")
    assert not officer.page.locator("nav.menu").is_visible()
    assert not officer.page.get_by_role("button", name="Afdrukken").is_visible()
    officer.shot("inzageverslag-afdruk")
    officer.page.emulate_media(media="screen")

    # The chain is intact, and the consent register is readable.
    officer.page.get_by_role("link", name="Auditketen").click()
    assert "De keten is intact" in officer.text()
    officer.submit("Kop van de keten nu ondertekenen")
    assert "ondertekend" in officer.flash()
    officer.check("auditketen")

    consent_id = grant_consent(world.live.gw, FIXTURES["clients"]["C-0002"]["bsn"], partner_kind="veiligthuis",
                               purpose="melding_huiselijk_geweld")
    officer.page.get_by_role("link", name="Toestemmingen").click()
    officer.page.get_by_label("Cliënt").fill(FIXTURES["clients"]["C-0002"]["bsn"])
    officer.submit("Tonen")
    register = officer.page.locator("tbody")
    assert register.locator("tr").count() == 1 and "melding_huiselijk_geweld" in register.inner_text()
    officer.check("toestemmingen")
    officer.page.get_by_text("Intrekken", exact=True).click()
    officer.page.get_by_label("Reden").fill("cliënt trekt toestemming mondeling in")
    officer.submit("Toestemming intrekken")
    assert "Toestemming ingetrokken" in officer.flash()
    with world.live.client("privacy") as api:
        assert api.get(f"/api/v1/consents/{consent_id}").json()["status"] == "inactive"

    # Every look she took is in the audit log under her name.
    with world.live.client("privacy") as api:
        events = api.get("/api/v1/audit", params={"event_type": "body.viewed"}).json()["items"]
        reports = api.get("/api/v1/audit", params={"event_type": "access_report.generated"}).json()["items"]
    assert [e["user_id"] for e in events] == ["test-privacy-staff"] and events[0]["exchange_id"] == exchange_id
    assert [e["user_id"] for e in reports] == ["test-privacy-staff"]
