"""An ondersteuningsplan becomes a draft gezinsactieplan in the dossier, due 10 days after signing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import httpx

from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[3]
FIVE = {"financien": 2, "huisvesting": 1, "huiselijke_relaties": 1, "geestelijke_gezondheid": 3, "sociaal_netwerk": 2}


def plan(plan_id: str = "OP-2026-0001", signed: date | None = None, arrangement: str | None = "intramuraal",
         zrm: str = "2017", domains: dict[str, int] | None = None, bsn: str = "999900006", gemeente: str = "0384") -> bytes:
    signed = signed or date.today() - timedelta(days=3)
    scored = domains if domains is not None else FIVE
    rows = "".join(
        f'<Domein code="{code}" score="{score}"><Resultaat>Resultaat {n} voor {code}</Resultaat>'
        f'<Resultaat>Tweede resultaat voor {code}</Resultaat></Domein>' for n, (code, score) in enumerate(scored.items(), 1))
    # Two domains scored without agreed results: no section for them.
    unscored = '<Domein code="justitie" score="5"/><Domein code="lichamelijke_gezondheid" score="4"/>'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Ondersteuningsplan xmlns="urn:schakel:ondersteuningsplan:1.0" versie="1.0">
  <PlanId>{plan_id}</PlanId>
  <Client><Bsn>{bsn}</Bsn><Voornamen>Tim</Voornamen><Achternaam>de Wit</Achternaam><Geboortedatum>1967-08-13</Geboortedatum></Client>
  <Gemeente><Code>{gemeente}</Code><Naam>Diemen (fictief)</Naam></Gemeente>
  <WmoConsulent><Naam>M. Consulent (fictief)</Naam><Telefoon>020-1234567</Telefoon></WmoConsulent>
  <Ondertekend>{signed.isoformat()}</Ondertekend>
  {f"<Arrangement>{arrangement}</Arrangement>" if arrangement else ""}
  <Kinderen><Kind><Voornaam>Sam</Voornaam><Geboortedatum>2017-03-02</Geboortedatum>
    <Kio ondersteuning="true"><Resultaat>Sam gaat naar school vanuit de opvang</Resultaat></Kio></Kind></Kinderen>
  <Zrm{zrm}>{rows}{unscored if zrm == "2017" else ""}</Zrm{zrm}>
</Ondersteuningsplan>""".encode()


def send(world, body: bytes, as_partner: bool = True) -> httpx.Response:
    if as_partner:
        with world.live.client("partner", "gemeente-diemen") as municipality:
            return municipality.post("/partners/wmo/ondersteuningsplannen", content=body,
                                     headers={"Content-Type": "application/xml"})
    with world.worker() as worker:
        return worker.post("/api/v1/wmo/ondersteuningsplannen", content=body, headers={"Content-Type": "application/xml"})


def documents(world) -> list[dict]:
    return [d for d in world.care4.app.state.ecd.documents.values() if d["kind"] == "gezinsactieplan"]


def due_list(world, status: str | None = None) -> list[dict]:
    with world.worker() as worker:
        return worker.get("/api/v1/wmo/gezinsactieplannen", params={"status": status} if status else None).json()["items"]


def test_a_plan_with_results_in_five_domains_becomes_a_draft_with_five_sections_and_a_due_date(wmo_world):
    response = send(wmo_world, plan())
    assert response.status_code == 202, response.text
    assert response.json()["due"] == (date.today() + timedelta(days=7)).isoformat()
    eventually(lambda: documents(wmo_world))
    (draft,) = documents(wmo_world)
    assert draft["dossier_id"] == "D-0024" and draft["status"] == "draft" and draft["reference"] == "OP-2026-0001"
    sections = draft["content"]["sections"]
    assert [s["domain"] for s in sections] == list(FIVE)
    assert all(len(s["goals"]) == 2 and all(g["action_steps"] == [] for g in s["goals"]) for s in sections)
    assert sections[0]["title"] == "Financiën" and sections[0]["score_label"] == "niet zelfredzaam"
    (child,) = draft["content"]["kio"]
    assert child["first_name"] == "Sam" and child["kio"] is True and child["goals"][0]["action_steps"] == []
    assert draft["content"]["source_plan"] == {"plan_id": "OP-2026-0001", "gemeentecode": "0384",
                                                "signed": (date.today() - timedelta(days=3)).isoformat(),
                                                "zrm_version": "2017", "wmo_consulent": "M. Consulent (fictief)"}
    assert "999900006" not in str(draft), "the client's BSN only finds the dossier; it is not copied into the draft"
    eventually(lambda: due_list(wmo_world) and due_list(wmo_world)[0]["document_id"])
    (item,) = due_list(wmo_world)
    assert (item["status"], item["days_left"], item["dossier_id"]) == ("open", 7, "D-0024")


def test_the_due_list_warns_about_late_and_nearly_late_plans_until_the_draft_is_made_final(wmo_world):
    today = date.today()
    for plan_id, signed, arrangement in (("OP-LAAT", today - timedelta(days=12), "intramuraal"),
                                         ("OP-BIJNA", today - timedelta(days=9), "extramuraal"),
                                         ("OP-WACHT", today - timedelta(days=20), None)):
        assert send(wmo_world, plan(plan_id, signed, arrangement)).status_code == 202
    eventually(lambda: all(i["document_id"] for i in due_list(wmo_world)) and len(due_list(wmo_world)) == 3)
    statuses = {i["plan_id"]: i["status"] for i in due_list(wmo_world)}
    assert statuses == {"OP-LAAT": "te_laat", "OP-BIJNA": "bijna", "OP-WACHT": "wacht_op_arrangement"}
    assert [i["plan_id"] for i in due_list(wmo_world, "te_laat,bijna")] == ["OP-LAAT", "OP-BIJNA"]
    # The caseworker finishes the late plan in the ECD: it leaves the warning list.
    late = next(i for i in due_list(wmo_world) if i["plan_id"] == "OP-LAAT")
    wmo_world.care4.app.state.ecd.documents[late["document_id"]]["status"] = "final"
    assert {i["plan_id"]: i["status"] for i in due_list(wmo_world)}["OP-LAAT"] == "opgeleverd"


def test_a_zrm_2013_plan_is_recognised_and_converted(wmo_world):
    old = plan("OP-2013", zrm="2013", domains={"dagbesteding": 2, "verslaving": 3, "adl": 4, "financien": 1})
    response = send(wmo_world, old, as_partner=False)
    assert response.status_code == 202, response.text
    assert response.json()["zrm_version"] == "2013"
    assert response.json()["sections"] == ["tijdsbesteding", "middelengebruik", "basale_adl", "financien"]
    eventually(lambda: documents(wmo_world))
    notes = [s.get("conversion_note") for s in documents(wmo_world)[0]["content"]["sections"]]
    assert "Werk & opleiding" in notes[0] and notes[3] is None


def test_bad_plans_get_a_problem_and_nothing_is_written(wmo_world):
    bad_bsn = send(wmo_world, plan(bsn="999900007"))
    other_municipality = send(wmo_world, plan(gemeente="0344"))
    unknown_client = send(wmo_world, plan(bsn="999999990"))
    invalid = send(wmo_world, plan().replace(b'score="2"', b'score="7"'))
    wrong_root = send(wmo_world, b'<Plan xmlns="urn:iets:anders"/>')
    attack = send(wmo_world, b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    for response, slug in ((bad_bsn, "validation-failed"), (other_municipality, "partner-mismatch"),
                           (unknown_client, "not-found"), (invalid, "message-invalid"), (wrong_root, "message-invalid"),
                           (attack, "xml-forbidden-construct")):
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["type"] == f"/problems/{slug}"
    assert due_list(wmo_world) == [] and documents(wmo_world) == []


def test_the_same_plan_twice_makes_one_draft(wmo_world):
    first, second = send(wmo_world, plan()), send(wmo_world, plan())
    assert first.status_code == second.status_code == 202
    assert second.json()["exchange_id"] == first.json()["exchange_id"]


def test_the_cli_lists_overdue_plans_first(wmo_world, settings):
    assert send(wmo_world, plan("OP-LAAT", date.today() - timedelta(days=11))).status_code == 202
    assert send(wmo_world, plan("OP-OPEN")).status_code == 202
    eventually(lambda: all(i["document_id"] for i in due_list(wmo_world)) and len(due_list(wmo_world)) == 2)
    env = {"GATEWAY_ENVIRONMENT": "test", "GATEWAY_DATABASE_URL": settings.database_url,
           "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_LOG_LEVEL": "WARNING",
           "GATEWAY_ENCRYPTION_KEYS": ",".join(k.get_secret_value() for k in settings.encryption_keys),
           "GATEWAY_PSEUDONYM_KEY": settings.pseudonym_key.get_secret_value(),
           "GATEWAY_AUDIT_SIGNING_KEY": settings.audit_signing_key.get_secret_value()}
    listed = subprocess.run([sys.executable, "-m", "gateway.cli", "wmo", "plannen"], env={**os.environ, **env}, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if "OP-" in line]
    assert "te_laat" in lines[0] and "OP-LAAT" in lines[0] and "open" in lines[1] and "OP-OPEN" in lines[1]
