"""Police and municipalities ask about a client: answered only where a basis holds, with the minimal
mapped set, and audited either way; otherwise refused with the reason."""

from __future__ import annotations

from plugins.police.tests.conftest import FIXTURES, huisverbod
from tests.conftest import grant_consent
from tests.helpers import eventually

FATIMA, BRAM = FIXTURES["clients"]["C-0004"], FIXTURES["clients"]["C-0002"]


def request(kenmerk: str, bsn: str, **extra) -> dict:
    return {"versie": "1.0", "kenmerk": kenmerk, "bsn": bsn,
            "doel": "Afstemming van de hulp tijdens het huisverbod (fictief).", **extra}


def ask(world, body: dict, partner: str = "gemeente-nieuwegein"):
    with world.partner(partner) as requester:
        return requester.post("/partners/police/informatieverzoeken", json=body)


def audit_of(world, exchange_id: str) -> list[dict]:
    with world.live.client("privacy") as officer:
        return officer.get("/api/v1/audit", params={"exchange": exchange_id}).json()["items"]


def test_without_a_basis_the_request_is_refused_with_the_reason_and_audited(world):
    refused = ask(world, request("IV-2026-001", FATIMA["bsn"], gevraagd=["contactpersoon"]))
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "/problems/refused"
    assert problem["accepted_bases"] == ["huisverbod", "toestemming"]
    assert set(problem["missing_basis"]) == {"huisverbod", "toestemming"}
    assert problem["basis_reasons"]["huisverbod"] == "huisverbod requires a recorded decision_reference"
    assert "no active consent of the client for partner gemeente-nieuwegein" in problem["basis_reasons"]["toestemming"]
    events = audit_of(world, problem["exchange_id"])
    refusal = next(e for e in events if e["event_type"] == "exchange.refused")
    assert refusal["outcome"] == 8 and refusal["partner_id"] == "gemeente-nieuwegein"
    assert refusal["detail"].startswith("no basis allows this exchange") and refusal["partner_message_id"] == "IV-2026-001"
    assert not any(e["event_type"] in ("exchange.queued", "exchange.delivered") for e in events)
    assert FATIMA["bsn"] not in refused.text and FATIMA["last_name"] not in refused.text
    # A partner that may not ask at all is refused before anything is read, and that is audited too.
    organisation = ask(world, request("IV-2026-009", FATIMA["bsn"]), partner="stichting-nazorg")
    assert organisation.status_code == 403 and organisation.json()["type"] == "/problems/forbidden"
    with world.live.client("privacy") as officer:
        (entry,) = officer.get("/api/v1/audit", params={"event_type": "informatieverzoek.refused"}).json()["items"]
    assert (entry["partner_id"], entry["partner_message_id"], entry["outcome"]) == ("stichting-nazorg", "IV-2026-009", 8)
    assert entry["client"] == events[0]["client"]
    assert world.received()["answers"] == []


def test_a_running_huisverbod_naming_the_client_is_a_basis_and_the_answer_is_the_minimal_set(world):
    with world.partner("gemeente-nieuwegein") as municipality:
        assert municipality.post("/partners/police/huisverboden", json=huisverbod()).status_code == 202
    named = {"gemeentecode": "0356", "kenmerk": "THV-0356-2026-0042"}
    not_named = ask(world, request("IV-2026-002", BRAM["bsn"], grondslag="huisverbod", huisverbod=named))
    assert not_named.status_code == 403
    assert not_named.json()["basis_reasons"]["huisverbod"] == "the huisverbod named does not name this client"
    unknown = ask(world, request("IV-2026-003", FATIMA["bsn"], grondslag="huisverbod",
                                 huisverbod={**named, "kenmerk": "THV-0356-2026-9999"}))
    assert unknown.json()["basis_reasons"]["huisverbod"] == "no huisverbod with that kenmerk was notified to this organisation"
    outside = ask(world, request("IV-2026-004", FATIMA["bsn"], grondslag="huisverbod", huisverbod=named),
                  partner="gemeente-amsterdam")
    assert outside.json()["basis_reasons"]["huisverbod"] == "the huisverbod named is not in your area"

    answered = ask(world, request("IV-2026-005", FATIMA["bsn"], grondslag="huisverbod", huisverbod=named,
                                  gevraagd=["hulpverlening", "contactpersoon"]))
    assert answered.status_code == 202, answered.text
    (received,) = eventually(lambda: world.received()["answers"])
    worker = FIXTURES["dossiers"]["D-0004"]["worker"]
    assert received["partner"] == "gemeente-nieuwegein"
    assert received["answer"] == {
        "verzoek_kenmerk": "IV-2026-005", "bekend": True,
        "hulpverlening": {"status": "actief", "sinds": FIXTURES["dossiers"]["D-0004"]["opened_at"]},
        "contactpersoon": {"naam": worker["name"], "organisatie": worker["organisation"], "rol": worker["role"],
                           "telefoon": worker["phone"], "email": worker["email"]},
    }
    delivered = next(e for e in audit_of(world, answered.json()["exchange_id"]) if e["event_type"] == "exchange.delivered")
    assert delivered["legal_basis"] == "huisverbod" and delivered["purpose_of_use"] == "informatieverstrekking"
    assert delivered["fields"] == sorted(answered.json()["fields"])


def test_with_the_clients_consent_only_what_was_asked_is_answered(world):
    grant_consent(world.live.gw, BRAM["bsn"], partner_id="politie-utrecht", purpose="informatieverstrekking")
    answered = ask(world, request("IV-2026-010", BRAM["bsn"]), partner="politie-utrecht")
    assert answered.status_code == 202, answered.text
    (received,) = eventually(lambda: world.received()["answers"])
    assert received["answer"] == {"verzoek_kenmerk": "IV-2026-010", "bekend": True}
    delivered = next(e for e in audit_of(world, answered.json()["exchange_id"]) if e["event_type"] == "exchange.delivered")
    assert delivered["legal_basis"] == "toestemming" and delivered["consent_id"]


def test_an_answer_on_a_huisverbod_withdrawn_while_it_waited_is_not_delivered(world):
    """The basis is asked again before every attempt: a retry after the mayor withdrew the
    huisverbod is refused, while one on a huisverbod that still runs goes as usual."""
    from datetime import datetime

    from schakel_police.clock import NL

    with world.partner("gemeente-nieuwegein") as municipality:
        assert municipality.post("/partners/police/huisverboden", json=huisverbod()).status_code == 202
    named = {"gemeentecode": "0356", "kenmerk": "THV-0356-2026-0042"}

    def waiting_answer(kenmerk: str) -> str:
        world.control(mode="status", status=503, count=1000)
        answered = ask(world, request(kenmerk, FATIMA["bsn"], grondslag="huisverbod", huisverbod=named,
                                      gevraagd=["contactpersoon"]))
        assert answered.status_code == 202, answered.text
        exchange_id = answered.json()["exchange_id"]
        with world.live.client("beheerder") as admin:
            eventually(lambda: admin.get(f"/api/v1/exchanges/{exchange_id}").json()["state"] == "failed")
        return exchange_id

    def final_state(exchange_id: str) -> dict:
        with world.live.client("beheerder") as admin:
            return eventually(lambda: (found := admin.get(f"/api/v1/exchanges/{exchange_id}").json())["state"]
                              in ("delivered", "refused") and found)

    still_running = waiting_answer("IV-2026-020")
    world.control(mode="ok")
    assert final_state(still_running)["state"] == "delivered"
    assert [a["answer"]["verzoek_kenmerk"] for a in world.received()["answers"]] == ["IV-2026-020"]

    withdrawn = waiting_answer("IV-2026-021")
    with world.partner("gemeente-nieuwegein") as municipality:
        assert municipality.post("/partners/police/huisverboden", json={
            "versie": "1.0", "soort": "ingetrokken", "kenmerk": named["kenmerk"], "gemeentecode": "0356",
            "beslist_op": datetime.now(NL).replace(microsecond=0).isoformat(),
            "reden": "Ingetrokken door de burgemeester (fictief)."}).status_code == 202
    world.control(mode="ok")
    refused = final_state(withdrawn)
    assert refused["state"] == "refused"
    assert refused["state_reason"] == "the basis huisverbod no longer holds: the huisverbod named was withdrawn"
    assert [a["answer"]["verzoek_kenmerk"] for a in world.received()["answers"]] == ["IV-2026-020"]
    assert any(e["event_type"] == "exchange.refused" for e in audit_of(world, withdrawn))


def test_a_withdrawal_queued_earlier_in_the_same_write_stops_an_answer_given_on_its_huisverbod(world):
    """A group commit writes the units of many requests in one transaction and inserts their
    exchanges just before it commits. A withdrawal accepted by an earlier unit is therefore not in
    the table yet when a later unit checks the basis of an answer given on that huisverbod, right
    before handing it to the delivery worker: the check must count it all the same."""
    from sqlalchemy import select

    from gateway.core.ids import new_id
    from gateway.core.models import Exchange, Partner, utcnow
    from gateway.core.store import queue_insert
    from schakel_police.huisverbod import correlation_id
    from schakel_police.plugin import HUISVERBOD_CHANGE

    gw = world.live.gw
    with world.partner("gemeente-nieuwegein") as municipality:
        assert municipality.post("/partners/police/huisverboden", json=huisverbod()).status_code == 202
    named = {"gemeentecode": "0356", "kenmerk": "THV-0356-2026-0042"}
    world.control(mode="status", status=503, count=1000)  # the answer waits in the outbox
    answered = ask(world, request("IV-2026-030", FATIMA["bsn"], grondslag="huisverbod", huisverbod=named,
                                  gevraagd=["contactpersoon"]))
    assert answered.status_code == 202, answered.text
    with world.live.client("beheerder") as admin:
        eventually(lambda: admin.get(f"/api/v1/exchanges/{answered.json()['exchange_id']}").json()["state"] == "failed")

    with gw.store.reading() as session:  # rolled back: the withdrawal below is never written
        answer = session.get(Exchange, answered.json()["exchange_id"])
        partner = session.get(Partner, answer.partner_id)
        assert gw.policy.recheck(session, answer, partner).allowed  # the order runs
        opened = session.scalars(select(Exchange).where(
            Exchange.correlation_id == correlation_id(named["gemeentecode"], named["kenmerk"]))).first()
        # What the withdrawal's unit queues: an exchange on the order's change route, its context
        # saying the order was withdrawn.
        withdrawal = {column.key: getattr(opened, column.key) for column in Exchange.__table__.columns}
        withdrawal.update(id=new_id(), route_id=HUISVERBOD_CHANGE, created_at=utcnow(), updated_at=utcnow(),
                          partner_message_id=f"thv:0356:{named['kenmerk']}:ingetrokken:achterblijvers",
                          context_encrypted=gw.box.encrypt_json({"soort": "ingetrokken"}))
        queue_insert(session, Exchange, withdrawal)
        decision = gw.policy.recheck(session, answer, partner)
    assert not decision.allowed
    assert decision.reason == "the basis huisverbod no longer holds: the huisverbod named was withdrawn"
