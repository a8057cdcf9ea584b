"""The partner alone: how many WMO301 deliveries the Care4 simulator itself takes on this machine.

Schakel delivers a WMO301 to the ECD in three requests (the client by BSN, her arrangements, the
write of the new one), and the simulator that answers them is one Python process on the same cores.
Here wrk sends it exactly those three requests in turn, with no gateway in between: the rate of
writes it reaches is the most that any gateway sending it those requests could deliver in the
same moment — an upper bound for Schakel's WMO301 rate, measured in the same rounds as the
systems. wrk keeps every connection busy and sends no more than the requests need, so the bound
errs high, never low.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from loadgen import wrk_summary
from procs import children_cpu_seconds
from sink import bench_clients

HERE = Path(__file__).resolve().parent


def _arrangement() -> dict[str, Any]:
    """The arrangement Schakel writes for the bench's WMO301 (its one ToegewezenProduct)."""
    from schakel_wmo.toewijzing import allocations

    _, found = allocations(etree.fromstring((HERE / "messages" / "wmo301.xml").read_bytes()))
    return {**found[0], "municipality": "0384", "status": "actief", "as_of": "2026-12-01T10:00:00+00:00"}


def run(partners: Any, *, seconds: float, connections: int, prefix: str, workdir: Path) -> dict[str, Any]:
    from schakel_care4.fixtures import build
    from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET

    workdir.mkdir(parents=True, exist_ok=True)
    partners.start("care4")  # afresh, as for each of Schakel's WMO301 passes
    url = partners.urls["care4"]
    token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                   "client_secret": CLIENT_SECRET}, timeout=10).json()["access_token"]
    clients = [c for c in (*build()["clients"].values(), *bench_clients().values()) if c.get("bsn")]
    (workdir / "clients.txt").write_text("".join(f"{c['bsn']} {c['id']}\n" for c in clients))
    arrangement = _arrangement()
    (workdir / "body.json").write_text(json.dumps(arrangement))
    httpx.post(url + "/_reset", timeout=10).raise_for_status()
    partner = partners.procs["care4"]
    cpu_before, wrk_before = partner.cpu_seconds(), children_cpu_seconds()
    env = {"BENCH_CLIENTS": str(workdir / "clients.txt"), "BENCH_BODY": str(workdir / "body.json"),
           "BENCH_TOKEN": token, "BENCH_PREFIX": prefix, "BENCH_NUMBER": arrangement["allocation_number"]}
    output = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                             "-s", str(HERE / "ecd.lua"), url], env={**os.environ, **env}, capture_output=True,
                            text=True).stdout
    cpu, wrk_cpu = partner.cpu_seconds() - cpu_before, children_cpu_seconds() - wrk_before
    summary = wrk_summary(output)
    records = httpx.get(url + "/_records", timeout=60).json()["records"]
    writes = [r for r in records if r[0] == "PUT" and 200 <= r[6] < 300]
    failed = sum(1 for r in records if not 200 <= r[6] < 300)
    times = [r[4] for r in records]
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    return {"rate": round(len(writes) / span, 1) if span else 0.0, "writes": len(writes), "requests": len(records),
            "failed": failed, "seconds": round(span, 2), "wrk": summary,
            "partner_cpu_ms_per_write": round(cpu * 1000 / len(writes), 2) if writes else None,
            "wrk_cpu_ms_per_write": round(wrk_cpu * 1000 / len(writes), 2) if writes else None}
