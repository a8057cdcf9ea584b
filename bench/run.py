"""Schakel's benchmark: one command measures everything in one run and writes the results.

    .venv/bin/python bench/run.py            # the full run: docs/benchmarks.{json,md,svg} (about 30 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # every part briefly (under a minute): $TMPDIR/schakel-bench-quick/

Everything runs on this machine and talks only to 127.0.0.1: the systems under test, the partner
they deliver to (bench/sink.py), wrk as the load generator and PostgreSQL at 127.0.0.1:5432 (a
temporary database, dropped afterwards). Every run stops by itself.
"""

from __future__ import annotations

import argparse
import shutil
import string
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

import auditscale
import batchimport
import ceiling
import report
from baselines import NodeRed, Relay, install_node_red
from loadgen import MESSAGES, Target, drive, ensure_wrk
from machine import describe
from measure import Arrival, summarise
from procs import (ROOT, Proc, backend_cpu_seconds, busy_cores, children_cpu_seconds, free_port, machine_busy_seconds,
                   wait_for)
from sink import bench_clients
from schakel import POSTGRES_SERVER, SchakelRun, create_postgres_database, drop_postgres_database, gateway_env


@dataclass(frozen=True)
class Plan:
    saturate_seconds: int
    paced_seconds: int
    warmup_seconds: float
    connections: int  # in flight at once, split over the gateway processes
    paced_connections: int
    paced_fraction: float  # the paced pass offers this share of the slowest system's end-to-end rate; 0: no paced pass
    rounds: int  # saturating passes per system, in rounds that take every system in turn; the median pass counts
    kinds: tuple[str, ...]
    schakel: tuple[tuple[str, int], ...]  # (backend, processes)
    relays: tuple[int, ...]  # relay processes
    aiohttp_relays: tuple[int, ...]  # the same relay on aiohttp's client: what the relay's own client costs
    node_red: bool
    partner_alone: bool  # in each WMO301 round, also the Care4 simulator alone (bench/ceiling.py)
    drain_timeout: float
    audit_backends: tuple[str, ...]
    audit_entries: int
    audit_through_seal: int
    access_report_calls: int
    startup_repeats: int
    startup_all: bool  # False: only Schakel on SQLite
    import_messages: int
    settle_seconds: float  # the most the whole run waits, before passes, for other work on the machine to pass


FULL = Plan(saturate_seconds=15, paced_seconds=20, warmup_seconds=2.0, connections=16, paced_connections=4,
            paced_fraction=0.5, rounds=3, kinds=("json", "wmo301"),
            schakel=(("sqlite", 1), ("sqlite", 2), ("postgres", 1), ("postgres", 2)), relays=(1, 2), aiohttp_relays=(1,),
            node_red=True, partner_alone=True,
            drain_timeout=300, audit_backends=("sqlite", "postgres"), audit_entries=1_000_002, audit_through_seal=30_000,
            access_report_calls=50, startup_repeats=3, startup_all=True, import_messages=10_000, settle_seconds=180)
QUICK = Plan(saturate_seconds=2, paced_seconds=1, warmup_seconds=0.5, connections=16, paced_connections=4,
             paced_fraction=0.0, rounds=1, kinds=("json", "wmo301"), schakel=(("sqlite", 1),), relays=(1,), aiohttp_relays=(1,),
             node_red=True, partner_alone=True,
             drain_timeout=30, audit_backends=("sqlite",), audit_entries=6_000, audit_through_seal=1_500,
             access_report_calls=5, startup_repeats=1, startup_all=False, import_messages=100, settle_seconds=0)

QUIET_CORES = 0.3  # busier than this before a pass, and someone else is using the machine

KINDS = {
    "json": {"template": MESSAGES / "notice.json", "media_type": "application/json",
             "title": "JSON notice (about 1 KB)"},
    "wmo301": {"template": MESSAGES / "wmo301.xml", "media_type": "application/xml",
               "title": "iWmo 3.2 WMO301 (about 7 KB)"},
}


@dataclass(frozen=True)
class System:
    family: str  # schakel | relay | relay-aiohttp | node-red
    backend: str = ""
    processes: int = 1

    @property
    def name(self) -> str:
        return {"schakel": f"schakel-{self.backend}-{self.processes}", "relay": f"relay-{self.processes}",
                "relay-aiohttp": f"relay-aiohttp-{self.processes}", "node-red": "node-red-1"}[self.family]


class Partners:
    """The two recording partners: a webhook sink, up for the whole run, and the Care4 simulator,
    started afresh for each pass that needs it (so it runs the same plugin code as the gateway)."""

    FACTORIES = {"sink": "sink:create_sink", "care4": "sink:create_care4"}

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: dict[str, Proc] = {}
        self.urls: dict[str, str] = {}
        for name in self.FACTORIES:
            self.start(name)

    def start(self, name: str) -> None:
        if name in self.procs:
            self.procs[name].stop()
        port = free_port()
        self.urls[name] = f"http://127.0.0.1:{port}"
        self.procs[name] = Proc(name, [sys.executable, "-m", "uvicorn", self.FACTORIES[name], "--factory", "--app-dir",
                                       str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
                                       "--no-access-log", "--log-level", "warning"], {},
                                self.work / f"{name}.log").start()
        wait_for(self.urls[name] + "/_stats")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


def care4_bsns() -> tuple[str, ...]:
    """The fictional BSNs of the Care4 simulator's clients that pass the elfproef, the bench's own
    (bench/sink.py) included."""
    from gateway.core.pseudonyms import elfproef
    from schakel_care4.fixtures import build

    clients = [*build()["clients"].values(), *bench_clients().values()]
    return tuple(sorted({c["bsn"] for c in clients if c.get("bsn") and elfproef(c["bsn"])}))


def target_for(system: System, kind: str, tokens: dict[str, str], bsns: tuple[str, ...]) -> Target:
    spec = KINDS[kind]
    common = {"template": spec["template"], "media_type": spec["media_type"], "bsns": bsns if kind == "wmo301" else ()}
    if system.family != "schakel":
        return Target(path="/relay", pattern='"id":"([^"]*)"', **common)
    if kind == "json":
        return Target(path="/api/v1/routes/webhook.notice/messages", pattern='"exchange_id":"([%w%-]+)"',
                      token=tokens["hulpverlener"], idempotency_key=True, **common)
    # The WMO302 retour copies the 301's header, so its first Identificatie is the message's own.
    return Target(path="/partners/wmo/berichten", pattern="Identificatie>(%w+)<", token=tokens["gemeente"], retour=True,
                  **common)


def join(system: System, kind: str, records: list[list[Any]], run: Any,
         sent: dict[str, float]) -> tuple[dict[str, Arrival], dict[str, str] | None, int]:
    """Arrivals by message id, the map from an answer's key to the message id, and duplicates."""
    arrivals: dict[str, Arrival] = {}
    answer_to_id: dict[str, str] | None = None
    counted = 0
    if system.family == "schakel" and kind == "wmo301":
        # The gateway keys a 301 by its identification (inbound idempotency key or partner message
        # id, e.g. WMO301:0384:<Identificatie>:<Dagtekening>); the bench's id is one of its parts.
        names = run.query("SELECT exchange_id, key FROM inbound_requests WHERE exchange_id IS NOT NULL "
                          "UNION ALL SELECT id, partner_message_id FROM exchanges WHERE partner_message_id IS NOT NULL")
        ids = {exchange_id: part for exchange_id, name in names for part in name.split(":") if part in sent}
        # The ECD write that completes the exchange names it in its key: schakel-<exchange id>:<step>.
        for method, path, _, key, arrived, done, status in records:
            if method == "PUT" and "/arrangements/" in path and key.startswith("schakel-") and 200 <= status < 300:
                counted += 1
                message = ids.get(key[len("schakel-"):len("schakel-") + 36])
                if message and message not in arrivals:
                    arrivals[message] = Arrival(arrived, done - arrived)
    else:
        answer_to_id = {} if system.family == "schakel" else None
        for _, _, message, key, arrived, done, _ in records:
            if not message:
                continue
            counted += 1
            arrivals.setdefault(message, Arrival(arrived, done - arrived))
            if answer_to_id is not None and key.startswith("schakel-"):
                answer_to_id[key.removeprefix("schakel-")] = message
    return arrivals, answer_to_id, counted - len(arrivals)


class Bench:
    def __init__(self, plan: Plan, work: Path, partners: Partners, bsns: tuple[str, ...]) -> None:
        self.plan, self.work, self.partners, self.bsns = plan, work, partners, bsns
        self.passes = 0
        self.settle_left = plan.settle_seconds

    def settle(self) -> dict[str, float]:
        """Wait (within the run's budget) until the machine is nearly idle, and say how busy it was.
        The bench's own partners idle between passes, so what is busy here is someone else's work."""
        waited, busy = 0.0, busy_cores(0.2)
        while busy > QUIET_CORES and self.settle_left > 0:
            time.sleep(1.0)
            self.settle_left -= 1.5
            waited += 1.5
            busy = busy_cores()
        return {"busy_cores_before_pass": round(busy, 2), "waited_for_quiet_seconds": round(waited, 1)}

    def make(self, system: System, workdir: Path) -> Any:
        if system.family == "schakel":
            return SchakelRun(system.backend, system.processes, workdir)
        if system.family == "relay":
            return Relay(system.processes, workdir)
        if system.family == "relay-aiohttp":
            return Relay(system.processes, workdir, client="aiohttp")
        return NodeRed(workdir)

    def start(self, run: Any) -> None:
        if isinstance(run, SchakelRun):
            run.start(self.partners.urls["sink"], self.partners.urls["care4"])
        else:
            run.start(self.partners.urls["sink"] + "/inbox")

    def one_pass(self, system: System, kind: str, paced_rate: float | None, round_: int = 0) -> dict[str, Any]:
        plan = self.plan
        label = f"{kind}-{'paced' if paced_rate else 'saturated'}-{system.name}" + (f"-round{round_ + 1}" if round_ else "")
        workdir = self.work / label
        prefix = string.ascii_letters[self.passes % 52]
        self.passes += 1
        began = time.monotonic()
        quiet = self.settle()
        if system.family == "schakel" and kind == "wmo301":
            self.partners.start("care4")
        run = self.make(system, workdir)
        partner = self.partners.urls["care4" if system.family == "schakel" and kind == "wmo301" else "sink"]
        try:
            self.start(run)
            httpx.post(partner + "/_reset", timeout=10).raise_for_status()
            cpu_before = sum(proc.cpu_seconds() for proc in run.procs)
            bench_before = sum(proc.cpu_seconds() for proc in self.partners.procs.values()) + children_cpu_seconds()
            machine_before, measured_from = machine_busy_seconds(), time.monotonic()
            database = run.database_url.rsplit("/", 1)[1] if getattr(run, "backend", "") == "postgres" else None
            database_before = backend_cpu_seconds(database) if database else 0.0
            connections = plan.paced_connections if paced_rate else plan.connections
            delay_ms = round(connections * 1000 / paced_rate) if paced_rate else 0
            load = drive(run.urls, target_for(system, kind, getattr(run, "tokens", {}), self.bsns),
                         seconds=plan.paced_seconds if paced_rate else plan.saturate_seconds, connections=connections,
                         delay_ms=delay_ms, prefix=prefix, logdir=workdir / "wrk")
            drained = run.wait_drained(plan.drain_timeout) if system.family == "schakel" else True
            cpu = sum(proc.cpu_seconds() for proc in run.procs) - cpu_before
            bench_cpu = (sum(proc.cpu_seconds() for proc in self.partners.procs.values()) + children_cpu_seconds()
                         - bench_before)
            database_cpu = (backend_cpu_seconds(database) - database_before) if database else 0.0
            # What the rest of the machine used meanwhile: other people's work on a shared machine shows here.
            outside = machine_busy_seconds() - machine_before - cpu - bench_cpu - database_cpu
            measured = time.monotonic() - measured_from
            rss = [round(proc.peak_rss_mib(), 1) for proc in run.procs]
            records = httpx.get(partner + "/_records", timeout=60).json()["records"]
            arrivals, answer_to_id, duplicates = join(system, kind, records, run, load.sent)
            result = summarise(load, arrivals, answer_to_id=answer_to_id, asynchronous=system.family == "schakel",
                               warmup=plan.warmup_seconds, duplicates=duplicates)
            result.update(system=system.name, family=system.family, backend=system.backend,
                          processes=system.processes, connections=connections,
                          offered_rate=paced_rate, delay_ms=delay_ms or None, drained=drained,
                          partner_requests=len(records), peak_rss_mib=round(sum(rss), 1), peak_rss_mib_each=rss,
                          cpu_seconds=round(cpu, 2), partner_and_wrk_cpu_seconds=round(bench_cpu, 2),
                          postgres_cpu_seconds=round(database_cpu, 2),
                          postgres_cpu_ms_per_delivered=(round(database_cpu * 1000 / len(arrivals), 2)
                                                         if arrivals and system.backend == "postgres" else None),
                          other_processes_cpu_seconds=round(max(0.0, outside), 2), measured_seconds=round(measured, 2),
                          **quiet,
                          cpu_ms_per_delivered=round(cpu * 1000 / len(arrivals), 2) if arrivals else None)
            if system.family == "schakel":
                result["exchange_states"] = dict(run.query("SELECT state, count(*) FROM exchanges GROUP BY state"))
                # What the durable path wrote for each exchange, counted in its own database.
                result["rows_written"] = {table: run.query(f"SELECT count(*) FROM {table}")[0][0]
                                          for table in ("exchanges", "exchange_transitions", "audit_log")}
        finally:
            run.stop()
        result["pass_seconds"] = round(time.monotonic() - began, 1)
        print(f"  {label:<40} {result['pass_seconds']:>5} s  end-to-end {result['end_to_end_rate']:>7}/s  submitted {result['submission_rate']:>7}/s  "
              f"added p50 {result['added_latency_ms']['p50']} ms  p99 {result['added_latency_ms']['p99']} ms  "
              f"rss {result['peak_rss_mib']} MiB", flush=True)
        return result

    def systems(self) -> list[System]:
        found = [System("schakel", backend, n) for backend, n in self.plan.schakel]
        found += [System("relay", processes=n) for n in self.plan.relays]
        found += [System("relay-aiohttp", processes=n) for n in self.plan.aiohttp_relays]
        if self.plan.node_red:
            found.append(System("node-red"))
        return found

    def load(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in self.plan.kinds:
            print(f"{KINDS[kind]['title']}: saturating passes, {self.plan.rounds} round(s)", flush=True)
            saturated, alone = self.rounds(kind)
            rates = [r["end_to_end_rate"] for r in saturated.values() if r["end_to_end_rate"] > 0]
            paced_rate, paced = None, {}
            if self.plan.paced_fraction and rates:
                paced_rate = max(1.0, round(min(rates) * self.plan.paced_fraction))
                print(f"{KINDS[kind]['title']}: paced passes at {paced_rate:g} messages/s", flush=True)
                paced = {s.name: self.one_pass(s, kind, paced_rate) for s in self.systems()}
            out[kind] = {"title": KINDS[kind]["title"],
                         "message_bytes": len(KINDS[kind]["template"].read_bytes()),
                         "saturated": saturated, "paced_rate": paced_rate, "paced": paced}
            if alone:
                out[kind]["partner_alone"] = _median_pass(alone, "rate")
        return out

    def rounds(self, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Each system's median saturating pass, of ``plan.rounds`` rounds that each take every system
        in turn: two passes of one system can differ by more than the systems do (the bare relay's
        rate spread over a factor of two on one machine in one hour), so one pass each would let
        the machine's moment decide the comparison; rounds spread any slow stretch over all of them.
        The median pass keeps every figure of its own; ``rounds`` lists every pass's rate, in order.
        With the WMO301, each round ends with the partner alone (bench/ceiling.py), also returned."""
        passes: dict[str, list[dict[str, Any]]] = {s.name: [] for s in self.systems()}
        alone: list[dict[str, Any]] = []
        for round_ in range(self.plan.rounds):
            for system in self.systems():
                passes[system.name].append(self.one_pass(system, kind, None, round_))
            if kind == "wmo301" and self.plan.partner_alone:
                alone.append(self.partner_alone(round_))
        return {name: _median_pass(results, "end_to_end_rate") for name, results in passes.items()}, alone

    def partner_alone(self, round_: int) -> dict[str, Any]:
        began = time.monotonic()
        quiet = self.settle()
        prefix = f"alone{round_ + 1}-"
        try:
            result = ceiling.run(self.partners, seconds=self.plan.saturate_seconds, connections=self.plan.connections,
                                 prefix=prefix, workdir=self.work / f"wmo301-partner-alone-round{round_ + 1}")
        except (RuntimeError, httpx.HTTPError) as exc:  # a bound that could not be measured bounds nothing
            result = {"rate": 0.0, "error": f"{type(exc).__name__}: {str(exc)[:200]}", "partner_cpu_ms_per_write": None}
        result.update(quiet, pass_seconds=round(time.monotonic() - began, 1))
        print(f"  {'wmo301-partner-alone-round' + str(round_ + 1):<40} {result['pass_seconds']:>5} s  "
              f"ECD writes {result['rate']:>7}/s  partner CPU {result['partner_cpu_ms_per_write']} ms a write", flush=True)
        return result

    def startup(self) -> dict[str, Any]:
        """Seconds from starting the process to its first 200 on readiness (median of the repeats)."""
        out: dict[str, Any] = {}
        repeats = self.plan.startup_repeats
        for backend in ("sqlite", "postgres") if self.plan.startup_all else ("sqlite",):
            workdir = self.work / f"startup-{backend}"
            url = f"sqlite:///{workdir / 'schakel.db'}" if backend == "sqlite" else create_postgres_database()
            env = gateway_env(url, workdir)
            try:
                times = [_timed_start(env, workdir, i) for i in range(repeats + 1)]
            finally:
                if backend == "postgres":
                    drop_postgres_database(url)
            out[f"schakel-{backend}"] = {"first_start_with_migrations": times[0], "seconds": times[1:],
                                         "median": sorted(times[1:])[len(times[1:]) // 2]}
        for name, make in (("relay-1", lambda: Relay(1, self.work / "startup-relay")),
                           ("node-red-1", lambda: NodeRed(self.work / "startup-node-red"))):
            if not self.plan.startup_all or (name == "node-red-1" and not self.plan.node_red):
                continue
            times = []
            for _ in range(repeats):
                began = time.monotonic()
                system = make().start(self.partners.urls["sink"] + "/inbox")
                times.append(round(time.monotonic() - began, 2))
                system.stop()
            out[name] = {"seconds": times, "median": sorted(times)[len(times) // 2]}
        return out


def _median_pass(results: list[dict[str, Any]], rate: str) -> dict[str, Any]:
    """The median pass by ``rate`` (the lower of the middle two), with every pass's rate in order."""
    median = sorted(results, key=lambda r: r[rate])[(len(results) - 1) // 2]
    return {**median, "rounds": [r[rate] for r in results]}


def _timed_start(env: dict[str, str], workdir: Path, i: int) -> float:
    port = free_port()
    began = time.monotonic()
    proc = Proc(f"startup-{i}", [sys.executable, "-m", "gateway.cli", "serve"],
                {**env, "GATEWAY_PORT": str(port), "GATEWAY_HOST": "127.0.0.1"}, workdir / "startup.log").start()
    try:
        wait_for(f"http://127.0.0.1:{port}/ready", timeout=120)
        return round(time.monotonic() - began, 2)
    finally:
        proc.stop()


def _postgres_answers() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_SERVER, connect_timeout=3):
            return None
    except Exception as exc:
        return type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every part (under a minute)")
    parser.add_argument("--out", type=Path, help="where the results go (default: docs/ for a full run, "
                                                 "$TMPDIR/schakel-bench-quick for --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, wrk logs, databases)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="schakel-bench-"))
    out_dir = args.out or (Path(tempfile.gettempdir()) / "schakel-bench-quick" if args.quick else ROOT / "docs")
    began = time.monotonic()
    problem = _postgres_answers()
    if problem is not None:
        raise SystemExit(f"PostgreSQL does not answer at {POSTGRES_SERVER} ({problem}); the bench needs it")
    results: dict[str, Any] = {
        "schema": 1, "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "bench/run.py" + (" --quick" if args.quick else ""),
        "plan": asdict(plan), "machine": describe(POSTGRES_SERVER),
        "tools": {"wrk": ensure_wrk(work / "apt.log")},
        "care4_clients_with_bsn": {"fixtures": len(care4_bsns()) - len(bench_clients()), "bench": len(bench_clients())},
    }
    print(f"schakel bench ({results['mode']}), working in {work}", flush=True)
    partners = Partners(work)
    try:
        if plan.node_red:
            version, seconds = install_node_red(work / "npm.log")
            results["tools"]["node_red"] = version
            results["tools"]["node_red_install_seconds"] = round(seconds, 1)
        bench = Bench(plan, work, partners, care4_bsns())
        sections = results["section_seconds"] = {}
        mark = time.monotonic()
        results["load"] = bench.load()
        sections["load"], mark = round(time.monotonic() - mark, 1), time.monotonic()
        print("start-up", flush=True)
        results["startup"] = bench.startup()
        sections["startup"], mark = round(time.monotonic() - mark, 1), time.monotonic()
        results["audit"] = {}
        for backend in plan.audit_backends:
            print(f"audit trail, {plan.audit_entries:,} entries on {backend}", flush=True)
            results["audit"][backend] = auditscale.run(backend, plan.audit_entries, plan.audit_through_seal,
                                                       work / f"audit-{backend}", plan.access_report_calls)
        sections["audit"], mark = round(time.monotonic() - mark, 1), time.monotonic()
        print("iWmo batch import", flush=True)
        results["batch_import"] = batchimport.run(plan.import_messages, work / "import", partners.urls["care4"],
                                                  care4_bsns())
        sections["batch_import"] = round(time.monotonic() - mark, 1)
    finally:
        partners.stop()
    results["seconds"] = round(time.monotonic() - began, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.write(results, out_dir)
    print(f"results: {out_dir}/benchmarks.json, benchmarks.md, benchmarks.svg ({results['seconds']} s)", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
