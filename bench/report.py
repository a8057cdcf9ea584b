"""Writes the results: benchmarks.json, and from it alone benchmarks.svg and benchmarks.md.

Every figure in the page is read from the results of the run; the prose around them says only
what holds for any run (definitions, method) or is computed from the figures.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

FAMILY_TITLE = {"schakel": "Schakel", "relay": "bare relay (FastAPI + httpx)",
                "relay-aiohttp": "bare relay on aiohttp (FastAPI + aiohttp)", "node-red": "Node-RED"}
BUSY_CORES = 0.25  # other work using this much of the machine, on average, is said at the top
COLOURS = {"schakel": "#1f5fa8", "relay": "#8a8a8a", "relay-aiohttp": "#c4c4c4", "node-red": "#b5452b"}


def write(results: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    (out_dir / "benchmarks.svg").write_text(svg(results))
    (out_dir / "benchmarks.md").write_text(markdown(results))


# --- helpers ---------------------------------------------------------------------------------------

def _label(result: dict[str, Any]) -> str:
    family = result["family"]
    if family == "schakel":
        backend = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[result["backend"]]
        return f"Schakel, {backend}, {result['processes']} process{'es' if result['processes'] > 1 else ''}"
    if family == "relay":
        return f"bare relay, {result['processes']} process{'es' if result['processes'] > 1 else ''}"
    if family == "relay-aiohttp":
        return f"bare relay on aiohttp, {result['processes']} process{'es' if result['processes'] > 1 else ''}"
    return "Node-RED, 1 process"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}" if isinstance(value, float) and digits else f"{value:,}"
    return str(value)


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "–"
    return f"{a / b:.2f}×"


def _rate(result: dict[str, Any] | None) -> str:
    """A saturating rate: the median pass's, with the range of all of its rounds where there were several."""
    if not result:
        return "–"
    rounds = result.get("rounds") or []
    spread = f" ({_num(min(rounds))}–{_num(max(rounds))})" if len(rounds) > 1 else ""
    return f"{_num(result['end_to_end_rate'])}/s{spread}"


def _round_by_round(schakel: dict[str, Any], relay: dict[str, Any]) -> tuple[int, int]:
    """In how many rounds Schakel's pass reached the relay's pass of the same round, of how many."""
    pairs = list(zip(schakel.get("rounds") or [], relay.get("rounds") or []))
    return sum(mine >= theirs for mine, theirs in pairs), len(pairs)


def _lat(block: dict[str, Any]) -> str:
    return f"{_num(block['p50'], 1)} / {_num(block['p95'], 1)} / {_num(block['p99'], 1)}"


def _schakel(passes: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in passes.values() if r["family"] == "schakel"]


def _by_name(passes: dict[str, Any], name: str) -> dict[str, Any] | None:
    return passes.get(name)


# --- the chart -------------------------------------------------------------------------------------

def svg(results: dict[str, Any]) -> str:
    """End-to-end rate of every system, one panel per message kind; plain SVG, no dependencies."""
    kinds = list(results.get("load", {}).items())
    row, left, width, label_w = 22, 230, 460, 70
    height = 40 + sum(30 + row * len(data["saturated"]) + 20 for _, data in kinds) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + label_w + 20}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="10" y="22" font-size="14" font-weight="bold">End-to-end rate: messages that reached the partner '
             f'per second ({escape(results["mode"])} run, {escape(results["started_at"][:10])})</text>']
    y = 40
    for _, data in kinds:
        passes = list(data["saturated"].values())
        top = max((r["end_to_end_rate"] for r in passes), default=1) or 1
        parts.append(f'<text x="10" y="{y + 16}" font-weight="bold">{escape(data["title"])}</text>')
        y += 26
        for result in passes:
            bar = width * result["end_to_end_rate"] / top
            parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(_label(result))}</text>')
            parts.append(f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row - 6}" '
                         f'fill="{COLOURS[result["family"]]}"/>')
            parts.append(f'<text x="{left + bar + 6:.1f}" y="{y + 15}">{result["end_to_end_rate"]:,.1f}/s</text>')
            y += row
        y += 20
    parts.append(f'<text x="10" y="{height - 10}" fill="#555">Source: docs/benchmarks.json. '
                 f'Machine: {escape(str(results["machine"]["cores"]))} cores, {escape(results["machine"]["cpu"])}; '
                 f'load generator, partner and systems share it.</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- the page --------------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    w("# Benchmarks\n")
    w(f"Measured by `{results['command']}` on {results['started_at'].replace('T', ' ')} "
      f"({results['mode']} run, {results['seconds']:,.0f} s). Every figure on this page comes from that run; the raw "
      f"results are in [benchmarks.json](benchmarks.json) beside it and the chart is [benchmarks.svg](benchmarks.svg). "
      f"The page itself is written by `bench/report.py` from the JSON.\n")
    if results["mode"] != "full":
        w("**This is a quick smoke run: passes of a few seconds, one Schakel configuration, a small audit trail. "
          "Its figures show that the bench works, not how fast anything is.**\n")
    w("![End-to-end rate per system](benchmarks.svg)\n")
    _problems(results, w)
    _busy(results, w)
    _headline(results, w)
    _machine(results, w)
    _method(results, w)
    for kind, data in results.get("load", {}).items():
        _load_tables(kind, data, w)
    _memory_cpu(results, w)
    _startup(results, w)
    _audit(results, w)
    _batch(results, w)
    _noise(results, w)
    _gap(results, w)
    _reproduce(results, w)
    return "\n".join(out)


def _problems(results: dict[str, Any], w: Any) -> None:
    """Anything in the run that did not go as it should, said before any figure."""
    found = []
    for data in results.get("load", {}).values():
        for mode in ("saturated", "paced"):
            for r in data[mode].values():
                where = f"{data['title']}, {mode}, {_label(r)}"
                states = {k: v for k, v in (r.get("exchange_states") or {}).items() if k != "delivered"}
                wrong = []
                if not r["delivered"]:
                    wrong.append("nothing reached the partner")
                if states:
                    wrong.append("exchanges not delivered: " + ", ".join(f"{v:,} {k}" for k, v in sorted(states.items())))
                if wrong:
                    found.append(f"{where}: {'; '.join(wrong)}")
                if r["not_accepted"] or r["socket_errors"]:
                    found.append(f"{where}: {r['not_accepted']:,} answers not 2xx (or a refusing retour), "
                                 f"{r['socket_errors']:,} socket errors")
                if not r.get("drained", True):
                    found.append(f"{where}: the queue was not empty when the bench stopped waiting")
    b = results.get("batch_import") or {}
    if b.get("measured") and (b.get("exit_code") or set(b.get("outcomes", {})) - {"geaccepteerd"}):
        found.append(f"iWmo batch import: exit code {b['exit_code']}, outcomes {b['outcomes']}")
    if found:
        w("## Problems in this run\n")
        w("These passes did not go entirely as they should; read their figures below with that in mind:\n")
        for line in found:
            w(f"- {line}")
        w("")


def _busy(results: dict[str, Any], w: Any) -> None:
    passes = [r for data in results.get("load", {}).values() for mode in ("saturated", "paced") for r in data[mode].values()]
    if not passes:
        return
    cores = sum(r["other_processes_cpu_seconds"] for r in passes) / max(sum(r["measured_seconds"] for r in passes), 1e-9)
    if cores >= BUSY_CORES:
        w(f"**The machine was not quiet:** while the load passes ran, other work on it used {cores:.2f} of its "
          f"{results['machine']['cores']} cores on average (see [how quiet the machine was](#how-quiet-the-machine-was)). "
          "Every system lost cores to it; read the figures as ratios, and expect a quieter run to be faster.\n")


def _headline(results: dict[str, Any], w: Any) -> None:
    w("## In one table\n")
    rounds = results["plan"].get("rounds", 1)
    w("End-to-end rate (messages that reached the partner per second) under the same saturating load, and each "
      "baseline's rate as a multiple of Schakel's on the same message with the same number of processes "
      "(Node-RED, a single Node.js process, is compared with both)."
      + (f" Each rate is the median of {rounds} saturating passes, taken in {rounds} rounds that each ran every "
         "system in turn; the range of the passes is in brackets. The ratios compare medians.\n" if rounds > 1 else "\n"))
    w("| message | Schakel configuration | Schakel rate | bare relay rate | relay ÷ Schakel | Node-RED rate | "
      "Node-RED ÷ Schakel |")
    w("|---|---|---:|---:|---:|---:|---:|")
    verdicts = []
    by_round = [0, 0]
    for kind, data in results.get("load", {}).items():
        sat = data["saturated"]
        node = _by_name(sat, "node-red-1")
        for r in _schakel(sat):
            if not r["delivered"]:
                w(f"| {data['title']} | {_label(r).removeprefix('Schakel, ')} | failed (see problems) | | | | |")
                continue
            relay = _by_name(sat, f"relay-{r['processes']}")
            w(f"| {data['title']} | {_label(r).removeprefix('Schakel, ')} | {_rate(r)} | {_rate(relay)} | "
              f"{_ratio(relay['end_to_end_rate'], r['end_to_end_rate']) if relay else '–'} | {_rate(node)} | "
              f"{_ratio(node['end_to_end_rate'], r['end_to_end_rate']) if node else '–'} |")
            if relay:
                verdicts.append(r["end_to_end_rate"] >= relay["end_to_end_rate"])
                reached, compared = _round_by_round(r, relay)
                by_round[0] += reached
                by_round[1] += compared
    w("")
    if verdicts:
        met = sum(verdicts)
        rounds_note = (f" Round by round (each of Schakel's passes against the relay's pass of the same round), "
                       f"it reached the relay in {by_round[0]} of {by_round[1]}." if by_round[1] > len(verdicts) else "")
        w(f"**The durable, audited gateway reached at least the bare relay's rate in {met} of {len(verdicts)} "
          f"comparisons.**{rounds_note} " + ("The goal of this issue — no less than the bare relay — is met."
                                             if met == len(verdicts) else
                                             "The goal of this issue — no less than the bare relay — is not met; see "
                                             "[where Schakel stands](#where-schakel-stands-and-what-would-close-the-gap).")
          + "\n")
    _against_aiohttp_relay(results, w)


def _against_aiohttp_relay(results: dict[str, Any], w: Any) -> None:
    """The relay on aiohttp is not the issue's baseline, but a reader should know how much lower
    the httpx relay sits than what a Python relay can do."""
    lines = []
    for data in results.get("load", {}).values():
        sat = data["saturated"]
        fast, relay, schakel = sat.get("relay-aiohttp-1"), sat.get("relay-1"), _schakel(sat)
        if not (fast and relay and schakel):
            continue
        best = max(schakel, key=lambda r: r["end_to_end_rate"])
        lines.append(f"{data['title']}: {_num(fast['end_to_end_rate'])}/s, "
                     f"{_ratio(fast['end_to_end_rate'], relay['end_to_end_rate'])} the httpx relay and "
                     f"{_ratio(fast['end_to_end_rate'], best['end_to_end_rate'])} Schakel's best "
                     f"({_label(best).removeprefix('Schakel, ')})")
    if lines:
        w("**Read the relay comparison with this beside it.** The same bare relay forwarding with aiohttp's "
          "client instead of httpx's reached " + "; ".join(lines) + ". Most of the httpx relay's cost is "
          "httpx's connection pool, which Schakel no longer uses for deliveries; a relay without it is a much "
          "higher floor, and Schakel is well below it.\n")


def _machine(results: dict[str, Any], w: Any) -> None:
    m = results["machine"]
    pg = m["postgresql"]
    tools = results.get("tools", {})
    w("## The machine\n")
    w("| | |\n|---|---|")
    w(f"| CPU | {m['cpu']}, {m['cores']} cores |")
    w(f"| memory | {m['memory_gib']} GiB |")
    w(f"| system | {m['os']}, Linux {m['kernel']} |")
    w(f"| Python | {m['python']}; SQLite {m['sqlite']}; " +
      ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + " |")
    w(f"| PostgreSQL | {pg.get('server_version', pg.get('error'))} on 127.0.0.1 (fsync {pg.get('fsync', '?')}, "
      f"synchronous_commit {pg.get('synchronous_commit', '?')}, shared_buffers {pg.get('shared_buffers', '?')}) |")
    w(f"| Node.js | {m['node']}; Node-RED {tools.get('node_red', 'not run')} (installed from npm by the bench in "
      f"{_num(tools.get('node_red_install_seconds'))} s) |")
    w(f"| load generator | {tools.get('wrk', '?')} with bench/load.lua |")
    w(f"| Schakel | commit `{m['schakel_commit'][:12]}`" + (" with uncommitted changes in the working tree"
                                                           if m["schakel_tree_modified"] else "") + " |")
    w("")
    w("Everything ran on this one machine over loopback: the systems under test, the partner they deliver to, "
      "wrk and PostgreSQL share its cores, so the figures are lower than on separate machines and are meant "
      "to be read as ratios measured in the same run.\n")


def _method(results: dict[str, Any], w: Any) -> None:
    plan = results["plan"]
    w("## What was measured, and how\n")
    w("**The systems.** *Schakel*: `gateway serve` processes with the shipped settings (production mode, the "
      "durability checks on: SQLite in WAL with `synchronous=FULL`, PostgreSQL with `synchronous_commit=on`; "
      "logs at INFO, as JSON, to a file; the default delivery-worker settings) except that only the plugins "
      "the bench exercises are enabled (care4 and wmo; the webhook connector is built in), on a fresh SQLite file "
      "or a fresh PostgreSQL database, with a webhook "
      "partner, a Care4 partner and a municipality registered, tokens, and a recorded consent for the fictional "
      "client — exactly as an administrator would set it up. Two processes share one database; each gets its own "
      "wrk with half the connections, as a load balancer would split them. *Bare relay*: `bench/relay.py`, a "
      "FastAPI app that forwards the body with one shared `httpx.AsyncClient` and returns the partner's answer — "
      "no validation, no persistence, no audit — the baseline this issue names; two processes are two uvicorns on "
      "their own ports, split like Schakel's (`uvicorn --workers 2` shares one socket, and the kernel often gave "
      "all of the bench's connections to one worker, so a two-process pass measured one or two processes by "
      "chance). *Bare relay on aiohttp*: the same app forwarding with one `aiohttp.ClientSession`, the pool "
      "Schakel's own shared client runs on (`gateway/core/transport.py`); it is not a goal, it shows how much of "
      "the bare relay's cost is its HTTP client. *Node-RED*: "
      f"Node-RED {results.get('tools', {}).get('node_red', '')} running `bench/nodered/flow.json` (http in → "
      "http request with keep-alive → http response).\n")
    w("**The messages.** A JSON notice of about 1 KB (`bench/messages/notice.json`), sent to Schakel on the "
      "`webhook.notice` route with an `Idempotency-Key`, and the official iWmo 3.2 WMO301 example "
      "(`bench/messages/wmo301.xml`) with its own `Identificatie` per message and, in turn, the fictional BSNs of "
      f"{_clients(results)}, sent to `POST /partners/wmo/berichten` with a "
      "municipality's token. For the relays the same bodies go to `/relay`. An iWmo route is ordered per client "
      "(a client's next WMO301 waits until the one before it has been written to the ECD), so the load is spread "
      "over many clients, as a municipality's is; with only the 23 fixture clients the ordering alone held the "
      "rate down (measured in session 7, Schakel on SQLite in one process: 238.3 WMO301s accepted per second, "
      "191.6 delivered).\n")
    w("**The partner.** For the JSON notice and for both relays: `bench/sink.py`, a raw ASGI app that records when "
      "each message reached it and how long it took to answer. For Schakel's WMO301: the care4 plugin's own Care4 "
      "simulator with the same recording around it; the exchange reaches the partner when the ECD write "
      "that completes it (the `PUT` of the arrangement, keyed `schakel-<exchange id>:…`) arrives. Before that "
      "write Schakel makes two look-ups (the client by BSN, her current arrangements), so a WMO301 costs the "
      "partner three requests, and the relays' one POST of the XML is a much smaller job: compare the WMO301 "
      "rates with that in mind"
      + ("; how many of those the simulator takes on its own, with no gateway in between, is measured in each "
         "WMO301 round too ([the ECD alone](#where-schakel-stands-and-what-would-close-the-gap))"
         if plan.get("partner_alone") else "") + ".\n")
    rounds = plan.get("rounds", 1)
    load = (f"**The load.** wrk, one thread per target, {plan['connections']} connections in all, for "
            f"{plan['saturate_seconds']} s (saturating pass"
            + (f"; {rounds} rounds, each taking every system in turn, and each system's median pass is the one "
               "reported, with the others' rates beside it" if rounds > 1 else "") + ")")
    if plan["paced_fraction"]:
        load += (f", then — on a fresh system — {plan['paced_connections']} connections with a pause between requests "
                 f"so that together they offer {int(plan['paced_fraction'] * 100)} % of the slowest system's end-to-end "
                 f"rate on that message, for {plan['paced_seconds']} s (paced pass, the same offered rate for every "
                 "system)")
    w(load + ". Every request carries its own id; wrk logs when it sent each id and when each answer came, the "
      "partner logs each arrival, and `bench/run.py` joins them. Each pass starts its system afresh (a new "
      "database for Schakel) and waits first, within a budget, for the machine to be quiet.\n")
    w("**The definitions** (the same for every system):\n")
    w("- *end-to-end rate*: messages that reached the partner, divided by the seconds from the first request "
      "sent to the last arrival. Schakel answers `202` once the exchange is durably queued and delivers from its "
      "outbox, so it is timed until its queue is empty; the relays forward synchronously.")
    w("- *submission rate*: accepted answers (2xx) per second while the load ran (after a "
      f"{plan['warmup_seconds']:g} s warm-up); *arrival rate under load*: arrivals at the partner per second in the "
      "same window. Where the submission rate is higher, Schakel's queue grew while the load ran.")
    w("- *added latency* (p50 / p95 / p99, milliseconds): for the relays and Node-RED, each message's round trip "
      "minus the partner's own time for it; for Schakel, arrival at the partner minus the moment its accepting "
      "answer reached wrk (the time a message spends in the gateway after it was accepted). Taken from the paced "
      "pass, whose offered rate is below every system's capacity.")
    w("- *send to partner*: arrival at the partner minus the moment wrk sent the message — the one latency "
      "that means the same thing for a synchronous relay and a queueing gateway.")
    w("- *peak memory*: the peak resident set (VmHWM) of the system's processes at the end of the saturating "
      "pass, summed over its processes; *CPU per message*: the CPU time its processes used in the pass divided by "
      "the messages that reached the partner.\n")


def _clients(results: dict[str, Any]) -> str:
    counts = results.get("care4_clients_with_bsn")
    if not counts:
        return "the Care4 simulator's clients (all pass the elfproef)"
    return (f"the Care4 simulator's {counts['fixtures'] + counts['bench']:,} clients with a BSN ({counts['fixtures']} "
            f"from the care4 plugin's fixtures, {counts['bench']:,} invented by the bench, `bench/sink.py`; every BSN "
            "passes the elfproef)")


def _load_tables(kind: str, data: dict[str, Any], w: Any) -> None:
    w(f"## {data['title']}\n")
    w(f"Message body: {data['message_bytes']:,} bytes (template).\n")
    w("### Saturating load\n")
    w("| system | end-to-end rate | submission rate | arrival rate under load | queue at end of load | "
      "drain after load | reached partner | not accepted | duplicates at partner |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in data["saturated"].values():
        w(f"| {_label(r)} | {_rate(r)} | {_num(r['submission_rate'])}/s | "
          f"{_num(r['arrival_rate_under_load'])}/s | {_num(r['backlog_at_end_of_load'])} | "
          f"{_num(r['drain_seconds'], 2)} s | {_num(r['delivered'])} | {_num(r['not_accepted'] + r['socket_errors'])} | "
          f"{_num(r['duplicates_at_partner'])} |")
    w("")
    if not data["paced"]:
        w("No paced pass in this run (a quick run skips it), so no latency figures at a set rate.\n")
        return
    w(f"### Latency at {data['paced_rate']:g} messages per second (paced)\n")
    w("| system | offered / reached | added latency p50 / p95 / p99 (ms) | send to partner p50 / p95 / p99 (ms) | "
      "answer to the sender p50 / p95 / p99 (ms) | partner's own time p50 (ms) |")
    w("|---|---:|---:|---:|---:|---:|")
    for r in data["paced"].values():
        w(f"| {_label(r)} | {_num(r['submission_rate'])} / {_num(r['arrival_rate_under_load'])} per s | "
          f"{_lat(r['added_latency_ms'])} | {_lat(r['send_to_partner_ms'])} | {_lat(r['answer_round_trip_ms'])} | "
          f"{_num(r['partner_ms']['p50'], 2)} |")
    w("")
    w("Under the saturating load the latencies are mostly time spent queueing; they are in the JSON "
      "(`saturated.*.added_latency_ms`) but not compared here.\n")


def _memory_cpu(results: dict[str, Any], w: Any) -> None:
    w("## Memory and CPU under load\n")
    w("Peak resident memory of the system's processes at the end of the saturating pass; CPU time of its processes "
      "(and, on PostgreSQL, of the database backends serving its database) per message that reached the partner.\n")
    w("| message | system | peak memory (MiB, all processes) | CPU per message (ms) | PostgreSQL backends' CPU "
      "per message (ms) | audit entries per exchange |")
    w("|---|---|---:|---:|---:|---:|")
    for kind, data in results.get("load", {}).items():
        for r in data["saturated"].values():
            rows = r.get("rows_written") or {}
            per = (round(rows["audit_log"] / rows["exchanges"], 1) if rows.get("exchanges") else None)
            w(f"| {data['title']} | {_label(r)} | {_num(r['peak_rss_mib'])} | {_num(r['cpu_ms_per_delivered'], 2)} | "
              f"{_num(r.get('postgres_cpu_ms_per_delivered'), 2)} | {_num(per)} |")
    w("")


def _startup(results: dict[str, Any], w: Any) -> None:
    s = results.get("startup")
    if not s:
        return
    w("## Start-up time\n")
    w("Seconds from starting the process to its first successful answer (Schakel: `GET /ready`, which checks the "
      "database, the migrations and the delivery workers; the relay: `GET /health`; Node-RED: a relayed message), "
      "median of the repeats.\n")
    w("| system | median | each | first start on an empty database (migrations included) |")
    w("|---|---:|---|---:|")
    for name, data in s.items():
        w(f"| {name} | {_num(data['median'], 2)} s | {', '.join(f'{v:g}' for v in data['seconds'])} | "
          f"{_num(data.get('first_start_with_migrations'), 2)}{' s' if 'first_start_with_migrations' in data else ''} |")
    w("")


def _audit(results: dict[str, Any], w: Any) -> None:
    audit = results.get("audit") or {}
    if not audit:
        return
    w("## The audit trail at scale\n")
    w("How the entries were made (`bench/auditscale.py`): for every exchange, the six entries "
      "`exchange.transition()` records on its way from received to delivered, with the same fields, over 20,000 "
      "fictional clients, beside the exchange rows and their transitions. The first entries went through the "
      "gateway's own `audit.record()` and the commit that seals them (`audit.seal()`); the rest were "
      "bulk-inserted with `prev_hash` and `hash` computed by the gateway's own `audit.entry_hash()`, continuing "
      "the chain — the real path writes one INSERT per entry and would take too long for a million. The whole "
      "chain was then checked by `gateway audit verify`, which walks every entry and recomputes every hash.\n")
    w("| store | entries | written through record + seal | bulk with entry_hash | `gateway audit verify` | "
      "verification rate | access report for one client (p50 / p95 / p99) |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for backend, a in audit.items():
        paths = a["written"]["paths"]
        seal, bulk = paths["record_and_seal"], paths["bulk_with_entry_hash"]
        rep = a["access_report"]
        w(f"| {backend} | {_num(a['verify']['entries'])} | {_num(seal['entries'])} at {_num(seal['entries_per_second'])}/s | "
          f"{_num(bulk['entries'])} at {_num(bulk['entries_per_second'])}/s | {_num(a['verify']['seconds'], 1)} s | "
          f"{_num(a['verify']['entries_per_second'])} entries/s | {_lat(rep['latency_ms'])} ms |")
    w("")
    first = next(iter(audit.values()))
    w(f"The access report is `POST /api/v1/access-report` on a running `gateway serve`, asked "
      f"{first['access_report']['calls']} times (after one warm-up) for the client who has "
      f"{first['access_report']['exchanges_in_report']} exchanges among the "
      f"{first['written']['exchanges']:,} in the database; each call also writes its own audit entry. "
      f"`gateway audit verify` said: \"{first['verify']['output']}\".\n")


def _batch(results: dict[str, Any], w: Any) -> None:
    b = results.get("batch_import")
    if not b:
        return
    w("## iWmo batch import\n")
    if not b.get("measured"):
        w(f"Not yet measured: {b['reason']}. The bench runs `{b['command']}` over {b['messages']:,} WMO301 "
          "messages once the command exists.\n")
        return
    outcomes = ", ".join(f"{v:,} {k}" for k, v in b["outcomes"].items()) or "none reported"
    w(f"`{b['command']}` over a ZIP of {b['messages']:,} distinct WMO301 messages ({b['batch_bytes']:,} bytes) on a "
      f"fresh SQLite database: **{_num(b['messages_per_second'])} messages per second** ({_num(b['seconds'], 1)} s "
      f"wall time, process start-up included; exit code {b['exit_code']}). Outcomes: {outcomes}; exchanges queued "
      f"for the ECD: {b['exchanges_queued']:,}. Each message is parsed, checked against the official XSD, answered "
      "with its WMO302 retour and queued in one transaction; delivering the queue to the ECD is the delivery "
      "workers' job and is not part of this figure.\n")


def _noise(results: dict[str, Any], w: Any) -> None:
    passes = [(data["title"], mode, r) for data in results.get("load", {}).values()
              for mode in ("saturated", "paced") for r in data[mode].values()]
    if not passes:
        return

    def share(p: tuple[str, str, dict[str, Any]]) -> float:
        return p[2]["other_processes_cpu_seconds"] / max(p[2]["measured_seconds"], 1e-9)

    busiest = max(passes, key=share)
    waited = sum(p[2]["waited_for_quiet_seconds"] for p in passes)
    total = sum(p[2]["other_processes_cpu_seconds"] for p in passes)
    w("## How quiet the machine was\n")
    w(f"During the load passes, processes outside the bench used {total:,.1f} CPU-seconds in all (read from "
      f"`/proc/stat`, less the systems, the partners, wrk and the PostgreSQL backends of the bench's own databases); the busiest pass ({busiest[0]}, {busiest[1]}, "
      f"{_label(busiest[2])}) had {share(busiest):.2f} of a core taken by them on average. Before the passes the "
      f"bench waited {waited:,.0f} s in all for the machine to be quiet. The figures per pass are in the JSON "
      "(`other_processes_cpu_seconds`, `measured_seconds`, `busy_cores_before_pass`). On a machine shared with "
      "other work a figure can move between runs; the ratios within one run are the comparison that holds.\n")


def _budget(results: dict[str, Any], w: Any) -> None:
    """What reaching the relay's rate would leave Schakel on this machine, from this run's own
    figures: the cores, less what the partner and wrk used per message in Schakel's own pass, and
    no more than one core per process (the GIL)."""
    cores = results["machine"].get("cores") or 0
    rows = []
    for data in results.get("load", {}).values():
        sat = data["saturated"]
        for r in _schakel(sat):
            relay = _by_name(sat, f"relay-{r['processes']}")
            if not (relay and r["delivered"] and cores and relay["end_to_end_rate"]):
                continue
            rate = relay["end_to_end_rate"]
            others = r["partner_and_wrk_cpu_seconds"] * 1000 / r["delivered"]
            left = cores * 1000 / rate - others  # for the gateway's processes and its database server together
            per_process = r["processes"] * 1000 / rate
            used, database = r["cpu_ms_per_delivered"], r.get("postgres_cpu_ms_per_delivered") or 0.0
            cut = 1.0 if left <= 0 else max(1 - left / (used + database), 1 - per_process / used, 0)
            rows.append(f"| {data['title']} | {_label(r).removeprefix('Schakel, ')} | {_num(rate)}/s | "
                        f"{_num(cores * 1000 / rate, 2)} | {_num(others, 2)} | {_num(max(left, 0), 2)} | "
                        f"{_num(per_process, 2)} | {_num(used + database, 2)}"
                        + (f" ({_num(used, 2)} + {_num(database, 2)})" if database else "")
                        + " | " + ("cannot fit: nothing left" if left <= 0 else "within it" if cut == 0
                                   else f"at least {cut * 100:.0f} % less") + " |")
    if not rows:
        return
    w("**What the relay's rate would leave for Schakel on this machine.** At the relay's rate, the machine's "
      f"{cores} cores have {cores} × 1,000 ÷ rate milliseconds of CPU per message for everything. The partner and "
      "wrk take their share of it — here, what they used per message in Schakel's own pass: for the WMO301 the "
      "Care4 simulator answering three requests and wrk reading each WMO302 retour. That share depends on how "
      "the partner is loaded: driven alone by wrk, the simulator used less CPU per write (the ECD alone, below), "
      "so where a row is close, read it with that. What is left is for the gateway's processes and, on "
      "PostgreSQL, its database server. A process runs its Python on one core at a time, so each has at most 1,000 ÷ rate ms a message. The last column is how much "
      "less CPU per message Schakel (its processes, and its database server's backends) would have to use to fit "
      "both — at least that much, since the kernel's own work for loopback traffic is counted for no process; "
      "\"cannot fit\" where the partner and wrk alone used all of it.\n")
    w("| message | Schakel configuration | relay's rate | CPU a message, whole machine (ms) | partner and wrk (ms) | "
      "left for Schakel and its database (ms) | one core per process (ms) | Schakel used (ms; processes + database) | "
      "to reach the relay |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        w(row)
    w("")
    load = results.get("load", {}).get("wmo301") or {}
    alone, relay_two = load.get("partner_alone"), (load.get("saturated") or {}).get("relay-2")
    if alone:
        text = (f"**The ECD alone.** Driven by wrk with only the three requests a WMO301 costs it (`bench/ceiling.py`, "
                f"once in each round, after the systems), the Care4 simulator took {_num(alone['rate'])} writes per "
                f"second ({_num(min(alone['rounds']))}–{_num(max(alone['rounds']))}), using "
                f"{_num(alone['partner_cpu_ms_per_write'], 2)} ms of CPU per write — about one core: the simulator is "
                "one Python process, so that is as many as it takes, whatever the rest of the machine is doing. No "
                "gateway that sends it these three requests for each WMO301 could deliver more")
        if relay_two:
            text += (f"; the bare relay with two processes forwarded {_num(relay_two['end_to_end_rate'])} WMO301s a "
                     "second to its sink")
        w(text + ".\n")


def _ecd_alone_verdict(results: dict[str, Any]) -> str:
    """What the ECD alone says about the WMO301 comparisons of this run."""
    load = results.get("load", {}).get("wmo301") or {}
    alone, sat = load.get("partner_alone"), load.get("saturated") or {}
    relays = [(n, sat[f"relay-{n}"]) for n in (1, 2) if f"relay-{n}" in sat]
    if not alone or not relays or not min(alone["rounds"]) > 0:
        return ""  # an ECD-alone pass that failed bounds nothing
    text = (f" In this run the Care4 simulator alone took {_num(alone['rate'])} writes a second; the bare relay "
            "forwarded " + " and ".join(f"{_num(r['end_to_end_rate'])} WMO301s a second with {n} "
                                        f"process{'es' if n > 1 else ''}" for n, r in relays) + ".")
    # Round by round, not medians: the relay's slowest pass above the ECD's fastest.
    slowest = [(n, min(r.get("rounds") or [r["end_to_end_rate"]])) for n, r in relays]
    above = [(n, rate) for n, rate in slowest if rate >= max(alone["rounds"])]
    if above:
        text += (" With " + " and ".join(f"{n} process{'es' if n > 1 else ''}" for n, _ in above)
                 + ", even the relay's slowest pass (" + " and ".join(_num(rate) for _, rate in above)
                 + f") was above the ECD's fastest ({_num(max(alone['rounds']))}): a gateway that delivers WMO301s to "
                 "this ECD in these three requests could not reach the relay there on this machine, whatever else it "
                 "did, so those comparisons cannot be closed here without a lighter ECD interface (one look-up fewer "
                 "— the client's id by BSN, say, kept from an earlier message — would lighten the ECD's share).")
    return text


def _gap(results: dict[str, Any], w: Any) -> None:
    w("## Where Schakel stands, and what would close the gap\n")
    for kind, data in results.get("load", {}).items():
        sat = data["saturated"]
        schakel = _schakel(sat)
        if not schakel:
            continue
        best = max(schakel, key=lambda r: r["end_to_end_rate"])
        one = sat.get("schakel-sqlite-1", schakel[0])
        # The relay with as many processes as Schakel's best: like for like.
        relay, node = sat.get(f"relay-{best['processes']}") or sat.get("relay-1"), sat.get("node-red-1")
        text = (f"- **{data['title']}.** Schakel's best configuration ({_label(best).removeprefix('Schakel, ')}) "
                f"delivered {_num(best['end_to_end_rate'])} messages per second")
        if relay:
            text += (f"; {_label(relay)} {_num(relay['end_to_end_rate'])} "
                     f"({_ratio(relay['end_to_end_rate'], best['end_to_end_rate'])} that)")
        if node:
            text += (f"; Node-RED {_num(node['end_to_end_rate'])} "
                     f"({_ratio(node['end_to_end_rate'], best['end_to_end_rate'])} that)")
        relay_one = sat.get("relay-1")
        text += (f". Per message, Schakel on SQLite in one process used {_num(one['cpu_ms_per_delivered'], 2)} ms of "
                 f"CPU, the relay in one process {_num(relay_one['cpu_ms_per_delivered'], 2) if relay_one else '–'} ms "
                 f"and Node-RED "
                 f"{_num(node['cpu_ms_per_delivered'], 2) if node else '–'} ms")
        rows = one.get("rows_written") or {}
        if rows.get("exchanges"):
            text += (f"; Schakel wrote {rows['exchange_transitions'] / rows['exchanges']:.1f} state transitions and "
                     f"{rows['audit_log'] / rows['exchanges']:.1f} hash-chained audit entries per exchange")
        w(text + ".")
        for backend, title in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
            single, double = sat.get(f"schakel-{backend}-1"), sat.get(f"schakel-{backend}-2")
            if single and double:
                w(f"  A second process on {title} took the rate from {_num(single['end_to_end_rate'])} to "
                  f"{_num(double['end_to_end_rate'])} per second ({_ratio(double['end_to_end_rate'], single['end_to_end_rate'])}).")
        queued = [r for r in schakel if (r.get("backlog_at_end_of_load") or 0) > 0]
        if queued:
            worst = max(queued, key=lambda r: r["backlog_at_end_of_load"])
            w(f"  Under the saturating load Schakel accepted faster than it delivered in {len(queued)} of "
              f"{len(schakel)} configurations: {_label(worst).removeprefix('Schakel, ')} accepted "
              f"{_num(worst['submission_rate'])}/s while {_num(worst['arrival_rate_under_load'])}/s reached the "
              f"partner, so {worst['backlog_at_end_of_load']:,} exchanges were still queued when the load stopped "
              f"and took {_num(worst['drain_seconds'], 2)} s more to arrive.")
    w("")
    _budget(results, w)
    w("Why it costs more: the relays and Node-RED do one thing per message — forward it. Schakel, per exchange, "
      "authenticates the caller, parses and validates the message (for a WMO301 against the official XSD, and "
      "answers with a WMO302), pseudonymises the client, checks the consent register or legal basis, maps only "
      "the allowed fields, encrypts the body, and commits the exchange, its transitions, its outbox row, its "
      "idempotency answer and its hash-chained audit entries in one transaction — in which, with a delivery "
      "slot free, it also re-checks the basis and marks the message sending; otherwise the delivery worker claims "
      "a batch of messages, re-checks each one's basis and marks it sending in a transaction of its own — and "
      "records the outcomes of a batch of attempts in another. Every commit is durable (`synchronous=FULL`, "
      "`synchronous_commit=on`).\n")
    w("What has been done about it since the first full run of this bench (commit `68dcdce`, on a busier "
      "machine: for the JSON notice on SQLite in one process, 18.72 ms of CPU per message and the bare relay "
      "11.25 times Schakel's rate; rates from different runs do not compare, CPU per message and ratios "
      "within a run do):\n")
    w("1. **Group commit** (`gateway/core/groupcommit.py`). Concurrent requests, and a batch of delivery "
      "outcomes, share one transaction, one seal of the audit chain and one durable commit; nobody is answered "
      "before the commit that holds their change.")
    w("2. **Fewer transactions per exchange.** The inbound `Idempotency-Key` is stored in the exchange's own "
      "transaction (a race between two requests with one key is settled by the insert, and the loser answers "
      "with the winner's answer); claiming and preparing a batch of outbox rows is one transaction.")
    w("3. **Plain rows on the hot paths.** Exchanges, outbox rows, transitions and audit entries are inserted "
      "as one executemany per table per batch (on PostgreSQL, since session 10, one statement per table per "
      "batch: item 14), and an attempt's outcome is two conditional statements, instead of ORM objects flushed "
      "one by one.")
    w("4. **Processes on one SQLite file** queue for the writer on a file lock instead of sleeping in SQLite's "
      "busy handler, so a second process adds throughput instead of taking it away.")
    w("5. **Partners isolated** in the delivery worker (fair claims, a share of the slots per partner, a "
      "partner's waiting messages released when it answers again): not exercised by this bench, which has one partner per message, but it keeps a slow partner from stalling the rest "
      "(docs/reliability.md).")
    w("6. **Fewer reads, and no ORM objects, per message** (session 4): a token found valid is trusted for "
      "`GATEWAY_TOKEN_CACHE_SECONDS` (2 s) instead of read on every request; who may send, the stored "
      "idempotency answer, the partner and the consent are read in one read transaction instead of three or four, "
      "as plain rows; a claimed batch's partners in one statement and each consent re-check as a plain row; "
      "audit entries and exchange drafts are plain objects until their rows are inserted; and a FastAPI "
      "dependency written as a plain `def` no longer sends every request through a worker thread and back.")
    w("7. **One event loop, one commit thread** (session 5). On SQLite the group commit's units run as a task on "
      "the event loop and only the commit itself (the wait for the disk) goes to a thread; requests, claims and "
      "outcomes no longer hand the interpreter lock back and forth between threads, which had cost about a third "
      "of the CPU.")
    w("8. **Hot statements on the driver** (`gateway/core/sql.py`): the reads before a message is accepted, the "
      "claim's marks, an outcome's updates and every queued insert are SQLAlchemy Core statements compiled once "
      "per dialect and run on the DBAPI cursor with SQLAlchemy's own type conversions — the same rows, tested on "
      "both backends, at a fraction of the per-call cost.")
    w("9. **Straight to the worker:** a message accepted while its partner has a free slot is marked `sending` "
      "and leased in the commit that queues it (the basis checked again in that commit, as a claim would) and "
      "attempted right after, without a claim transaction per message. Ordered routes (iWmo) still wait for a "
      "claim.")
    w("10. **The shared client's transport is aiohttp** (`gateway/core/transport.py`): plugins keep httpx's API; "
      "underneath, aiohttp's pool replaces httpcore's, which walked every pooled connection for every request, "
      "and the delivery path calls that pool directly. The *bare relay on aiohttp* row shows the same change "
      "made to the relay: much of the relay's own cost is its HTTP client.")
    w("11. **The submit endpoint and the iWmo inbox are DirectRoutes** (`gateway/api/direct.py`): documented and "
      "guarded like every endpoint, but called without FastAPI's per-request dependency resolution; and the "
      "garbage collector leaves what exists after start-up alone (`gc.freeze`).")
    w("12. **Fewer round trips to PostgreSQL** (session 7). The event loop keeps one read connection (no pool "
      "check per request) that reads in autocommit — under READ COMMITTED each statement sees the latest commits "
      "either way, so the transaction only cost a `ROLLBACK` round trip — and never hands it back to the pool. "
      "In a write transaction that several units share, the statements whose answers decide whether it may "
      "commit — each idempotency answer's insert, each consent re-check (share-locked) and each outcome's "
      "conditional update — go to the server as one pipeline just before the commit; where one is not as "
      "expected (a key taken, a consent withdrawn, an exchange another attempt moved), the batch runs again unit "
      "by unit and each decides as before (`store.queue_checked`, tested on both backends). Whether a connector "
      "is paused is asked once per transaction, and an outcome's outbox row goes with the batch's others in one "
      "executemany. Measured on the JSON notice, single passes before and after on the same machine: about 210 "
      "→ 285 messages per second in one process (and 460 in two, where the last full run, on another machine, "
      "had 311), and PostgreSQL's own CPU per message from 1.7 to 0.9 ms.")
    w("13. **Look-ups and a batch's writes as pipelines on PostgreSQL** (session 8). The three reads before a "
      "message is accepted (whether its key was answered, the partner, the client's consents for the purpose) "
      "do not depend on each other, so they go to the server together (`sql.prefetch`) and the event loop "
      "waits once instead of three times; a group commit's queued work — the checked statements, the changes, "
      "every table's inserts and the audit chain's lock and head — goes as one pipeline, then its chained audit "
      "entries: two waits per batch instead of one per statement and table (both counted in libpq's protocol "
      "trace by the tests); and ids are drawn from the kernel 256 at a time instead of one system call — and one "
      "release of the interpreter lock — each. Measured on the JSON notice in one process, single passes of the "
      "code before and after in turn on the same machine: 304 and 284 → 329 and 326 messages per second, "
      "PostgreSQL's CPU per message 1.0 → 0.8 ms.")
    w("14. **The write lock first, then the batch; one insert per table on PostgreSQL** (session 10). On SQLite "
      "the group commit on the event loop took its batch from the queue and then waited for the write lock; "
      "with two processes on one file, what queued while the other process held the lock waited for another "
      "round. It now takes the lock first and then everything queued (`groupcommit._drain_on_loop`; a test holds "
      "the lock as a second process would and sees ten units go in one batch). On PostgreSQL a batch's rows of "
      "a table go as one `INSERT … SELECT FROM unnest(…) WITH ORDINALITY` instead of one statement per row "
      "(`sql.Insert`): in the server's statement log the per-row statements of the transitions and audit "
      "entries took 60–75 µs each, mostly per-statement work; the arrays are cast to the columns' base types, "
      "so a value too long for its column is still refused, not cut short (tested). An audit entry's canonical "
      "form is built about 13 % faster, with the same bytes (a test pins two hashes the original code computed). "
      "Measured on the JSON notice, single passes before and after on that session's machine: SQLite with two "
      "processes 240–285 → 350–380 messages per second, PostgreSQL with two 184 → 213–220; with one process "
      "the difference was within the passes' spread. After that session's run, two more changes to the writer's checked "
      "statements on PostgreSQL: a batch's re-checks of one consent read it once (the bench's messages all rely "
      "on one consent), and a batch's idempotency answers go as one `INSERT … SELECT FROM unnest(…) ON CONFLICT "
      "DO NOTHING RETURNING` (`sql.InsertUnlessTaken`), each unit still learning whether its key went in; both "
      "tested. Single passes after them (PostgreSQL, 155–162 per second with one process, 217–222 with two) "
      "moved no further than the spread: the checked statements were not what held the writer.")
    w("15. **A batch's rows as one JSON document on PostgreSQL; rates as medians of three rounds** (session 11). "
      "Profiled on the JSON notice, the largest single cost left on PostgreSQL was psycopg dumping item 14's "
      "arrays in Python, value by value. A batch's rows of a table now go as one parameter, a JSON document "
      "encoded by the `json` module's C encoder, which the server reads back with `ROWS FROM (json_to_recordset(…)) "
      "WITH ORDINALITY`, as the columns' base types (a value too long for its column is still refused; the audit "
      "log's order still follows the rows'; bytes, nested JSON, awkward text and microsecond times read back "
      "exactly as given — tested on both backends). Single passes of the code before and after, interleaved on "
      "one machine: 260 and 235 → 287 and 290 messages per second with one process, 330 and 362 → 420 and 392 "
      "with two; CPU per message 3.4–3.7 → 3.0 ms. Measured and not kept: running PostgreSQL's group commit on "
      "the event loop as SQLite's does (its round trips blocking the loop, only the commit on a thread): 257 and "
      "243 against the writer thread's 295 and 277 with one process, 328 and 350 against 271 and 390 with two. "
      "On the same machine, single passes of the bare relay spread from 309 to 615 per second (one process) and "
      "from 386 to 981 (two) within the hour, Schakel's by about a fifth; so from session 11's run on, each system's "
      "rate is the median of three passes, taken in rounds that each run every system in turn.")
    w("16. **An iWmo message with less Python; ordered routes straight to the worker; the relay's two processes "
      "split like Schakel's** (session 12). The safe XML parser's structural limits (depth, elements, attributes "
      "per element, XInclude, entity references) are answered inside libxml2 — compiled XPath expressions and "
      "namespace-filtered iteration — instead of a Python walk of every element (186 → about 22 µs on the "
      "WMO301 example; a document exactly at each limit is accepted and one past it refused anywhere in it, "
      "tested), and the WMO302 retour renames and closes its classes in one pass over the 301's own elements "
      "(370 → 263 µs, byte for byte the same retours on every reference example). A message on an ordered "
      "route (the WMO301's sync into the ECD) now goes to the worker in the commit that queues it when "
      "nothing else of the same client is pending for that partner (`outbox.first_in_line`: decided under the "
      "write lock on SQLite, and under a per-client advisory lock on PostgreSQL taken without waiting, so two "
      "batches cannot deadlock); the rest wait for a claim as before (tested on both backends). An independent "
      "review after session 12's run found two ways the first version could still put two of one client's messages in "
      "flight — a batch given up and run again unit by unit kept its first run's hand-off, and a claim in another "
      "process could take an older message while a hand-off was not yet committed — and both are mended: a unit "
      "decides afresh each time it runs, and a claim takes the same per-client locks without waiting and passes "
      "over a client whose lock another transaction holds, or whose message its own transaction queued (each "
      "tested; session 12's run measured the code before them). Single WMO301 passes interleaved with the previous code: "
      "SQLite, one process, 282 and 316 against 279 and 245 messages per second, added latency p50 41 and 33 "
      "against 395 and 307 ms; PostgreSQL, one process, 178 and 182 against 167 and 123, p50 84 and 83 against "
      "2,916 and 3,325 ms — delivery now keeps up with acceptance. And the bare relay's two processes are now "
      "two uvicorns on their own ports, each loaded by its own wrk, as Schakel's are: `uvicorn --workers 2` "
      "shares one listening socket, and with the bench's sixteen long-lived connections the kernel often gave "
      "them all to one worker, so the relay's two-process passes had measured one process or two by chance "
      "(614 and 1,424 per second in two passes an hour apart on session 12's machine; session 11's range "
      "was 477–963). Its two-process rate is higher now, and so is the bar. Measured and not kept: answering "
      "whether the connector is paused with a shared PostgreSQL batch's other checked statements instead of a "
      "read the batch waits for (single passes 388, 382 and 501, 463 per second against 373, 432 and 505, 455 "
      "with one and two processes: no difference beyond the spread); and, on PostgreSQL, awaiting a request's "
      "look-ups on an asyncio connection (psycopg's) instead of blocking the event loop on the kept one, which "
      "a profile had shown waiting a third of its time: four rounds of single passes, 283, 323, 314 and 268 "
      "against 257, 308, 289 and 307 per second with one process, 372, 345, 424 and 368 against 399, 380, 351 "
      "and 394 with two — the loop's wait was not what held the rate, and the CPU the asyncio driver costs "
      "took back what the wait gave.")
    w("17. **Ordered routes keep their order across retries, pauses and replays** (session 13). Each outbox "
      "row of an ordered route names its line — the client, per partner — and a claim's candidates are only "
      "the message each line waits for: the client's oldest queued, while none of theirs is out (before, only "
      "a message out held its client back, and one waiting for its retry was overtaken by a younger one). "
      "On PostgreSQL that is found with a window over the outbox's line rows, on SQLite with a correlated "
      "probe of a new index, each the faster on its database with a 50,000-message backlog (60 against 430 ms "
      "a claim on PostgreSQL; 85 against 135 ms on SQLite). In the chaos runs, older WMO301s superseded at "
      "the ECD fell from 55 and 44 to 0 and 4 (docs/reliability.md). On the bench's load, where nearly every "
      "message goes straight to its worker, it costs nothing measurable: single passes on SQLite with one "
      "process, JSON 675 and 679 per second after it against 697 and 729 before it earlier the same morning, "
      "within the spread of the relay's own passes (627–756). Measured and not kept: running the group "
      "commit's inserts and audit seal on the commit thread instead of the event loop (JSON on SQLite, one "
      "process: 539 and 579 against 640–730 per second; the loop went idle while each batch took longer).")
    w("18. **A backlog drains without pauses** (session 16, before session 16's run, on its machine). Driven at 64 connections instead of 16 (single passes of 10 s), Schakel accepted faster than it "
      "delivered — on SQLite with one process 450–570 messages a second accepted against about 200 arriving at "
      "the partner while the load lasted — and the queue left at the end (1,500–3,800 messages) drained at about "
      "130 a second on SQLite and 120 on PostgreSQL, with the event loop idle three quarters of the time. The "
      "delivery worker judged a claim that filled a partner's share by the counts after it; attempts that had "
      "ended while the claim ran made the partner look short of its share, so the worker concluded that nothing "
      "more was due, and freed slots no longer woke it before its next poll (0.2 s). It now judges by what the "
      "partner had out when the claim was asked for (tested): the same backlogs drained at 605–711 a second on "
      "SQLite and 346–454 on PostgreSQL, and the end-to-end rate at 64 connections (SQLite, one process) went "
      "from 141–146 to 325–355 per second. The backlog drain of docs/reliability.md then delivered its 3,600 "
      "messages in 8.3 s (10.2 s in session 9, on another machine; that page has the latest run). At the bench's own load of 16 connections "
      "the JSON notice's queue stayed within a few messages of empty (at most 14 at the end of a saturating "
      "pass in session 16's run), so there the worker seldom has to claim and the change does little for this page's "
      "JSON rates; the WMO301's ordered route leans on claims more (a client's next message waits for one). "
      "After session 16's run, from an independent review of that change: a wake-up that came while a claim ran (a slot "
      "freed, a message queued) was cleared when the claim ended, so it waited for the poll; the worker now "
      "clears it before the claim (tested). Single passes before and after it on that machine were within "
      "their spread (WMO301, SQLite, one process: 150 and 163 against 157 and 139 per second; PostgreSQL 100 "
      "and 83 against 98 and 86; JSON, SQLite, 321 and 343 against 335 and 322). "
      "Measured and not kept: claiming only once half a batch of slots had come free "
      "rather than as each came free (within the passes' spread). Left as it is: under that load a partner's "
      "slot is taken when a message is accepted and held while the message waits for its commit (about 100 ms "
      "at 64 connections), so a partner's 32 slots carry some 200–300 messages a second while acceptance "
      "runs faster; holding no slot across the commit would let an accepted message wait in the process after "
      "its basis was checked, for as long as the partner takes to answer the others (up to the attempt "
      "deadline), and the basis is checked right before each attempt so that it cannot. A heavier load does "
      "not change where Schakel stands: in single passes at 16 and at 64 connections, interleaved, two rounds "
      "(JSON notice), the one-process bare relay went from 357 and 419 per second at 16 to 228 and 303 at 64 "
      "(its CPU per message from 2.8 and 2.4 ms to 4.4 and 3.3 ms), the one-process Schakel on SQLite from "
      "396 and 347 to 355 and 325 — ahead of the relay in both passes at 64, one ahead and one behind at 16 — "
      "while the two-process relay stayed ahead at both "
      "(773 and 837 at 16, 544 and 549 at 64, against Schakel's 442 and 556, and 537 and 477, on SQLite) and "
      "so did the relay against Schakel on PostgreSQL (Schakel with one process 189 and 239 per second at 16, "
      "199 and 180 at 64; with two, 303 and 319, and 299 and 275).\n")
    w("19. **A claim tells the worker which partners it filled** (session 17, before session 17's run). A claim "
      "spends a partner's share on every message it chooses for it, those that need no attempt included — "
      "refused when the basis is checked again, or parked while the partner is paused — but the worker judged "
      "by the attempts alone: after such a claim a partner with more due looked short of its share, and since "
      "no slot of its would free up, nothing woke the worker before its next poll (0.2 s). `outbox.take_async` "
      "now says which partners the claim left at their share, and the worker claims again at once for one "
      "that holds fewer slots than that (tested: five messages refused two at a time within 5 s against a "
      "30 s poll; before, each claim waited for the poll). On the bench's load it changes nothing that one "
      "pass can show: single passes on SQLite with one process, interleaved with the session's starting "
      "code, JSON notice at 64 connections 372 and 376 against 345 and 390 per second; WMO301 at 16 "
      "connections 206 and 193 against 157 and 194. Also before session 17's run, each below what one pass can "
      "show: the log's safety net scrubs a line's fields in 5.6 instead of 25 microseconds (it ran an "
      "import statement on every call; timeit, eight fields), and a partner's 2xx answer no longer builds "
      "the httpx request that only an error needs (2 % of the event loop's samples on a WMO301 pass, "
      "py-spy).\n")
    w("20. **What the relay's rate leaves, and the ECD alone** (session 18, before session 18's run). Nothing on "
      "Schakel's path changed; the page gained two measurements that say which comparisons can be closed on "
      "this machine at all. The [table above](#where-schakel-stands-and-what-would-close-the-gap) works out, from "
      "this run's own figures, how much CPU per message the relay's rate leaves for Schakel, and "
      "`bench/ceiling.py` drives the Care4 simulator with nothing but the three requests a WMO301 costs it, in "
      "each WMO301 round. The machine does not grow: every kind of machine this project can be put on has "
      "these two cores (the workplace's own limits). Measured and not kept: SQLite's memory-mapped reads "
      "(`PRAGMA mmap_size`, 256 MB) for the two processes that share one database, to spare each the rereading "
      "of pages the other changed — single passes, JSON notice, 657 and 614 per second against 743 and 729 "
      "without it, interleaved. A profile of the JSON notice on PostgreSQL with one process showed the event "
      "loop waiting for the server's answers to a request's look-ups in about half of the samples it was "
      "busy in, as item 16 found; an asyncio connection for them was measured there and not kept.")
    w("21. **Where a WMO301's CPU goes** (session 19, before this run; a measurement, which changed nothing on "
      "Schakel's path). In "
      "single saturating passes with one process, Schakel's process used 5.15 ms of CPU per WMO301 delivered "
      "(192.7 per second, its one core busy), the one-process bare relay's 2.09 ms (475.9 per second, its one "
      "core busy too: the relay is held by its own process's CPU, not by the machine). So with one process each, "
      "on any machine, Schakel would have to do a WMO301's work in less CPU than the relay spends forwarding it. "
      "A py-spy profile of Schakel's pass: the WMO301's own handling (safe parse, schema validation, the "
      "WMO302 retour built and validated against its schema) about a quarter of the samples, the retour alone "
      "14 %; the group commit's writes 13 %; acceptance through the pipeline 9 %; the three ECD requests and "
      "their outcomes 6 %; the rest uvicorn, Starlette and FastAPI's request handling, which the relay pays "
      "too. Without the WMO301's own handling altogether — which the iWmo standard requires — the rest would "
      "still be about 3.9 ms, nearly twice the relay's 2.09. Most of the relay's own cost is httpx's client, "
      "though (the relay on aiohttp used 0.28 ms a WMO301 in session 19's run), so the part Schakel and the relay "
      "share is small: the gap is Schakel's own work, not a floor both stand on.\n")
    commit = (results.get("machine") or {}).get("schakel_commit") or ""
    w(f"This run is of session 19's code (commit `{commit[:7]}`): since the previous run (session 18's code, "
      "`559e176`), the basis re-check before an attempt asks pluggy for the plugins' checks once instead of "
      "twice (on the bench's path, too little to show in a pass), and a dead letter is no longer replayed "
      "when its basis has lapsed (docs/privacy.md; not on the bench's path). Measured in session "
      "14 and not kept: dropping every secondary index of the "
      "exchanges, transitions, audit and outbox tables (an upper bound, since those indexes serve the API's "
      "and the access report's queries) gave 6–11 % on the JSON notice with SQLite in single passes; a 64 MB "
      "SQLite page cache instead of 2 MB, no gain. The relay on aiohttp's JSON notice ran at "
      f"{_num(((results.get('load') or {}).get('json') or {}).get('saturated', {}).get('relay-aiohttp-1', {}).get('end_to_end_rate'))} "
      f"per second here ({results['machine'].get('cpu', 'this machine')}) against 3,463.7 in the previous run "
      "(an Intel Xeon machine); compare ratios "
      "across runs, not rates.\n")
    w("The previous full run (session 18, commit `559e176`, three rounds, an Intel Xeon machine with 2 cores) "
      "had Schakel's JSON notice on SQLite at 571.8 and 741.5 per second with one and two processes (the relay "
      "1.10 and 1.65 times that), on PostgreSQL 352.4 and 478.0 (1.79 and 2.56 times); the WMO301 3.36 to 7.52 "
      "times, and the ECD alone at 777.6 writes a second. Session 17's (`1c1c032`, an AMD EPYC machine) had "
      "the relay at 1.01 and 1.58 times Schakel on SQLite, 2.02 and 2.32 on PostgreSQL, the WMO301 2.36 to "
      "5.94 times. Session 16's (`0bbb6cb`) had the relay at 1.10 and 1.43 times Schakel on SQLite, 1.77 and 2.22 "
      "on PostgreSQL, the WMO301 2.38 to 6.52 times. Session 14's (`11bc681`) had the relay at 1.03 and 1.46 times Schakel on SQLite, 2.10 and 2.71 "
      "on PostgreSQL, the WMO301 2.46 to 6.89 times. Session 13's (`96379a3`) had the relay at 1.05 and 1.62 "
      "times Schakel on SQLite, 1.77 and 2.84 on PostgreSQL, the WMO301 2.25 to 6.86 times. Session 12's "
      "(`e8f2e76`) had the relay at 1.04 and 1.88 times Schakel on SQLite, 2.01 and 4.00 on PostgreSQL. "
      "Session 11's run (`5ea4989`, an Intel Xeon machine) ran the two-process relay as `uvicorn --workers 2` "
      "(item 16), so its two-process ratios do not compare. Session 10's run (`f2f38e4`, one pass per system, "
      "an AMD EPYC machine) had the relay at 1.02 and 1.65 times Schakel on SQLite. Rates from different runs "
      "never compare; ratios and CPU per message within a run do.\n")
    w("What is left is CPU in a Python process, which the GIL holds to about one core: uvicorn and Starlette "
      "(which the relay pays too), the validation, pseudonymisation, consent check, mapping and encryption, the "
      "rows and hash-chained audit entries of each exchange, and a log line and a span per step. Where Schakel "
      "is still below the relay, this is what would close the gap, in the order we would try it:\n")
    w("1. **The iWmo route:** the comparison is not like for like — the relay forwards the WMO301 to the sink in "
      "one request, while Schakel validates it against the official XSD, answers a WMO302, and delivers it to the "
      "Care4 simulator in three requests (find the client by BSN, read her current arrangements, write the "
      "new one), and that simulator is a Python process on the same two cores. Profiled in session 12 on "
      "SQLite with one process, after item 16, Schakel's one event loop was the limit (about one core busy) "
      "and about a quarter of its time was still the iWmo plugin, most of it now in libxml2 itself: validating "
      "the WMO301 against its XSD, copying its tree into the WMO302, validating that against its own XSD (a "
      "retour that would not validate is never sent) and serialising it. The rest is the same durable path as "
      "the JSON notice's, with a larger body to encrypt and store, and three requests to deliver instead of "
      "one. Serialising the retour from the request's own bytes instead of a renamed copy of its tree would "
      "save part of that quarter; the requests to the ECD are the ECD's interface." + _ecd_alone_verdict(results))
    w("2. **PostgreSQL:** the event loop now waits for the server once per message (its look-ups, sent "
      "together), and the writer twice per batch. What bounds the rate is the one writer: in session 10 (before "
      "item 15 took most of the inserts' cost away), timed "
      "inside the writer on the JSON notice with one process, it was busy all the time, a batch carried about 15 "
      "messages and took some 45 ms on session 10's machine — 3 ms to begin, 8 ms running the units, and 33 ms "
      "writing: 11 ms sending the checked statements (one per unit: psycopg's own work per statement, on a "
      "thread that shares the interpreter lock with the busy event loop), 5 ms the inserts, 4 ms waiting for "
      "the pipeline, 8 ms chaining and inserting the audit entries. Per message the server inserts about "
      "sixteen rows and sixty index entries (the exchange row "
      "has nine indexes, and its update on delivery cannot be a HOT update because its state is indexed). "
      "Measured and not kept in session 8: a second writer thread (313 and 319 "
      "against 323 per second), time-ordered ids (UUIDv7) to make the index inserts cheaper (no change in "
      "the server's CPU per message) and a shorter interpreter switch interval (no change); in session 7, "
      "reads on threads with pooled connections; in session 10, the checked statements as one statement per "
      "kind and batch (item 14: kept, no change in the rate). What would help: fewer rows per message (item 4), an "
      "asynchronous driver on the loop so that a batch's commit and the next batch's work overlap, and more "
      "processes, each with its own writer connection.")
    w("3. **More processes,** on a machine with more cores than this one; on PostgreSQL the outbox is the only "
      "coordination between them, on SQLite the writer lock is. On these two cores the partner simulator and "
      "wrk use part of the second core. This project cannot have such a machine: every kind of machine it can "
      "be put on has two cores.")
    w("4. **Fewer rows per accepted message:** acceptance writes four transitions and four audit entries "
      "(received, validated, authorised, queued) in the same instant; one entry per step is what the audit "
      "trail promises today, and folding them would change what a privacy officer reads, so it is a decision "
      "for the privacy officers, not a tuning knob. What it would buy was measured in session 15 on another "
      "machine (2 cores, faster than this run's), with an experiment not kept: the first three of those steps "
      "still moved the state but wrote no transition and no audit entry (three transitions and three audit entries an exchange instead of six of each). "
      "Single passes of 10 s on the JSON notice, interleaved with the unchanged code: SQLite, one process, 1,287, "
      "1,374 and 1,165 against 999, 1,162 and 1,130 per second (CPU per message about 0.85 against 0.96 ms); "
      "SQLite, two processes, 1,569 against 1,189; PostgreSQL, one process, 700 and 737 against 660 and 698. "
      "The bare relay in the same minutes: 958 and 996 per second with one process, 2,190 and 2,208 with two. "
      "Folding the steps would lift the rate by up to about a third on SQLite and by some 6 % on PostgreSQL, "
      "and would still leave Schakel below the two-process relay: it is not what closes the gap on its own.")
    w("5. **Back-pressure:** where the submission rate is above the arrival rate the queue grows while the load "
      "lasts; a bound on the queue that answers `429` with `Retry-After` would keep delivery fed.\n")
    w("Against Node-RED the comparison is not like for like, and the page should not be read as if it were: "
      "Node-RED and the bare relay promise nothing once they have answered — a partner that is down loses the "
      "message, nothing is audited, nothing is minimised, and nothing stops a message without a legal basis. "
      "The figures say what those guarantees cost on this machine; they do not make them optional.\n")


def _reproduce(results: dict[str, Any], w: Any) -> None:
    w("## Reproducing this\n")
    w("```\nmake install                          # .venv from this repository\n"
      "apt-get install -y wrk nodejs npm     # the load generator; Node.js for the Node-RED baseline\n"
      ".venv/bin/python bench/run.py        # the full run: writes docs/benchmarks.{json,md,svg}\n"
      ".venv/bin/python bench/run.py --quick  # a smoke run of every part, results in $TMPDIR/schakel-bench-quick\n```\n")
    w("It needs PostgreSQL at `127.0.0.1:5432` with the user `postgres` allowed to create databases (the bench "
      "creates and drops its own), and installs Node-RED 4.1 from npm into `$TMPDIR/schakel-bench-node-red-4.1`. "
      "All traffic stays on 127.0.0.1 and every pass stops by itself. `--keep` keeps the working folder with every "
      "log, wrk's per-request logs and the SQLite databases.\n")
    w("## What is not measured here\n")
    w("- Separate machines for the load generator, the partner and the database; here they share the cores with "
      "the systems under test.")
    w("- Faults: the partner always answers 200 at once; the retry path is exercised by the tests "
      "(`tests/test_durability.py`), not timed here.")
    w("- TLS, and OpenTelemetry export (no collector was configured).")
    w("- Delivery of the imported iWmo batch to the ECD (only the import itself is timed).\n")


if __name__ == "__main__":  # re-render the page and chart from a results file: report.py docs/benchmarks.json
    import sys

    source = Path(sys.argv[1])
    write(json.loads(source.read_text()), source.parent)
