"""A worker at the console: from a dossier, the Veilig Thuis melding wizard — the prefilled draft,
what leaves and what is withheld, the meldcode weighing and the basis, send — and afterwards the
status timeline, all in a real browser against the Care4 and Veilig Thuis simulators."""

from __future__ import annotations

from schakel_care4.fixtures import build
from tests.console.conftest import Console
from tests.helpers import eventually

FIXTURES = build()
WEIGHING = ("Heb ik op basis van de stappen 1 tot en met 3", "Schat ik in dat er sprake is van acute",
            "Ben ik in staat effectieve hulp", "Aanvaarden de betrokkenen", "Leidt de hulp binnen de gewenste termijn")


def answer_weighing(worker: Console, basis: str = "Meldrecht") -> None:
    """Fill the weighing step as a worker would: by the labels she reads."""
    page = worker.page
    for step in range(1, 6):
        page.get_by_label(f"Stap {step}:").check()
    for number, question in enumerate(WEIGHING):
        group = page.get_by_role("group", name=question)
        group.get_by_label("Ja" if number < 2 else "Nee").check()
    page.get_by_label("Toelichting op uw afweging").fill("Acute onveiligheid; hulp alleen is niet voldoende.")
    page.get_by_label("Uw besluit (stap 5)").fill("melden bij Veilig Thuis en hulp blijven bieden")
    page.get_by_role("group", name="Is de cliënt geïnformeerd").get_by_label("Nee").check()
    page.get_by_label("informeren brengt het kind of het gezin in gevaar").check()
    page.get_by_label(basis).check()


def send_melding(worker: Console, dossier_id: str, check: bool = False) -> str:
    """From the worker's start page to the status page of a sent melding; returns its id."""
    worker.goto("/console/werk")
    if check:
        worker.check("start-hulpverlener")
    worker.page.get_by_role("link", name="Melding Veilig Thuis").first.click()
    if check:
        worker.check("meldingen")
    worker.page.get_by_label("Dossiernummer").fill(dossier_id)
    worker.submit("Concept maken")
    if check:
        worker.check("concept")
    worker.submit("Verder: afweging en grondslag")
    if check:
        worker.submit("Controleren")
        assert worker.page.locator(".error-summary").is_visible()
        worker.check("afweging-fouten")
    answer_weighing(worker)
    if check:
        worker.check("afweging")
    worker.submit("Controleren")
    assert worker.heading() == "Controleren en versturen"
    if check:
        worker.check("controleren")
    worker.submit("Melding versturen")
    assert worker.heading().startswith("Melding ") and "aan Veilig Thuis" in worker.heading()
    return worker.page.locator("dl.facts code").last.inner_text()


def test_a_worker_drafts_and_sends_a_melding_that_reaches_veilig_thuis(world, console_factory):
    client = FIXTURES["clients"]["C-0001"]
    secret_street = client["address"]["street"]
    worker = console_factory(world.live)
    worker.login("hulpverlener")
    assert worker.heading().startswith("Goedendag")

    worker.page.get_by_role("link", name="Melding Veilig Thuis").first.click()
    worker.page.get_by_label("Dossiernummer").fill("D-0001")
    worker.submit("Concept maken")
    assert worker.heading() == "Concept-melding voor dossier D-0001"
    # The draft: filled from the dossier, with the region, and the secret address held back.
    text = worker.text()
    assert "Gaat naar: Veilig Thuis Amsterdam Amstelland" in text
    assert client["first_name"] in text and client["last_name"] in text
    withheld = worker.page.locator("ul.withheld").inner_text()
    for field in ("slachtoffer: adres", "slachtoffer: telefoonnummer", "kinderen: school"):
        assert field in withheld
    assert secret_street not in worker.page.content()
    assert "staat niet in het register" in text and "Meldrecht" in text

    exchange_id = send_melding(worker, "D-0001", check=True)
    assert "De melding is aangeboden aan Veilig Thuis" in worker.flash()

    # Veilig Thuis has it — once, in the right region, without the secret address.
    received = eventually(lambda: world.vt_received())
    assert [(r["region"], r["kenmerk"]) for r in received] == [("amsterdam-amstelland", exchange_id)]
    assert secret_street not in received[0]["xml"]
    assert "<Uitzondering>gevaar_kind_of_gezin</Uitzondering>" in received[0]["xml"]

    # The status timeline follows it: delivered, and Veilig Thuis's receipt arrives.
    def shows_receipt() -> bool:
        worker.page.reload()
        return "Ontvangst bevestigd\nja" in worker.page.locator("dl.facts").inner_text()

    eventually(shows_receipt, timeout=30, interval=0.5)
    timeline = worker.page.locator("ol.timeline").inner_text()
    for step in ("ontvangen", "toegestaan", "in de wachtrij", "afgeleverd"):
        assert step in timeline
    facts = worker.page.locator("dl.facts").inner_text()
    assert "Meldrecht" in facts and "vt-amsterdam-amstelland" in facts and "VT-AMS-" in facts
    worker.check("status")

    # Feedback that came by phone is entered by hand and becomes part of the record.
    worker.page.get_by_label("Soort terugkoppeling").select_option("besluit")
    worker.page.get_by_label("Besluit (alleen bij een besluit)").select_option("advies")
    worker.page.get_by_label("Toelichting").fill("Telefonisch doorgegeven door Veilig Thuis.")
    worker.submit("Terugkoppeling vastleggen")
    assert "De terugkoppeling is vastgelegd" in worker.flash()
    assert "Veilig Thuis geeft advies aan de melder" in worker.page.locator("dl.facts").inner_text()

    worker.goto("/console/veiligthuis")
    row = worker.page.locator("tbody tr", has_text=exchange_id[:8])
    assert "Veilig Thuis geeft advies aan de melder" in row.inner_text()
    worker.check("meldingen-na-versturen")


def test_with_consent_as_basis_but_none_in_the_register_nothing_leaves_and_she_is_told_why(world, console_factory):
    worker = console_factory(world.live)
    worker.login("hulpverlener")
    worker.goto("/console/veiligthuis")
    worker.page.get_by_label("Dossiernummer").fill("D-0002")
    worker.submit("Concept maken")
    worker.submit("Verder: afweging en grondslag")
    answer_weighing(worker, basis="Met toestemming van de cliënt")
    worker.submit("Controleren")
    worker.submit("Melding versturen")
    summary = worker.page.locator(".error-summary")
    assert "Niet verstuurd: er is geen geldige grondslag" in summary.inner_text()
    assert "no active consent" in summary.inner_text()
    worker.check("geweigerd")
    assert world.vt_received() == []

    # Back to the weighing with her answers kept; she switches to meldrecht, and it leaves.
    worker.submit("Terug naar de afweging")
    assert worker.page.get_by_label("Uw besluit (stap 5)").input_value() == "melden bij Veilig Thuis en hulp blijven bieden"
    worker.page.get_by_label("Meldrecht").check()
    worker.submit("Controleren")
    worker.submit("Melding versturen")
    assert "De melding is aangeboden" in worker.flash()
    assert [r["region"] for r in eventually(lambda: world.vt_received())] == ["utrecht"]


def test_an_unknown_dossier_gets_a_clear_dutch_page_not_a_traceback(world, console_factory):
    worker = console_factory(world.live)
    worker.login("hulpverlener")
    worker.goto("/console/veiligthuis")
    worker.page.get_by_label("Dossiernummer").fill("D-9999")
    worker.submit("Concept maken")
    assert worker.heading() == "Dossier niet gevonden"
    assert "Het ECD kent dit dossiernummer niet." in worker.text()
    worker.check("dossier-onbekend")
    worker.goto("/console/veiligthuis")
    worker.page.get_by_label("Dossiernummer").fill("../clients/C-0005")
    worker.submit("Concept maken")
    assert "Vul het dossiernummer in zoals het in het ECD staat" in worker.page.locator(".error-summary").inner_text()
