"""The iWmo batch import: ``gateway wmo import BATCH.zip`` over a ZIP of distinct WMO301 messages.

Each message is bench/messages/wmo301.xml with its own Identificatie and a fictional BSN of one of
the Care4 simulator's clients. The rate is messages per second of the command's wall time,
start-up included, on a fresh SQLite database; the per-message outcomes come from its
``--report`` file, and the exchanges it queued are counted in the database (delivering them to
the ECD afterwards is the delivery workers' job, measured by the load passes, not here). When the
command does not exist in this checkout, the figure is reported as not measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from loadgen import MESSAGES
from schakel import configure, gateway_env

COMMAND = ["gateway", "wmo", "import"]


def available() -> bool:
    probe = subprocess.run([sys.executable, "-m", "gateway.cli", "wmo", "import", "--help"], capture_output=True,
                           text=True)
    return probe.returncode == 0


def write_batch(path: Path, count: int, bsns: tuple[str, ...]) -> None:
    template = (MESSAGES / "wmo301.xml").read_text()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            body = template.replace("@ID@", f"imp{i:09d}").replace("@BSN@", bsns[i % len(bsns)])
            archive.writestr(f"wmo301-{i:05d}.xml", body)


def run(count: int, workdir: Path, care4_url: str, bsns: tuple[str, ...]) -> dict[str, Any]:
    command = " ".join(COMMAND) + " BATCH.zip --report OUTCOMES.jsonl"
    if not available():
        return {"measured": False, "messages": count, "command": command,
                "reason": "`gateway wmo import` does not exist in this checkout yet"}
    workdir.mkdir(parents=True, exist_ok=True)
    batch = workdir / "wmo301-batch.zip"
    write_batch(batch, count, bsns)
    outcomes_file = workdir / "outcomes.jsonl"
    env = gateway_env(f"sqlite:///{workdir / 'schakel.db'}", workdir)
    configure(env, "http://127.0.0.1:9", care4_url)
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "wmo", "import", str(batch), "--report", str(outcomes_file)],
                         env={**os.environ, **env}, capture_output=True, text=True)
    seconds = time.monotonic() - began
    (workdir / "import.log").write_text(out.stdout + out.stderr)
    from sqlalchemy import create_engine, text

    engine = create_engine(env["GATEWAY_DATABASE_URL"])
    with engine.connect() as conn:
        exchanges = conn.execute(text("SELECT count(*) FROM exchanges WHERE route_id = 'wmo.toewijzing'")).scalar()
    engine.dispose()
    outcomes = Counter(json.loads(line)["outcome"] for line in outcomes_file.read_text().splitlines()
                       if line.strip()) if outcomes_file.exists() else Counter()
    return {"measured": True, "messages": count, "batch_bytes": batch.stat().st_size, "command": command,
            "exit_code": out.returncode, "seconds": round(seconds, 2),
            "messages_per_second": round(count / seconds, 1), "outcomes": dict(outcomes),
            "exchanges_queued": exchanges}
