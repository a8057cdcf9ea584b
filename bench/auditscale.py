"""The audit trail at a million entries: written, verified and queried with the gateway's own code.

For each exchange, the six entries that :func:`gateway.core.exchange.transition` records on its
way ``received -> validated -> authorised -> queued -> sending -> delivered`` are written with the
same fields, beside the exchange row and its transitions (bulk-inserted). Two write paths:

- the first ``through_seal`` entries go through :func:`gateway.core.audit.record` and the store's
  commit, which seals them into the chain (:func:`gateway.core.audit.seal`): the real path, timed;
- the rest are bulk-inserted rows whose ``prev_hash`` and ``hash`` are computed with the
  gateway's own :func:`gateway.core.audit.entry_hash`, continuing the chain from its head — the
  real path writes one INSERT per entry, too slow for a million in a bounded run.

Either way the chain is then checked whole by ``gateway audit verify`` (timed as the command an
operator runs), and the access report (AVG art. 15) of ``C-1001`` — one of 20,000 fictional
clients, with an exchange in every 2,000 — is asked of a running ``gateway serve`` over HTTP.
Message bodies are absent, as after the retention purge.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from measure import percentiles
from procs import Proc, free_port, wait_for
from schakel import (JSON_CLIENT, JSON_PARTNER, configure, create_postgres_database, drop_postgres_database, gateway,
                     gateway_env)

STATES = ("received", "validated", "authorised", "queued", "sending", "delivered")
CLIENTS = 20_000
TARGET_EVERY = 2_000
FIELDS = ["category", "reference", "text"]


def _entries_for(exchange: dict[str, Any], worker: Any, delivery: Any) -> list[dict[str, Any]]:
    from gateway.core.exchange import _AUDIT as ACTION_AND_OUTCOME  # the codes transition() records

    entries = []
    for state in STATES:
        leaving = state in ("sending", "delivered")
        entries.append(dict(
            event_type=f"exchange.{state}", actor=delivery if leaving else worker,
            action_code=ACTION_AND_OUTCOME[state][0], outcome=ACTION_AND_OUTCOME[state][1], purpose="signalering",
            client=exchange["subject"], exchange_id=exchange["id"], message_type="notice", partner_id=JSON_PARTNER,
            legal_basis="toestemming", consent_id=exchange["consent_id"],
            fields=FIELDS if leaving or state == "queued" else None, payload_digest=exchange["payload_digest"]))
    return entries


def _chain_rows(session: Any, entries: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Rows for ``audit_log`` linked to the current head, hashed by the gateway's own function."""
    from sqlalchemy import select

    from gateway.core import audit
    from gateway.core.models import AuditEntry

    head = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq, previous = (head.seq, head.hash) if head else (0, audit.GENESIS)
    rows = []
    for entry in entries:
        fields = dict(entry)
        actor, purpose = fields.pop("actor"), fields.pop("purpose")
        seq += 1
        row = dict(fields, event_id=str(uuid.uuid4()), occurred_at=now, user_id=actor.user_id, role=actor.role,
                   on_behalf_of=actor.on_behalf_of, purpose_of_use=purpose, access_point=actor.access_point,
                   partner_message_id=None, detail=None, fields=sorted(fields["fields"] or []))
        row["prev_hash"] = previous
        row["hash"] = previous = audit.entry_hash(previous, SimpleNamespace(**row))
        row["seq"] = seq  # explicit, so the chain's order is the insert order on every backend
        rows.append(row)
    return rows


def _populate(env: dict[str, str], entries: int, through_seal: int) -> dict[str, Any]:
    from sqlalchemy import insert, text

    from gateway.core import audit
    from gateway.core.models import AuditEntry, Exchange, Transition, utcnow

    gw = gateway(env)
    rng = random.Random(7513)
    subjects = [gw.pseudonymise(f"C-{100_000 + i}") for i in range(CLIENTS)]
    target = gw.pseudonymise(JSON_CLIENT)
    worker = audit.Actor("bench-hulpverlener", "hulpverlener", access_point="api")
    delivery = audit.Actor.system("delivery")
    exchanges = entries // len(STATES)
    batch = min(5_000, max(100, exchanges // 4))  # exchanges per transaction
    start = utcnow() - timedelta(days=365)
    made = 0
    paths = {"record_and_seal": {"entries": 0, "seconds": 0.0}, "bulk_with_entry_hash": {"entries": 0, "seconds": 0.0}}
    while made < exchanges:
        began = time.monotonic()
        path = "record_and_seal" if paths["record_and_seal"]["entries"] < through_seal else "bulk_with_entry_hash"
        rows, transitions, pending = [], [], []
        for _ in range(min(batch, exchanges - made)):
            made += 1
            exchange_id = str(uuid.uuid4())
            created = start + timedelta(seconds=made * 365 * 86400 / exchanges)
            rows.append(dict(
                id=exchange_id, correlation_id=str(uuid.uuid4()), route_id="webhook.notice", message_type="notice",
                source="token:bench-hulpverlener", connector_type="webhook", partner_id=JSON_PARTNER,
                subject=target if made % TARGET_EVERY == 0 else rng.choice(subjects), purpose="signalering",
                legal_basis="toestemming", consent_id=str(uuid.uuid4()), state="delivered",
                idempotency_key=f"schakel-{exchange_id}", content_type="application/json",
                payload_digest="sha256:" + uuid.uuid4().hex + uuid.uuid4().hex, fields_out=FIELDS,
                retry_policy="standard", attempts=1, replays=0, retry_started_at=created,
                created_by="bench-hulpverlener", created_at=created, updated_at=created,
                delivered_at=created + timedelta(milliseconds=40), body_purged_at=created + timedelta(days=90)))
            previous = None
            for state in STATES:
                leaving = state in ("sending", "delivered")
                transitions.append(dict(exchange_id=exchange_id, from_state=previous, to_state=state, at=created,
                                        actor=(delivery if leaving else worker).user_id, attempt=1 if leaving else None))
                previous = state
            pending.extend(_entries_for(rows[-1], worker, delivery))
        with gw.store.transaction() as session:
            session.execute(insert(Exchange.__table__), rows)
            session.execute(insert(Transition.__table__), transitions)
            if path == "record_and_seal":
                for entry in pending:
                    audit.record(session, **entry)
            else:
                session.execute(insert(AuditEntry.__table__), _chain_rows(session, pending, utcnow()))
        paths[path]["entries"] += len(pending)
        paths[path]["seconds"] += time.monotonic() - began
    if gw.store.is_postgres:
        with gw.store.transaction() as session:  # explicit seqs left the sequence behind
            session.execute(text("SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), (SELECT max(seq) FROM audit_log))"))
    gw.store.dispose()
    for path in paths.values():
        path["entries_per_second"] = round(path["entries"] / path["seconds"], 1) if path["seconds"] else None
        path["seconds"] = round(path["seconds"], 1)
    return {"exchanges": exchanges, "entries": exchanges * len(STATES), "paths": paths,
            "target_client_exchanges": exchanges // TARGET_EVERY, "clients": CLIENTS}


def _verify(env: dict[str, str], log: Path) -> dict[str, Any]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify"], env={**os.environ, **env},
                         capture_output=True, text=True)
    seconds = time.monotonic() - started
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0 or "intact" not in out.stdout:
        raise RuntimeError(f"audit verify failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    entries = int(out.stdout.split("intact:")[1].split("entries")[0].strip().replace(",", ""))
    return {"entries": entries, "seconds": round(seconds, 2), "entries_per_second": round(entries / seconds, 1),
            "command": "gateway audit verify", "output": " ".join(out.stdout.split())}


def _access_report(env: dict[str, str], token: str, workdir: Path, calls: int) -> dict[str, Any]:
    port = free_port()
    proc = Proc("access-report", [sys.executable, "-m", "gateway.cli", "serve"],
                {**env, "GATEWAY_PORT": str(port), "GATEWAY_HOST": "127.0.0.1"}, workdir / "access-report.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/ready", timeout=120)
        timings, exchanges = [], 0
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            for i in range(calls + 1):
                started = time.perf_counter()
                response = client.post("/api/v1/access-report", json={"client_id": JSON_CLIENT})
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                exchanges = len(response.json()["exchanges"])
                if i:  # the first call warms the process's caches
                    timings.append(elapsed)
    finally:
        proc.stop()
    return {"calls": calls, "exchanges_in_report": exchanges, "latency_ms": percentiles(timings),
            "endpoint": "POST /api/v1/access-report"}


def run(backend: str, entries: int, through_seal: int, workdir: Path, calls: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{workdir / 'audit.db'}" if backend == "sqlite" else create_postgres_database()
    try:
        env = gateway_env(database_url, workdir)
        tokens = configure(env, "http://127.0.0.1:9", "http://127.0.0.1:9")
        written = _populate(env, entries, through_seal)
        verified = _verify(env, workdir / "verify.log")
        report = _access_report(env, tokens["privacy"], workdir, calls)
    finally:
        if backend == "postgres":
            drop_postgres_database(database_url)
    return {"backend": backend, "written": written, "verify": verified, "access_report": report}
