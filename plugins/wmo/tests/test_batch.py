"""A batch of iWmo messages is imported message by message, each with its own outcome."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from lxml import etree

from gateway.core import audit
from gateway.core import partners as partner_registry
from gateway.core.runtime import Gateway
from gateway.core.store import upgrade
from schakel_wmo import generate, iwmo
from tests.conftest import settings_from_env, test_env

from .conftest import example

ROOT = Path(__file__).resolve().parents[3]


def zipped(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in entries:
            archive.writestr(name, body)
    return buffer.getvalue()


def upload(world, data: bytes, content_type: str = "application/zip"):
    with world.live.client("beheerder") as admin:
        return admin.post("/api/v1/wmo/batches", content=data, headers={"Content-Type": content_type})


def test_a_batch_with_one_broken_message_imports_the_good_ones_with_an_outcome_for_each(wmo_world):
    good = generate.messages(3)
    broken = ("kapot.xml", example("WMO301").replace(b"<wmo301:BerichtCode>414</wmo301:BerichtCode>", b""))
    attack = ("aanval.xml", b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    stranger = ("utrecht.xml", example("WMO301").replace(b"<wmo301:Afzender>0384", b"<wmo301:Afzender>0999"))
    twice = [("a-official.xml", example("WMO301")), ("b-official-again.xml", example("WMO301"))]
    response = upload(wmo_world, zipped([*good, broken, attack, stranger, *twice]))
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["total"], report["geaccepteerd"], report["fout"]) == (8, 5, 3)
    by_name = {o["name"]: o for o in report["outcomes"]}
    assert by_name["kapot.xml"]["problem"] == "message-invalid"
    assert by_name["aanval.xml"]["problem"] == "xml-forbidden-construct"
    assert by_name["utrecht.xml"]["problem"] == "no-partner"
    assert by_name["b-official-again.xml"]["replayed"] is True
    assert all(by_name[name]["retourcodes"] == ["0200"] for name, _ in good)
    with wmo_world.live.client() as admin:
        exchanges = admin.get("/api/v1/exchanges", params={"route": "wmo.toewijzing", "limit": 100}).json()["items"]
    assert len(exchanges) == 4, "three generated and the official one once; nothing of the broken ones"


def test_an_empty_batch_or_an_unreadable_archive_is_refused_as_a_whole(wmo_world):
    empty_zip = upload(wmo_world, zipped([]))
    empty_body = upload(wmo_world, b"", "application/xml")
    torn = upload(wmo_world, zipped(generate.messages(2))[:60])
    assert empty_zip.status_code == 422 and empty_zip.json()["type"] == "/problems/validation-failed"
    assert empty_body.status_code in (400, 422) and empty_body.headers["content-type"] == "application/problem+json"
    assert torn.status_code == 400 and torn.json()["type"] == "/problems/bad-request"


def test_the_cli_imports_a_generated_batch_with_a_progress_bar_and_writes_outcomes_and_retours(tmp_path):
    env = test_env(f"sqlite:///{tmp_path / 'batch.db'}", tmp_path)
    gw = Gateway(settings_from_env(env))
    upgrade(gw.store.url)
    # The allocations are written to the ECD later, by a running gateway's outbox: no server is needed here.
    for partner in (partner_registry.PartnerIn(id="gemeente-diemen", connector_type="wmo", name="Gemeente Diemen (fictief)",
                                               endpoint="http://127.0.0.1:9", identifiers={"gemeentecode": "0384"},
                                               routing={"gemeentecode": ["0384"]}, config={"aanbieder_agb": "42420001"}),
                    partner_registry.PartnerIn(id="care4-ecd", connector_type="care4", name="ECD", endpoint="http://127.0.0.1:9")):
        with gw.store.transaction() as session:
            partner_registry.create(session, partner, gw.registry.connectors[partner.connector_type].manifest, gw.box,
                                    audit.Actor.system("test"))
    batch = tmp_path / "batch.zip"
    batch.write_bytes(generate.archive(40))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", "wmo", "import", *args], env={**os.environ, **env},
                              cwd=ROOT, capture_output=True, text=True, timeout=300)

    first = run(str(batch), "--report", str(tmp_path / "report.jsonl"), "--retours", str(tmp_path / "retours"))
    assert first.returncode == 0, first.stderr
    assert "40/40" in first.stderr and "40 messages: 40 geaccepteerd" in first.stderr
    outcomes = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert len(outcomes) == 40 and {o["outcome"] for o in outcomes} == {"geaccepteerd"}
    retours = sorted((tmp_path / "retours").iterdir())
    assert len(retours) == 40
    assert iwmo.validate("WMO302", etree.fromstring(retours[0].read_bytes())) == []
    again = run(str(batch), "--report", str(tmp_path / "again.jsonl"))
    assert again.returncode == 0, again.stderr
    replays = [json.loads(line)["replayed"] for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert replays == [True] * 40, "a batch imported twice is processed once"
