"""A functional administrator at the console: adds a partner (its secret never shown again), pauses
and resumes a connector while messages wait, and replays a dead letter — in a real browser."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.core.models import AuditEntry
from tests.conftest import grant_consent
from tests.helpers import eventually, exchange_state, notice, sink_stats, submit

SECRET = "fictief-geheim-token-7513"


def send_notice(world, reference: str) -> str:
    with world.live.client("hulpverlener") as worker:
        answer = submit(worker, notice(reference, partner="wijkteam-noord"))
        assert answer.status_code == 202, answer.text
        return answer.json()["exchange_id"]


def state_of(world, exchange_id: str) -> str:
    with world.live.client("beheerder") as admin:
        return exchange_state(admin, exchange_id)


@pytest.mark.parametrize("world", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_an_administrator_pauses_and_resumes_a_connector_and_replays_a_dead_letter(world, console_factory):
    admin = console_factory(world.live)
    admin.goto("/console/beheer")
    assert admin.heading() == "Inloggen bij Schakel"
    admin.check("inloggen")
    admin.login("beheerder")
    assert admin.heading() == "Overzicht"
    admin.check("overzicht-leeg")

    # A new partner, with a secret that is stored and never shown again.
    admin.page.get_by_role("link", name="Partners", exact=True).click()
    admin.check("partners")
    admin.page.get_by_role("link", name="Partner toevoegen").first.click()
    admin.check("partner-kies-koppeling")
    admin.page.get_by_label("Koppeling").select_option("webhook")
    admin.submit("Verder")
    admin.submit("Partner toevoegen")
    assert admin.page.locator(".error-summary").is_visible()
    admin.check("partner-toevoegen-fouten")
    admin.page.get_by_label("Code").fill("wijkteam-noord")
    admin.page.get_by_label("Naam").fill("Wijkteam Noord (fictief)")
    admin.page.get_by_label("Adres (endpoint)").fill(world.sink.url + "/inbox")
    admin.page.get_by_label("token (geheim)").fill(SECRET)
    admin.check("partner-toevoegen")
    admin.submit("Partner toevoegen")
    assert admin.heading() == "Partner Wijkteam Noord (fictief)"
    assert "Partner wijkteam-noord is toegevoegd." in admin.flash()
    assert SECRET not in admin.page.content()
    assert admin.page.get_by_label("token (geheim)").input_value() == ""
    assert "Er is een waarde ingesteld" in admin.text()
    admin.check("partner")
    grant_consent(world.live.gw, "C-1001", partner_id="wijkteam-noord")

    # Pause the connector type: a message waits, parked, instead of leaving.
    admin.goto("/console/beheer/koppelingen")
    admin.check("koppelingen")
    admin.page.get_by_role("link", name="Generic JSON webhook").click()
    assert admin.heading() == "Koppeling Generic JSON webhook"
    admin.check("koppeling")
    admin.submit("Koppeling pauzeren")
    assert "geef een reden" in admin.flash()
    admin.page.get_by_label("Reden").fill("onderhoud bij de partner")
    admin.submit("Koppeling pauzeren")
    assert "gepauzeerd" in admin.flash()
    held = send_notice(world, "console-pauze-1")
    eventually(lambda: state_of(world, held) == "parked")
    admin.page.reload()
    facts = admin.page.locator("dl.facts").first.inner_text()
    assert "gepauzeerd — onderhoud bij de partner" in facts and "Geparkeerd\n1" in facts
    admin.check("koppeling-gepauzeerd")
    assert sink_stats(world.sink.url)["unique"] == 0
    admin.page.get_by_role("link", name="Overzicht").click()
    queues = admin.page.locator("#wachtrijen")
    queues.locator("summary").click()
    assert queues.locator("tbody tr", has_text="webhook").inner_text().split("\t") == ["webhook", "0", "1", "0"]
    admin.goto("/console/beheer/koppelingen/webhook")

    admin.page.get_by_label("Reden").fill("onderhoud klaar")
    admin.submit("Koppeling hervatten")
    assert "hervat" in admin.flash()
    eventually(lambda: state_of(world, held) == "delivered")
    assert sink_stats(world.sink.url)["unique"] == 1

    # A partner that refuses for good: the message is a dead letter, replayed once it is fixed.
    world.sink_control(mode="status", status=400)
    dead = send_notice(world, "console-dood-1")
    eventually(lambda: state_of(world, dead) == "dead")
    world.sink_control(mode="ok")
    admin.page.get_by_role("link", name="Onbestelbare berichten").click()
    row = admin.page.locator("tbody tr", has_text=dead[:8])
    assert "HTTP 400" in row.inner_text()
    admin.check("onbestelbaar")
    row.get_by_role("checkbox").check()
    admin.page.get_by_label("Reden").fill("partner heeft de fout verholpen")
    admin.submit("Gekozen berichten opnieuw aanbieden")
    assert "1 bericht(en) opnieuw aangeboden" in admin.flash()
    eventually(lambda: state_of(world, dead) == "delivered")
    assert sink_stats(world.sink.url)["unique"] == 2

    # Its timeline tells the story, and the exchange list finds it.
    admin.goto(f"/console/uitwisselingen/{dead}")
    timeline = admin.page.locator("ol.timeline").inner_text()
    for step in ("onbestelbaar", "opnieuw aangeboden", "afgeleverd"):
        assert step in timeline
    assert "partner heeft de fout verholpen" in timeline
    admin.check("uitwisseling-tijdlijn")
    admin.goto("/console/uitwisselingen")
    admin.page.get_by_label("Toestand").select_option("delivered")
    admin.submit("Filteren")
    assert admin.page.locator("tbody tr").count() == 2
    admin.check("uitwisselingen-gefilterd")

    # The overview counts them; the charts are there, with their figures as a table.
    admin.page.get_by_role("link", name="Overzicht").click()
    assert admin.page.locator("svg[role=img]").count() == 3
    per_day = admin.page.locator("#per-dag")
    per_day.locator("summary").click()
    today = per_day.locator("tbody tr").last.inner_text().split("\t")
    assert today[1:] == ["2", "0", "0", "0", "2"], today  # afgeleverd, onderweg, geweigerd, onbestelbaar, totaal
    latency = admin.page.locator("#doorlooptijd")
    latency.locator("summary").click()
    measured = latency.locator("tbody tr").last.inner_text().split("\t")
    assert all(value.endswith(" s") for value in measured[1:]), measured  # median and p95 of today's two
    admin.check("overzicht")

    # Everything the administrator did is in the audit log under her own name.
    with world.live.gw.store.reading() as session:
        events = {(e.event_type, e.user_id) for e in session.scalars(select(AuditEntry))}
    for event in ("partner.created", "connector.paused", "connector.resumed", "exchange.replayed"):
        assert (event, "test-beheerder-staff") in events, event


def test_pausing_and_resuming_one_partner_and_changing_its_settings_keeps_the_secret(world, console_factory):
    world.live.add_partner("wijkteam-noord", world.sink.url + "/inbox", config={"token": SECRET},
                           name="Wijkteam Noord (fictief)")
    admin = console_factory(world.live)
    admin.login("beheerder")
    admin.goto("/console/beheer/partners/wijkteam-noord")
    admin.page.get_by_label("Reden").fill("partner verhuist naar een nieuw adres")
    admin.submit("Partner pauzeren")
    assert "Partner wijkteam-noord is gepauzeerd." in admin.flash()
    held = send_notice(world, "partner-pauze-1")
    eventually(lambda: state_of(world, held) == "parked")

    admin.page.get_by_label("Adres (endpoint)").fill(world.sink.url + "/inbox/nieuw")
    admin.submit("Instellingen opslaan")
    assert "opgeslagen" in admin.flash()
    assert SECRET not in admin.page.content()
    admin.check("partner-gewijzigd")
    with world.live.client("beheerder") as api:
        shown = api.get("/api/v1/partners/wijkteam-noord").json()
    assert shown["endpoint"].endswith("/nieuw") and shown["config"]["token"] == "********"

    admin.page.get_by_label("Reden").fill("nieuw adres werkt")
    admin.submit("Partner hervatten")
    eventually(lambda: state_of(world, held) == "delivered")
    # The secret kept its value through the edit: the partner still receives our bearer token.
    received = world.sink.app.state.sink.received
    assert any(item.get("authorization") == f"Bearer {SECRET}" for item in received.values()), received


@pytest.mark.parametrize("world", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_dead_letter_whose_consent_was_withdrawn_is_not_replayed_and_the_page_says_why(world, console_factory):
    world.live.add_partner("wijkteam-noord", world.sink.url + "/inbox", consenting_clients=())
    consent_id = grant_consent(world.live.gw, "C-1001", partner_id="wijkteam-noord")
    world.sink_control(mode="status", status=400)
    dead = send_notice(world, "console-ingetrokken-1")
    eventually(lambda: state_of(world, dead) == "dead")
    with world.live.client("hulpverlener") as worker:
        worker.post(f"/api/v1/consents/{consent_id}/withdraw", json={"reason": "cliënt trekt toestemming in"})
    world.sink_control(mode="ok")

    admin = console_factory(world.live)
    admin.goto(f"/console/uitwisselingen/{dead}")
    admin.login("beheerder", here=True)
    admin.page.get_by_label("Reden").fill("partner heeft de fout verholpen")
    admin.submit("Opnieuw aanbieden")
    assert "Niet opnieuw aangeboden: er is geen grondslag meer" in admin.flash()
    assert f"(consent {consent_id} was withdrawn at" in admin.flash()
    admin.check("opnieuw-geweigerd")
    timeline = admin.page.locator("ol.timeline").inner_text()
    assert "opnieuw aangeboden" not in timeline

    # The same from the dead letters' list: skipped, with the reason.
    admin.page.get_by_role("link", name="Onbestelbare berichten").click()
    admin.page.locator("tbody tr", has_text=dead[:8]).get_by_role("checkbox").check()
    admin.page.get_by_label("Reden").fill("partner heeft de fout verholpen")
    admin.submit("Gekozen berichten opnieuw aanbieden")
    assert f"0 bericht(en) opnieuw aangeboden. 1 overgeslagen: consent {consent_id} was withdrawn at" in admin.flash()
    admin.check("onbestelbaar-overgeslagen")
    assert state_of(world, dead) == "dead" and sink_stats(world.sink.url)["requests"] == 1
