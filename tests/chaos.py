"""The chaos run and the backlog drain: real gateway processes, real partner simulators, real faults.

**Chaos run** (:func:`chaos`). Exchanges go to every kind of partner at once — webhook partners,
the Care4 ECD (WMO301 allocations), the Veilig Thuis regions, a municipality and a police unit
(warm handovers and answers to information requests) and the municipality's iWmo inbox (WMO305,
307, 315 and 317) — while the partners misbehave and the gateway processes are killed with
SIGKILL and restarted:

=========================  ======================================================================
partner                    what it does wrong
=========================  ======================================================================
every webhook partner      10 % answers 500 (not applied); 5 % applies, then answers after the
                           attempt deadline (the gateway sees a timeout: outcome unknown)
``wijkteam-druppel``       and 10 % more applies, then trickles its answer a byte at a time past
                           the deadline (its 5 % late answers are trickled too: 15 % in all)
``wijkteam-reset``         and 10 % drops the connection before answering (not applied)
``wijkteam-uitval``        and is down for a stretch: a relay in front of it closes its port, so
                           connections are refused, then opens it again
``wijkteam-opgeheven``     never answers at all (nothing listens on its port): its messages must
                           end ``dead`` with a reason, never silently
``care4-ecd``              iWmo WMO301 allocations posted by a municipality become arrangement
                           writes into the Care4 ECD simulator, which now and then answers 500 or
                           stalls (the worker endpoints below read the same ECD, so they meet it
                           too); judged as state, the newest 301 per client in force
                           (:func:`_synced_counts`)
``vt-<region>``            meldingen a worker sends from a dossier (``POST /api/v1/veiligthuis/
                           meldingen``, meldrecht with her weighing) to the Veilig Thuis simulator:
                           10 % 500, 5 % late, 5 % dropped connection (:data:`PLUGIN_FAULTS`)
``gemeente-amsterdam``     warm handovers (``POST /api/v1/police/overdrachten``, with consent),
                           announced by a Notificaties API notification to the police/municipality
                           simulator: the same fault mix
``politie-utrecht``        the answers to its information requests (``POST /partners/police/
                           informatieverzoeken``, consent as the basis), posted back to it through
                           the outbox: the same fault mix
``gemeente-diemen``        WMO305/307/315/317 from the worker API (``/api/v1/wmo/...``) to the
                           municipality simulator: the same fault mix; it refuses a message whose
                           BerichtIdentificatie it already has (retourcode 9056), which on a retry
                           the gateway counts as delivered
(no basis)                 webhook notices, meldingen with "toestemming", handovers and
                           information requests about a client without a basis must be refused
                           and never arrive
=========================  ======================================================================

The result is judged like Jepsen's queue checker, by *logical* message id at the partner, never
by transport key, so a gateway that changed its ``Idempotency-Key`` on a retry — or rebuilt a
message, or made two exchanges of one request — would show up as a duplicate (every partner here
de-duplicates by key or by BerichtIdentificatie, so a repeat under the same one is absorbed and
not an effect):

=========================  ======================================================================
connector                  logical id: what the partner received, read from the message itself
=========================  ======================================================================
``webhook:*``              the notice's ``reference``
``wmo301:care4-ecd``       the arrangement (client, allocation number) and its status
``veiligthuis:*``          the run's reference, which the worker wrote in the melding's remarks
                           (``<Opmerkingen>``); the melding's ``<Kenmerk>`` must be its exchange
``overdracht:*``           the handover's own address (``resourceUrl``, ending in its id): all the
                           notification says of it
``informatieverzoek:*``    the request's ``kenmerk`` (``verzoek_kenmerk`` in the answer)
``wmo305:*``, ``wmo307:*`` the allocation (``ToewijzingNummer``) it reports start or stop of: each
                           message in the run names its own allocation, seeded in the ECD
``wmo315:*``, ``wmo317:*`` the request's ``ReferentieAanbieder`` (chosen once per request); the
                           BerichtIdentificatie must be the one the worker was told
=========================  ======================================================================

- **lost**: acknowledged (202, or a WMO302 accepting the 301) but no effect, and not dead with a reason
- **duplicated**: took effect more than once
- **unexpected**: an effect for a message that was refused or never sent
- **recovered**: acknowledged, took effect once, and needed more than one attempt or outlived a kill

and every exchange in the store must end ``delivered``, ``acknowledged``, ``refused`` or ``dead``
with a reason, what had no basis must be refused (and nothing else), and ``gateway audit verify``
must find the hash chain intact.

**Backlog drain** (:func:`drain`). One partner is down for an hour (compressed by the retry scale)
while its traffic queues up; another partner gets steady traffic throughout. Measured: how long
the backlog takes to drain once the partner is back, the gateway's resident memory (``/proc``),
and the other partner's delivery latency before, during the outage and during the drain.

``python -m tests.chaos --help`` runs either at any size; ``tests/test_chaos.py`` runs small ones in
CI; ``docs/reliability.md`` has the results of the long ones. Everything runs on 127.0.0.1 with
fictional data and stops by itself (a hard deadline per run).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
from sqlalchemy import func, select

from tests.servers import ROOT, ProcessServer, free_port, sink_process

# What a dead letter's reason says when an attempt's outcome was never known (the partner may have
# the message). Written out, not imported: the checker holds the gateway to its word.
OUTCOME_UNKNOWN = "outcome unknown"

TERMINAL = {"delivered", "acknowledged", "refused", "dead"}
WEBHOOK_ROUTE = "webhook.notice"
CONSENTING_CLIENT = "C-1001"
NO_BASIS_CLIENT = "C-1002"  # never consented: every notice about this client must be refused
MUNICIPALITY = "gemeente-diemen"
AGB = "42420001"  # the provider (Ontvanger) of the official WMO301 example
WMO301_EXAMPLE = ROOT.parent / "shared" / "reference" / "iwmo-3.2" / "voorbeeldberichten" / "WMO301.xml"

# The fault mix every webhook partner injects, and what each adds to it.
BASE_FAULTS = {"status_500": 0.10, "late": 0.05}
WEBHOOK_PARTNERS: dict[str, dict[str, float]] = {
    "wijkteam-storing": {},
    "wijkteam-druppel": {"trickle": 0.10},
    "wijkteam-reset": {"reset": 0.10},
    "wijkteam-uitval": {},  # plus the outage, by the relay
}
GONE_PARTNER = "wijkteam-opgeheven"

# The plugins' partners (Veilig Thuis, police and municipality contacts, the municipality's iWmo
# inbox) all inject the webhook partners' mix, and drop connections besides.
PLUGIN_FAULTS = {**BASE_FAULTS, "reset": 0.05}
HANDOVER_PARTNER = "gemeente-amsterdam"  # receives warm handovers (a municipality)
REQUESTER = "politie-utrecht"  # asks about clients; its answers leave through the outbox
NO_BASIS_DOSSIER = "D-0002"  # its client (C-0002) consented to nothing in the gateway
WMO_OUTBOUND = {"wmo305": ("/api/v1/wmo/start", "WMO305"), "wmo307": ("/api/v1/wmo/stop", "WMO307"),
                "wmo315": ("/api/v1/wmo/verzoeken/toewijzing", "WMO315"),
                "wmo317": ("/api/v1/wmo/verzoeken/wijziging", "WMO317")}
SEEDED_ALLOCATIONS = 900_000_000  # + plan index: the allocation a WMO305/307 of the run reports on
PLUGIN_KINDS = ("veiligthuis", "overdracht", "informatieverzoek", *WMO_OUTBOUND)

# How the exchanges are spread over the connectors (weights; a share of the whole, with every
# connector present).
MIX = {
    "webhook:wijkteam-storing": 14,
    "webhook:wijkteam-druppel": 10,
    "webhook:wijkteam-reset": 10,
    "webhook:wijkteam-uitval": 14,
    f"webhook:{GONE_PARTNER}": 1,
    "webhook:no-basis": 2,
    "wmo301:care4-ecd": 20,
    "veiligthuis:vt-amsterdam-amstelland": 4,
    "veiligthuis:vt-utrecht": 3,
    "veiligthuis:no-basis": 1,
    f"overdracht:{HANDOVER_PARTNER}": 4,
    "overdracht:no-basis": 1,
    f"informatieverzoek:{REQUESTER}": 4,
    "informatieverzoek:no-basis": 1,
    f"wmo305:{MUNICIPALITY}": 3,
    f"wmo307:{MUNICIPALITY}": 3,
    f"wmo315:{MUNICIPALITY}": 3,
    f"wmo317:{MUNICIPALITY}": 2,
}


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- a partner that can be taken down ----------------------------------------------------------------


class Outage:
    """A TCP relay in front of a partner. :meth:`down` closes its listening port and cuts every open
    connection, so the gateway gets *connection refused*, exactly as from a partner that is down;
    :meth:`up` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.refused_since: float | None = None
        self.stretches: list[dict[str, float]] = []

    def __enter__(self) -> "Outage":
        self.thread.start()
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, target_writer))
        try:
            await asyncio.gather(self._pipe(reader, target_writer), self._pipe(target_reader, writer))
        finally:
            for w in (writer, target_writer):
                self.writers.discard(w)
                w.transport.abort()

    async def _open(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def up(self) -> None:
        self._call(self._open())
        if self.refused_since is not None:
            self.stretches.append({"down_s": round(time.monotonic() - self.refused_since, 2)})
            self.refused_since = None

    def down(self) -> None:
        self._call(self._close())
        self.refused_since = time.monotonic()


# --- the world: simulators, store, gateway processes ------------------------------------------------


def _wmo301(template: bytes, identificatie: str, bsn: str, allocation: str) -> bytes:
    return (template
            .replace(b"<iwmo:Identificatie>123456789012</iwmo:Identificatie>",
                     f"<iwmo:Identificatie>{identificatie}</iwmo:Identificatie>".encode())
            .replace(b"<wmo301:Bsn>999900006</wmo301:Bsn>", f"<wmo301:Bsn>{bsn}</wmo301:Bsn>".encode())
            .replace(b"<wmo301:ToewijzingNummer>101</wmo301:ToewijzingNummer>",
                     f"<wmo301:ToewijzingNummer>{allocation}</wmo301:ToewijzingNummer>".encode()))


def _care4_clients() -> dict[str, str]:
    """BSN -> client id of the fictional Care4 clients that have a BSN."""
    from schakel_care4 import fixtures

    return {c["bsn"]: c["id"] for c in fixtures.build()["clients"].values() if c.get("bsn")}


def rss_kib(pid: int) -> dict[str, int]:
    """Resident memory of a process now and at its peak (``VmRSS``/``VmHWM`` from /proc), in KiB."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


@dataclass
class Sent:
    """One message as the client saw it."""

    index: int
    connector: str
    logical_id: str
    outcome: str = "pending"  # acknowledged | refused | unacknowledged
    status: int | None = None
    exchange_id: str | None = None
    indeterminate: int = 0  # submission attempts whose outcome the client could not know
    replayed: bool = False  # the answer was the stored one of an earlier attempt the client never heard back from
    tries: int = 0
    expect_refusal: bool = False  # sent without a basis: must be refused
    detail: dict[str, Any] = field(default_factory=dict)  # what the request names (dossier, BSN, ...)
    answer: dict[str, Any] = field(default_factory=dict)  # what the gateway said it sent (iWmo ids)


class World:
    """Simulators, a prepared store and gateway processes for one run; torn down by ``stack``."""

    def __init__(self, workdir: Path, database_url: str, processes: int, extra_env: dict[str, str],
                 stack: ExitStack, with_wmo: bool = True, webhook_partners: dict[str, dict[str, float]] | None = None,
                 outage_partner: str | None = "wijkteam-uitval", with_plugins: bool = False) -> None:
        from gateway.core import audit
        from gateway.core import partners as partner_registry
        from gateway.core.auth import create_token
        from gateway.core.runtime import Gateway
        from gateway.core.store import upgrade
        from tests.conftest import grant_consent, settings_from_env, test_env

        self.workdir = workdir
        self.sinks: dict[str, ProcessServer] = {}
        self.outages: dict[str, Outage] = {}
        partners = WEBHOOK_PARTNERS if webhook_partners is None else webhook_partners
        for name in partners:
            self.sinks[name] = stack.enter_context(sink_process(workdir / f"sink-{name}.log"))
        endpoints = {name: sink.url for name, sink in self.sinks.items()}
        if outage_partner in self.sinks:
            outage = stack.enter_context(Outage(self.sinks[outage_partner].port))
            self.outages[outage_partner] = outage
            endpoints[outage_partner] = outage.url
        self.care4: ProcessServer | None = None
        # The plugins' partner simulators (Veilig Thuis, police and municipality contacts, the
        # municipality's iWmo inbox), each its own process, by name.
        self.simulators: dict[str, ProcessServer] = {}
        if with_plugins:
            for name, module in (("veiligthuis", "schakel_veiligthuis"), ("police", "schakel_police"),
                                 ("municipality", "schakel_wmo")):
                port = free_port()
                self.simulators[name] = stack.enter_context(ProcessServer(
                    env={}, port=port, ready_path="/_received", log=workdir / f"{name}.log",
                    command=[sys.executable, "-m", "uvicorn", "--factory", f"{module}.simulator:create_app",
                             "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]))
        if with_wmo or with_plugins:
            care4_port = free_port()
            self.care4 = stack.enter_context(ProcessServer(
                env={}, port=care4_port, ready_path="/docs", log=workdir / "care4.log",
                command=[sys.executable, "-m", "uvicorn", "--factory", "schakel_care4.simulator:create_app",
                         "--host", "127.0.0.1", "--port", str(care4_port), "--no-access-log", "--log-level", "warning"]))
        plugins = "care4,wmo,veiligthuis,police" if with_plugins else "care4,wmo" if with_wmo else ""
        self.env = test_env(database_url, workdir, GATEWAY_ENABLED_PLUGINS=plugins, GATEWAY_LOG_LEVEL="WARNING",
                            **extra_env)
        settings = settings_from_env(self.env)
        upgrade(settings.sqlalchemy_url())
        self.gw = Gateway(settings)
        stack.callback(self.gw.store.dispose)
        system = audit.Actor.system("chaos")
        with self.gw.store.transaction() as session:
            webhook = self.gw.registry.connectors["webhook"].manifest
            for name, url in endpoints.items():
                partner_registry.create(session, partner_registry.PartnerIn(
                    id=name, connector_type="webhook", name=f"{name} (fictief)", endpoint=url + "/inbox"), webhook,
                    self.gw.box, system)
            # A partner that has gone away for good: its port is held but never listened on, so
            # connections are refused and no server started later can take it.
            partner_registry.create(session, partner_registry.PartnerIn(
                id=GONE_PARTNER, connector_type="webhook", name="Opgeheven wijkteam (fictief)",
                endpoint=f"http://127.0.0.1:{self._closed_port(stack)}/inbox"), webhook, self.gw.box, system)
            _, self.worker_token = create_token(session, "chaos-hulpverlener", "hulpverlener")
            if self.care4 is not None:
                from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET

                partner_registry.create(session, partner_registry.PartnerIn(
                    id="care4-ecd", connector_type="care4", name="ECD (simulator)", endpoint=self.care4.url,
                    config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
                    self.gw.registry.connectors["care4"].manifest, self.gw.box, system)
                # Our iWmo messages reach the municipality simulator; without it nothing is sent there.
                inbox = (self.simulators["municipality"].url if "municipality" in self.simulators
                         else f"http://127.0.0.1:{self._closed_port(stack)}")
                partner_registry.create(session, partner_registry.PartnerIn(
                    id=MUNICIPALITY, connector_type="wmo", name="Gemeente Diemen (fictief)",
                    endpoint=inbox, identifiers={"gemeentecode": "0384"},
                    routing={"gemeentecode": ["0384"]}, config={"path": "/berichten", "aanbieder_agb": AGB}),
                    self.gw.registry.connectors["wmo"].manifest, self.gw.box, system)
                _, self.municipality_token = create_token(session, "chaos-gemeente", "partner", partner_id=MUNICIPALITY)
            if with_plugins:
                from schakel_care4.fixtures import REGIONS

                vt, police = self.simulators["veiligthuis"].url, self.simulators["police"].url
                for region, codes in REGIONS.items():
                    partner_registry.create(session, partner_registry.PartnerIn(
                        id=f"vt-{region}", connector_type="veiligthuis", name=f"Veilig Thuis {region} (simulator)",
                        endpoint=f"{vt}/{region}/meldingen", identifiers={"region": region},
                        routing={"gemeentecode": codes}), self.gw.registry.connectors["veiligthuis"].manifest,
                        self.gw.box, system)
                contacts = {HANDOVER_PARTNER: {"soort": "gemeente", "gemeentecode": "0363"},
                            REQUESTER: {"soort": "politie", "werkgebied": ",".join(REGIONS["utrecht"])}}
                for partner_id, identifiers in contacts.items():
                    partner_registry.create(session, partner_registry.PartnerIn(
                        id=partner_id, connector_type="police", name=f"{partner_id} (fictief)",
                        endpoint=f"{police}/{partner_id}", identifiers=identifiers),
                        self.gw.registry.connectors["police"].manifest, self.gw.box, system)
                _, self.requester_token = create_token(session, "chaos-politie", "partner", partner_id=REQUESTER)
        grant_consent(self.gw, CONSENTING_CLIENT, partner_kind="webhook")
        if with_plugins:
            # Every fictional client but one consented to a warm handover to the municipality and to
            # answers for the police unit; the melding goes on meldrecht, so needs no consent.
            from schakel_care4 import fixtures

            for client in fixtures.build()["clients"].values():
                if client["id"] == _dossiers()[NO_BASIS_DOSSIER]["client_id"]:
                    continue
                subject = client["bsn"] or f"care4:{client['id']}"
                grant_consent(self.gw, subject, partner_id=HANDOVER_PARTNER, purpose="warme_overdracht")
                if client["bsn"]:
                    grant_consent(self.gw, client["bsn"], partner_id=REQUESTER, purpose="informatieverstrekking")
        self.gateways = [ProcessServer(self.env, log=workdir / f"gateway-{i}.log") for i in range(processes)]
        stack.callback(self.stop_gateways)
        self.peak_rss_kib = 0

    @staticmethod
    def _closed_port(stack: ExitStack) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        stack.callback(sock.close)
        return sock.getsockname()[1]

    def start_gateways(self) -> None:
        for gateway in self.gateways:  # one after another, each ready before the next starts
            gateway.start(timeout=120)

    def note_rss(self, gateway: ProcessServer) -> None:
        if gateway.process is not None:
            self.peak_rss_kib = max(self.peak_rss_kib, rss_kib(gateway.process.pid).get("VmHWM", 0))

    def stop_gateways(self) -> None:
        for gateway in self.gateways:
            if gateway.process is not None and gateway.process.poll() is None:
                self.note_rss(gateway)
                gateway.stop()

    def control_sinks(self, base: dict[str, float], delay: float) -> None:
        for name, sink in self.sinks.items():
            extra = WEBHOOK_PARTNERS.get(name, {})
            mix = {**base, **extra}
            data: dict[str, Any] = {"random": mix, "delay": delay}
            if "trickle" in mix:
                # The sink has one delay for both slow answers. At 0.06 s a byte, a trickled answer
                # (~80 bytes) takes about 5 s, past the attempt deadline: this partner's late answers
                # are trickled ones.
                mix["trickle"] += mix.pop("late", 0.0)
                data = {"random": mix, "delay": 0.06}
            httpx.post(f"{sink.url}/_control", json=data, timeout=10).raise_for_status()

    def control_simulators(self, mix: dict[str, float], delay: float) -> None:
        """The plugins' partner simulators draw a fault by chance for every message they get."""
        for simulator in self.simulators.values():
            httpx.post(f"{simulator.url}/_control", json={"random": mix, "delay": delay},
                       timeout=10).raise_for_status()

    def seed_allocations(self, plan: list[Sent]) -> None:
        """The allocations the run's WMO305/307 report on, written into the ECD before it starts:
        one per message, ended (so no change request has to name them), under municipality 0384."""
        assert self.care4 is not None
        from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET

        with httpx.Client(base_url=self.care4.url, timeout=60) as client:
            token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                      "client_secret": CLIENT_SECRET}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for item in plan:
                if item.connector.split(":")[0] in ("wmo305", "wmo307"):
                    number = item.detail["allocation"]
                    client.put(f"/clients/{item.detail['client_id']}/arrangements/{number}", headers=headers, json={
                        "allocation_number": number, "product_category": "01", "product_code": "01A01",
                        "start": "2023-01-01", "end": "2026-12-31", "municipality": "0384",
                        "status": "beeindigd"}).raise_for_status()

    def heal_sinks(self) -> None:
        for sink in self.sinks.values():
            httpx.post(f"{sink.url}/_control", json={"mode": "ok"}, timeout=10).raise_for_status()
        for simulator in self.simulators.values():
            httpx.post(f"{simulator.url}/_control", json={"mode": "ok", "random": {}}, timeout=10).raise_for_status()
        if self.care4 is not None:
            httpx.post(f"{self.care4.url}/_control", json={}, timeout=10).raise_for_status()
        for outage in self.outages.values():
            if outage.server is None:
                outage.up()

    # --- what the store says ---------------------------------------------------------------------

    def states(self) -> dict[str, int]:
        from gateway.core.models import Exchange

        with self.gw.store.reading() as session:
            return dict(session.execute(select(Exchange.state, func.count()).group_by(Exchange.state)).all())

    def exchanges(self) -> dict[str, dict[str, Any]]:
        """Every exchange with its state, attempts, why it ended, and whether a kill interrupted it."""
        from gateway.core.models import Exchange, Transition

        found: dict[str, dict[str, Any]] = {}
        with self.gw.store.reading() as session:
            for row in session.execute(select(Exchange.id, Exchange.route_id, Exchange.partner_id, Exchange.state,
                                              Exchange.attempts, Exchange.last_error, Exchange.created_at,
                                              Exchange.delivered_at)):
                found[row.id] = {"route": row.route_id, "partner": row.partner_id, "state": row.state,
                                 "attempts": row.attempts, "last_error": row.last_error, "reason": None,
                                 "delivered_reason": None, "interrupted": 0, "created_at": row.created_at,
                                 "delivered_at": row.delivered_at,
                                 "failures": collections.Counter()}
            for row in session.execute(select(Transition.exchange_id, Transition.to_state, Transition.reason)
                                       .where(Transition.to_state.in_(("failed", "dead", "refused", "delivered")))
                                       .order_by(Transition.id)):
                item = found.get(row.exchange_id)
                if item is None:
                    continue
                if row.to_state in ("dead", "refused"):
                    item["reason"] = row.reason
                if row.to_state == "delivered":
                    item["delivered_reason"] = row.reason
                if row.to_state in ("failed", "dead") and row.reason:
                    if row.reason.startswith("attempt interrupted"):
                        item["interrupted"] += 1
                    item["failures"][_reason_kind(row.reason)] += 1
        return found

    def wmo_exchange_ids(self) -> dict[str, str]:
        """The exchange each WMO301 became, by the message's identification (its inbound key)."""
        from gateway.core.models import InboundRequest

        with self.gw.store.reading() as session:
            rows = session.execute(select(InboundRequest.key, InboundRequest.exchange_id)
                                   .where(InboundRequest.key.like("WMO301:%")))
            return {key.split(":")[2]: exchange_id for key, exchange_id in rows if exchange_id}

    def as_of(self, exchange_ids: list[str]) -> dict[str, str]:
        """The moment each WMO301 is current as of (the gateway stamps it; newer wins in the ECD)."""
        from gateway.core.models import Exchange

        found = {}
        with self.gw.store.reading() as session:
            for exchange_id, payload in session.execute(select(Exchange.id, Exchange.payload_encrypted)
                                                        .where(Exchange.id.in_(exchange_ids))):
                if payload:
                    found[exchange_id] = str(json.loads(self.gw.box.decrypt(payload)).get("as_of") or "")
        return found

    def audit_verify(self) -> dict[str, Any]:
        """``gateway audit verify``, as an operator runs it, against this run's store."""
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify"], cwd=ROOT,
                                env={**os.environ, **self.env}, capture_output=True, text=True, timeout=900)
        out = " ".join((result.stdout + result.stderr).split())
        entries = re.search(r"intact: (\d+) entries", out)
        return {"ok": result.returncode == 0 and entries is not None, "exit_code": result.returncode,
                "entries": int(entries.group(1)) if entries else None, "output": out[-300:],
                "seconds": round(time.monotonic() - started, 1)}

    # --- what the partners say -------------------------------------------------------------------

    def webhook_effects(self) -> tuple[dict[str, collections.Counter[str]], dict[str, dict[str, int]]]:
        """Effects per partner, counted by the notice's own reference (not by transport key)."""
        effects = {name: effects_by_reference(sink.url) for name, sink in self.sinks.items()}
        stats = {name: httpx.get(f"{sink.url}/_stats", timeout=10).json() for name, sink in self.sinks.items()}
        return effects, stats

    def care4_effects(self) -> tuple[dict[str, str], dict[str, Any]]:
        """Arrangements in the ECD: client:allocation number -> status."""
        assert self.care4 is not None
        from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET

        with httpx.Client(base_url=self.care4.url, timeout=60) as client:
            token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                      "client_secret": CLIENT_SECRET}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            effects: dict[str, str] = {}
            for client_id in sorted(set(_care4_clients().values())):
                for arrangement in client.get(f"/clients/{client_id}/arrangements", headers=headers).json():
                    if int(arrangement["allocation_number"]) >= SEEDED_ALLOCATIONS:
                        continue  # written by the run itself, for its WMO305/307 (seed_allocations)
                    effects[f"{client_id}:{arrangement['allocation_number']}"] = arrangement["status"]
            stats = client.get("/_stats").json()
        return effects, stats

    def plugin_effects(self) -> tuple[dict[str, collections.Counter[str]], dict[str, dict[str, Any]],
                                      dict[str, dict[str, list[str]]]]:
        """What the plugins' partners applied, per connector and counted by each message's logical
        id (see the module's table), with each simulator's own counts, and per connector the
        transport-independent ids each effect carried (a melding's kenmerk, an iWmo message's
        BerichtIdentificatie), to hold against what the gateway said it sent."""
        effects: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        carried: dict[str, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
        stats: dict[str, dict[str, Any]] = {}
        if "veiligthuis" in self.simulators:
            found = httpx.get(f"{self.simulators['veiligthuis'].url}/_received", timeout=120).json()
            for item in found["items"]:
                connector = f"veiligthuis:vt-{item['region']}"
                reference = _melding_reference(item["xml"])
                effects[connector][reference] += 1
                carried[connector][reference].append(item["kenmerk"])
            stats["veiligthuis"] = {"unique": len(found["items"]), "duplicates": found["duplicates"],
                                    "requests": found["requests"]}
        if "police" in self.simulators:
            found = httpx.get(f"{self.simulators['police'].url}/_received", timeout=120).json()
            for item in found["notifications"]:
                handover_id = item["notification"]["resourceUrl"].rstrip("/").rsplit("/", 1)[-1]
                effects[f"overdracht:{item['partner']}"][handover_id] += 1
            for item in found["answers"]:
                effects[f"informatieverzoek:{item['partner']}"][item["answer"]["verzoek_kenmerk"]] += 1
            stats["police"] = {"unique": len(found["notifications"]) + len(found["answers"]),
                               "duplicates": found["duplicates"]}
        if "municipality" in self.simulators:
            found = httpx.get(f"{self.simulators['municipality'].url}/_received", timeout=120).json()
            for item in found["items"]:
                connector = f"{item['bericht'].lower()}:{MUNICIPALITY}"
                for logical_id in _iwmo_logical_ids(item["bericht"], item["xml"]):
                    effects[connector][logical_id] += 1
                    carried[connector][logical_id].append(item["identificatie"])
            # Every repeat of an identification it already had was answered 9056, not applied.
            stats["municipality"] = {"unique": len(found["items"]), "duplicates": found["duplicates"]}
        return dict(effects), stats, {k: dict(v) for k, v in carried.items()}


_REFERENCE = re.compile(r"chaos-\d+-\d{6}")


def _melding_reference(xml: str) -> str:
    """The run's reference the worker wrote in a melding's remarks (``<Opmerkingen>``)."""
    from lxml import etree

    from schakel_veiligthuis.melding import NAMESPACE

    remarks = etree.fromstring(xml.encode()).findtext(f"{{{NAMESPACE}}}Opmerkingen") or ""
    found = _REFERENCE.search(remarks)
    return found.group(0) if found else f"(no reference: {remarks[:40]!r})"


def _iwmo_logical_ids(bericht: str, xml: str) -> set[str]:
    """What an outbound iWmo message is about: the allocations a 305/307 reports on, the
    ReferentieAanbieder of a 315 (its products' ``<base>-<n>``, as one) or a 317."""
    from lxml import etree

    from schakel_wmo import iwmo

    root = etree.fromstring(xml.encode())
    ns = {"m": iwmo.namespace(bericht)}
    if bericht in ("WMO305", "WMO307"):
        kind = "Start" if bericht == "WMO305" else "Stop"
        return {(e.text or "").strip() for e in root.iterfind(f".//m:{kind}Product/m:ToewijzingNummer", ns)}
    if bericht == "WMO315":
        return {(e.text or "").strip().rsplit("-", 1)[0]
                for e in root.iterfind(".//m:AangevraagdProduct/m:ReferentieAanbieder", ns)}
    return {(e.text or "").strip() for e in root.iterfind(".//m:Verzoek/m:ReferentieAanbieder", ns)}


def _dossiers() -> dict[str, dict[str, Any]]:
    """The fictional dossiers of the Care4 simulator, with the VT region and BSN of each."""
    from schakel_care4 import fixtures

    data = fixtures.build()
    found = {}
    for dossier_id, dossier in data["dossiers"].items():
        client = data["clients"][dossier["client_id"]]
        household = data["households"][dossier["household_id"]]
        code = household["gemeentecode"] if household["children"] else client["address"]["gemeentecode"]
        region = next(r for r, codes in fixtures.REGIONS.items() if code in codes)
        found[dossier_id] = {"client_id": client["id"], "bsn": client["bsn"], "region": region}
    return found


def effects_by_reference(sink_url: str) -> collections.Counter[str]:
    """What a webhook partner applied, counted by each notice's own ``reference``. The sink keeps one
    record per ``Idempotency-Key``; a gateway that sent one message under two keys shows up here as
    one reference applied twice."""
    items = httpx.get(f"{sink_url}/_received", timeout=60).json()["items"]
    return collections.Counter(json.loads(item["body"])["reference"] for item in items.values())


def _reason_kind(reason: str) -> str:
    """A failure reason without its numbers, so reasons can be counted by kind."""
    if reason.startswith("gave up after"):
        reason, warned, _ = reason.partition("; an earlier attempt's")
        kind = "gave up: " + _reason_kind(reason.split(": ", 1)[1]) if ": " in reason else "gave up"
        return kind + (" (an earlier outcome unknown)" if warned else "")
    reason = re.sub(r"after \d+ failed attempts", "after N failed attempts", reason)
    return re.sub(r"\d+(\.\d+)? s\b", "N s", reason)


# --- the client side: submitting, with retries, through kills ----------------------------------------


class Submitter:
    """Sends every message until it gets a definite answer, spreading over the gateway processes
    and riding through their deaths. A 202 (or an accepting WMO302) is an acknowledgement."""

    def __init__(self, world: World, deadline: float) -> None:
        self.world = world
        self.deadline = deadline
        self.acked = 0
        self._lock = threading.Lock()
        self.client = httpx.Client(timeout=15, limits=httpx.Limits(max_connections=64))
        self._wmo_template = WMO301_EXAMPLE.read_bytes() if WMO301_EXAMPLE.exists() else None
        self._bsns = sorted(_care4_clients())

    def close(self) -> None:
        self.client.close()

    def request(self, sent: Sent) -> tuple[str, dict[str, str], bytes | dict[str, Any]]:
        kind, partner = sent.connector.split(":", 1)
        if kind == "webhook":
            client_id = NO_BASIS_CLIENT if partner == "no-basis" else CONSENTING_CLIENT
            target = "wijkteam-storing" if partner == "no-basis" else partner
            body = {"reference": sent.logical_id, "category": "signaal", "text": "Fictieve melding (chaos run)",
                    "client_id": client_id, "partner": target}
            return (f"/api/v1/routes/{WEBHOOK_ROUTE}/messages",
                    {"Authorization": f"Bearer {self.world.worker_token}", "Idempotency-Key": f"k-{sent.logical_id}"},
                    body)
        if kind in PLUGIN_KINDS:
            return self._plugin_request(kind, sent)
        assert self._wmo_template is not None
        bsn, allocation = sent.logical_id.split(":")[2:]
        xml = _wmo301(self._wmo_template, f"{sent.index + 1:012d}", bsn, allocation)
        return ("/partners/wmo/berichten",
                {"Authorization": f"Bearer {self.world.municipality_token}", "Content-Type": "application/xml"}, xml)

    def _plugin_request(self, kind: str, sent: Sent) -> tuple[str, dict[str, str], dict[str, Any]]:
        """A worker's request to one of the plugins' endpoints (or, for an information request, the
        police unit's), built from fictional dossiers; the same body and key on every try."""
        detail, reference = sent.detail, sent.detail["reference"]
        worker = {"Authorization": f"Bearer {self.world.worker_token}", "Idempotency-Key": f"k-{reference}"}
        remark = f"Chaos-run {reference} (fictief)."
        if kind == "veiligthuis":
            answers: dict[str, Any] = {
                "meldcode_steps": [1, 2, 3, 4, 5],
                "weighing": {"vermoeden": True, "onveiligheid": True, "hulp_mogelijk": False, "hulp_aanvaard": False,
                             "hulp_leidt_tot_veiligheid": False, "toelichting": "Acute onveiligheid (fictief)."},
                "decision": "melden bij Veilig Thuis", "remarks": remark}
            if sent.expect_refusal:  # her consent is the basis named, and she never gave it
                answers |= {"legal_basis": "toestemming", "client_informed": True}
            else:
                answers |= {"legal_basis": "meldrecht", "client_informed": False, "exception": "gevaar_kind_of_gezin"}
            return "/api/v1/veiligthuis/meldingen", worker, {"dossier_id": detail["dossier_id"], "answers": answers}
        if kind == "overdracht":
            return "/api/v1/police/overdrachten", worker, {"dossier_id": detail["dossier_id"],
                                                           "partner_id": HANDOVER_PARTNER, "toelichting": remark}
        if kind == "informatieverzoek":
            return ("/partners/police/informatieverzoeken", {"Authorization": f"Bearer {self.world.requester_token}"},
                    {"versie": "1.0", "kenmerk": reference, "bsn": detail["bsn"], "grondslag": "toestemming",
                     "doel": "Afstemming van de hulp na een incident (fictief, chaos run).",
                     "gevraagd": ["hulpverlening", "contactpersoon"]})
        path = WMO_OUTBOUND[kind][0]
        dossier_id = detail["dossier_id"]
        if kind in ("wmo305", "wmo307"):
            body: dict[str, Any] = {"dossier_id": dossier_id, "allocation_numbers": [detail["allocation"]],
                                    "begindatum": "2023-02-01"}
            if kind == "wmo307":
                body |= {"einddatum": "2023-12-31", "reden": "19"}
            return path, worker, body
        product = {"product_category": "01", "product_code": "01A01", "start": "2024-01-01", "end": "2024-12-31",
                   "volume": 10, "unit": "01", "frequency": "4"}
        if kind == "wmo315":
            return path, worker, {"dossier_id": dossier_id, "gemeentecode": "0384", "products": [product],
                                  "verwijzer": {"type": "01", "naam": "Wmo-consulent"}, "commentaar": remark}
        return path, worker, {"dossier_id": dossier_id, "gemeentecode": "0384", "reden": "1", "new": [product]}

    def submit(self, sent: Sent) -> Sent:
        path, headers, body = self.request(sent)
        urls = [g.url for g in self.world.gateways]
        while time.monotonic() < self.deadline:
            url = urls[(sent.index + sent.tries) % len(urls)]
            sent.tries += 1
            try:
                if isinstance(body, dict):
                    response = self.client.post(url + path, json=body, headers=headers)
                else:
                    response = self.client.post(url + path, content=body, headers=headers)
            except httpx.HTTPError:
                # The request may or may not have been committed: only its retry can tell.
                sent.indeterminate += 1
                time.sleep(0.2)
                continue
            sent.status = response.status_code
            sent.replayed = response.headers.get("Idempotent-Replayed") == "true"
            if sent.connector.startswith("wmo301") and response.status_code == 200:
                codes = re.findall(rb"<[^>]*RetourCode>(\d{4})<", response.content)
                sent.outcome = "acknowledged" if codes and set(codes) == {b"0200"} else "refused"
            elif response.status_code == 202:
                sent.outcome = "acknowledged"
                answer = response.json()
                sent.exchange_id = answer["exchange_id"]
                sent.answer = {k: answer[k] for k in ("identificatie", "referentie_aanbieder") if answer.get(k)}
            elif response.status_code == 403 and response.json().get("type") == "/problems/refused":
                sent.outcome = "refused"
                sent.exchange_id = response.json().get("exchange_id")
            elif response.status_code in (409, 429) or response.status_code >= 500:
                time.sleep(0.2)  # in progress elsewhere, or the gateway is starting: ask again
                continue
            else:
                sent.outcome = "refused"
            if sent.outcome == "acknowledged":
                with self._lock:
                    self.acked += 1
            return sent
        sent.outcome = "unacknowledged"
        return sent


# --- the checker ---------------------------------------------------------------------------------


def _queue_counts(items: list[Sent], seen: collections.Counter[str], exchanges: dict[str, dict[str, Any]],
                  flag: Any, counts: collections.Counter[str]) -> None:
    """Queue semantics: every acknowledged message takes effect exactly once."""
    for item in items:
        times = seen.get(item.logical_id, 0)
        exchange = exchanges.get(item.exchange_id or "")
        if item.outcome == "acknowledged":
            if times > 1:
                flag("duplicated", item)
            if times == 0:
                if exchange is not None and exchange["state"] == "dead" and exchange["reason"]:
                    counts["dead_with_reason"] += 1
                else:
                    flag("lost", item)
            elif exchange is not None:
                if exchange["state"] == "dead" and OUTCOME_UNKNOWN in (exchange["reason"] or ""):
                    # Given up, saying that an attempt's outcome was never known: the partner may have
                    # it, and a replay with the same key would not apply it twice. Honest, so counted apart.
                    counts["dead_warned_applied"] += 1
                elif exchange["state"] == "dead":
                    flag("dead_but_applied", item)  # the dead letter claims what the partner contradicts
                elif exchange["state"] in ("delivered", "acknowledged"):
                    counts["delivered"] += 1
                    if times == 1 and (exchange["attempts"] > 1 or exchange["interrupted"]):
                        counts["recovered"] += 1
                    if exchange["interrupted"]:
                        counts["survived_a_kill"] += 1
        elif item.outcome == "refused" and times:
            flag("unexpected", item)  # a refusal is definite: it must never take effect
        elif item.outcome == "unacknowledged" and times:
            counts["jepsen_recovered"] += 1  # indeterminate, then seen: allowed


def _synced_counts(items: list[Sent], state: dict[str, str], as_of: dict[str, str],
                   exchanges: dict[str, dict[str, Any]], flag: Any, counts: collections.Counter[str]) -> None:
    """State semantics (a WMO301 carries all of a client's current allocations; the newest wins):
    the newest acknowledged message per client is in force, every older one was either written and
    then ended, or superseded with nothing written — never lost without the gateway saying why,
    and never left in force next to a newer one."""
    newest: dict[str, tuple[str, str]] = {}
    for item in items:
        if item.outcome == "acknowledged" and item.exchange_id in as_of:
            client = item.logical_id.split(":")[0]
            key = (as_of[item.exchange_id], item.logical_id)
            if client not in newest or key > newest[client]:
                newest[client] = key
    in_force = {logical_id for _, logical_id in newest.values()}
    for item in items:
        if item.outcome != "acknowledged":
            if item.outcome == "refused" and item.logical_id in state:
                flag("unexpected", item)
            continue
        exchange = exchanges.get(item.exchange_id or "")
        status = state.get(item.logical_id)
        if item.exchange_id not in as_of:
            flag("lost", item)  # no stored payload to order it by: nothing can vouch for it
        elif status is None:
            if item.logical_id in in_force:
                flag("lost", item)  # the newest message must be in force
            elif exchange is not None and exchange["state"] == "dead" and exchange["reason"]:
                counts["dead_with_reason"] += 1
            elif exchange is not None and (exchange["delivered_reason"] or "").startswith("superseded"):
                counts["superseded"] += 1
            else:
                flag("lost", item)
        else:
            counts["delivered"] += 1
            if exchange is not None and (exchange["attempts"] > 1 or exchange["interrupted"]):
                counts["recovered"] += 1
            if exchange is not None and exchange["interrupted"]:
                counts["survived_a_kill"] += 1
            if item.logical_id in in_force and status != "actief":
                flag("newest_not_in_force", item)
            if item.logical_id not in in_force and status == "actief":
                flag("older_left_in_force", item)


def check(sent: list[Sent], effects: dict[str, collections.Counter[str]], exchanges: dict[str, dict[str, Any]],
          synced: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Judge a run like Jepsen's queue checker, per connector, from what the client was told
    (``sent``), what the partners applied (``effects``: connector -> logical id -> times) and what
    the store says (``exchanges``). Connectors in ``synced`` (connector -> ``{"state": logical id ->
    status, "as_of": exchange id -> order}``) hold state rather than queue messages, and are judged
    by :func:`_synced_counts`."""
    synced = synced or {}
    result: dict[str, Any] = {}
    by_connector: dict[str, list[Sent]] = collections.defaultdict(list)
    for item in sent:
        by_connector[item.connector].append(item)
    claimed: set[str] = set()
    for connector in sorted(set(by_connector) | set(effects) | set(synced)):
        items = by_connector.get(connector, [])
        counts: collections.Counter[str] = collections.Counter()
        failures: collections.Counter[str] = collections.Counter()
        examples: dict[str, list[str]] = collections.defaultdict(list)

        def flag(name: str, item: Sent) -> None:
            counts[name] += 1
            if len(examples[name]) < 5:
                examples[name].append(item.logical_id)

        for item in items:
            counts["sent"] += 1
            counts[item.outcome] += 1
            exchange = exchanges.get(item.exchange_id or "")
            if exchange is not None:
                claimed.add(item.exchange_id or "")
                failures.update(exchange["failures"])
            if item.indeterminate:
                counts["submissions_interrupted"] += 1
            if item.replayed:
                counts["acknowledged_by_replay"] += 1  # committed by an attempt whose answer was lost
            if item.outcome == "acknowledged":
                if exchange is None:
                    flag("acknowledged_without_exchange", item)
                elif exchange["state"] not in TERMINAL:
                    flag("unfinished", item)
                elif exchange["state"] == "dead" and not exchange["reason"]:
                    flag("dead_without_reason", item)
            if item.outcome == "refused" and exchange is not None and not (
                    exchange["state"] == "refused" and exchange["reason"]):
                flag("refused_without_reason", item)
            if item.expect_refusal and item.outcome != "refused":
                flag("accepted_without_basis", item)
            if not item.expect_refusal and item.outcome == "refused":
                flag("refused_unexpectedly", item)
        if connector in synced:
            state = synced[connector]["state"]
            _synced_counts(items, state, synced[connector]["as_of"], exchanges, flag, counts)
            known: set[str] = {item.logical_id for item in items}
            strays = [logical_id for logical_id in state if logical_id not in known]
        else:
            seen = effects.get(connector, collections.Counter())
            _queue_counts(items, seen, exchanges, flag, counts)
            known = {item.logical_id for item in items}
            strays = [logical_id for logical_id in seen if logical_id not in known]
        for logical_id in strays:
            counts["unexpected"] += 1  # an effect of a message never sent
            if len(examples["unexpected"]) < 5:
                examples["unexpected"].append(logical_id)
        for name in ("lost", "duplicated", "unexpected", "recovered", "unfinished", "dead_with_reason",
                     "dead_but_applied", "dead_warned_applied", "dead_without_reason", "acknowledged_without_exchange"):
            counts.setdefault(name, 0)
        if connector in synced:
            counts.setdefault("newest_not_in_force", 0)
            counts.setdefault("older_left_in_force", 0)
            counts.setdefault("superseded", 0)
        result[connector] = {**dict(sorted(counts.items())), "attempt_failures": dict(failures.most_common()),
                             "examples": dict(examples)}
    stray = [e for i, e in exchanges.items() if i not in claimed]
    totals: collections.Counter[str] = collections.Counter()
    for counts in result.values():
        for name, value in counts.items():
            if isinstance(value, int):
                totals[name] += value
    ended = collections.Counter(e["state"] for e in exchanges.values())
    verdict = {
        "lost": totals["lost"] + totals["acknowledged_without_exchange"],
        "duplicated": totals["duplicated"],
        "unexpected": totals["unexpected"],
        "recovered": totals["recovered"],
        # Over every exchange in the store, not only those the client heard of.
        "unfinished": sum(v for s, v in ended.items() if s not in TERMINAL),
        "dead_without_reason": sum(1 for e in exchanges.values() if e["state"] == "dead" and not e["reason"]),
        "dead_but_applied": totals["dead_but_applied"],
        # Not a failure: dead letters whose reason says the partner may have them, and it had them.
        "dead_warned_applied": totals["dead_warned_applied"],
        # A state partner left with what an older message said, or without the newest one in force.
        "wrong_final_state": totals["newest_not_in_force"] + totals["older_left_in_force"],
        # The basis check: what had none was refused (with a reason), and nothing else was.
        "refusals_wrong": totals["accepted_without_basis"] + totals["refused_unexpectedly"]
                          + totals["refused_without_reason"],
        # Exchanges no submission accounts for: a gateway that made two of one message.
        "stray_exchanges": len(stray),
    }
    verdict["valid"] = all(verdict[name] == 0 for name in (
        "lost", "duplicated", "unexpected", "unfinished", "dead_without_reason", "dead_but_applied",
        "wrong_final_state", "refusals_wrong", "stray_exchanges"))
    return {"verdict": verdict, "states": dict(sorted(ended.items())), "totals": dict(sorted(totals.items())),
            "connectors": result}


# --- the chaos run -----------------------------------------------------------------------------------


@dataclass
class ChaosConfig:
    count: int = 1000
    backend: str = "sqlite"
    processes: int = 1
    kills: int = 2
    seed: int = 7513
    timeout: float = 900.0  # hard deadline for the whole run, in seconds
    outage_seconds: float = 15.0
    outage_at: float = 0.2  # the outage starts when this share of the messages is acknowledged
    retry_scale: float = 0.05
    lease_seconds: float = 4.0
    attempt_deadline: float = 2.0
    late_delay: float = 3.0
    submitters: int = 16
    wmo: bool = True
    plugins: bool = True  # Veilig Thuis, police and municipality contacts, outbound iWmo
    workdir: Path | None = None
    database_url: str | None = None  # PostgreSQL: a fresh, empty database


def _plan(config: ChaosConfig, with_wmo: bool, with_plugins: bool = False) -> list[Sent]:
    rng = random.Random(config.seed)
    mix = {k: v for k, v in MIX.items() if (with_wmo or not k.startswith("wmo301"))
           and (with_plugins or k.split(":")[0] not in PLUGIN_KINDS)}
    names, weights = list(mix), list(mix.values())
    bsns = sorted(_care4_clients()) if with_wmo else []
    dossiers = _dossiers() if with_plugins else {}
    no_basis = dossiers.get(NO_BASIS_DOSSIER, {})
    consenting = [d for d in sorted(dossiers) if d != NO_BASIS_DOSSIER]  # every other client consented
    with_bsn = [d for d in consenting if dossiers[d]["bsn"]]  # iWmo names a client by BSN
    run = f"{config.seed}"
    plan = []
    for i in range(config.count):
        connector = rng.choices(names, weights)[0]
        kind, target = connector.split(":", 1)
        reference = f"chaos-{run}-{i:06d}"
        if kind == "wmo301":
            bsn = bsns[i % len(bsns)]
            plan.append(Sent(i, connector, f"{run}:{i}:{bsn}:{100000 + i}"))
        elif kind not in PLUGIN_KINDS:
            plan.append(Sent(i, connector, reference))
        else:
            # Messages without a basis are judged at the partner they would have reached.
            refuse = target == "no-basis"
            item = Sent(i, connector, reference, expect_refusal=refuse, detail={"reference": reference})
            if kind == "veiligthuis":
                region = no_basis["region"] if refuse else target.removeprefix("vt-")
                in_region = [d for d in sorted(dossiers) if dossiers[d]["region"] == region]
                item.connector = f"veiligthuis:vt-{region}"
                item.detail["dossier_id"] = NO_BASIS_DOSSIER if refuse else in_region[i % len(in_region)]
            elif kind == "overdracht":
                item.connector = f"overdracht:{HANDOVER_PARTNER}"
                item.detail["dossier_id"] = NO_BASIS_DOSSIER if refuse else consenting[i % len(consenting)]
                item.logical_id = f"handover-of-{reference}"  # its own id, once the gateway has made it
            elif kind == "informatieverzoek":
                item.connector = f"informatieverzoek:{REQUESTER}"
                item.detail["bsn"] = no_basis["bsn"] if refuse else dossiers[with_bsn[i % len(with_bsn)]]["bsn"]
            else:  # outbound iWmo
                dossier_id = with_bsn[i % len(with_bsn)]
                item.detail |= {"dossier_id": dossier_id, "client_id": dossiers[dossier_id]["client_id"]}
                if kind in ("wmo305", "wmo307"):
                    item.detail["allocation"] = item.logical_id = str(SEEDED_ALLOCATIONS + i)
                else:
                    item.logical_id = f"request-of-{reference}"  # its ReferentieAanbieder, once chosen
            plan.append(item)
    return plan


def _adopt_gateway_ids(plan: list[Sent]) -> None:
    """Where the gateway chooses a message's identity, the run learns it from the answer: a
    handover is its exchange (its address ends in it), a WMO315/317 its ReferentieAanbieder."""
    for item in plan:
        kind = item.connector.split(":")[0]
        if kind == "overdracht" and item.exchange_id:
            item.logical_id = item.exchange_id
        elif kind in ("wmo315", "wmo317") and item.answer.get("referentie_aanbieder"):
            item.logical_id = item.answer["referentie_aanbieder"]


def _identity_checks(plan: list[Sent], carried: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """What the partner received must be the message the gateway said it made: a melding's
    ``<Kenmerk>`` its exchange, an iWmo message's BerichtIdentificatie the one the worker was told.
    (A gateway that rebuilt a message on a retry would keep the effect count right and fail here.)"""
    found: dict[str, Any] = {"kenmerk_not_its_exchange": 0, "identificatie_not_as_told": 0, "examples": []}
    for item in plan:
        if item.outcome != "acknowledged":
            continue
        kind = item.connector.split(":")[0]
        ids = carried.get(item.connector, {}).get(item.logical_id, [])
        if kind == "veiligthuis":
            wrong = [i for i in ids if i != item.exchange_id]
            name = "kenmerk_not_its_exchange"
        elif kind in WMO_OUTBOUND and item.answer.get("identificatie"):
            wrong = [i for i in ids if i != item.answer["identificatie"]]
            name = "identificatie_not_as_told"
        else:
            continue
        if wrong:
            found[name] += 1
            if len(found["examples"]) < 5:
                found["examples"].append({"connector": item.connector, "logical_id": item.logical_id,
                                          "exchange_id": item.exchange_id, "received": wrong})
    return found


def _care4_faults(url: str, rng: random.Random, stop: threading.Event, log_: list[dict[str, Any]]) -> None:
    """Now and then the ECD answers 500 a few times, or stalls past the attempt deadline."""
    while not stop.wait(1.0):
        roll = rng.random()
        try:
            if roll < 0.25:
                httpx.post(f"{url}/_control", json={"fail_status": 500, "count": 3}, timeout=5)
                log_.append({"fault": "500x3"})
            elif roll < 0.35:
                httpx.post(f"{url}/_control", json={"delay": 2.5}, timeout=5)
                stop.wait(0.5)
                httpx.post(f"{url}/_control", json={}, timeout=5)
                log_.append({"fault": "stall 0.5 s"})
        except httpx.HTTPError:
            pass


def chaos(config: ChaosConfig) -> dict[str, Any]:
    """One chaos run; returns its report (``report["check"]["verdict"]["valid"]`` says if it passed)."""
    started = time.monotonic()
    hard_deadline = started + config.timeout
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="schakel-chaos-"))
    with_wmo = config.wmo and WMO301_EXAMPLE.exists()
    if config.backend == "sqlite":
        database_url = config.database_url or f"sqlite:///{workdir / 'gateway.db'}"
    else:
        assert config.database_url, "PostgreSQL runs need a fresh database URL"
        database_url = config.database_url
    extra_env = {"GATEWAY_RETRY_SCALE": str(config.retry_scale), "GATEWAY_LEASE_SECONDS": str(config.lease_seconds),
                 "GATEWAY_ATTEMPT_DEADLINE_SECONDS": str(config.attempt_deadline)}
    report: dict[str, Any] = {
        "scenario": "chaos", "count": config.count, "backend": config.backend, "processes": config.processes,
        "kills_planned": config.kills, "seed": config.seed,
        "settings": {"retry_scale": config.retry_scale, "lease_seconds": config.lease_seconds,
                     "attempt_deadline_seconds": config.attempt_deadline, "late_answer_after_s": config.late_delay,
                     "outage_seconds": config.outage_seconds,
                     "retry_policy": "each route's own: webhook notices and handovers standard (12 attempts), "
                                     "meldingen and answers to information requests urgent (40), iWmo and ECD "
                                     "writes patient (60)"},
        "faults": {"every_webhook_partner": BASE_FAULTS, **{k: v for k, v in WEBHOOK_PARTNERS.items() if v},
                   "wijkteam-uitval": f"connections refused for {config.outage_seconds:g} s",
                   GONE_PARTNER: "connections refused, always",
                   "care4-ecd": "each second: 25 % chance of three 500s, 10 % chance of a 0.5 s stall of 2.5 s answers",
                   **({"veiligthuis, police, municipality simulators": PLUGIN_FAULTS} if config.plugins else {})},
        "connectors_left_out": {
            "veiligthuis feedback": "the regions' receipts and decisions coming back into the dossier (their "
                                    "callbacks are off in the run)",
            "police in": "huisverbod notices and zorgmeldingen becoming referrals in the ECD; the municipality "
                         "fetching an announced handover and confirming its receipt",
            "wmo in": "WMO316/319 answers on our requests, ondersteuningsplannen, batch imports",
        },
        "effects_counted_by": {
            "webhook": "the notice's reference, once per record the sink kept (it keeps one per Idempotency-Key)",
            "wmo301:care4-ecd": "the arrangement (client, allocation number) in the ECD and its status. A 301 "
                                "carries all of a client's current allocations and the newest wins, so this is "
                                "judged as state: the newest acknowledged 301 per client in force, every older one "
                                "ended or superseded (delivered with nothing written, and the gateway saying so). "
                                "The write is a PUT by allocation number, idempotent by design: a repeated write "
                                "cannot show as a second effect, so duplicated is not observable here",
            "veiligthuis": "the run's reference in the melding's remarks (<Opmerkingen>), once per melding the "
                           "region kept (it keeps one per Idempotency-Key); its <Kenmerk> must be its exchange",
            "overdracht": "the handover's id at the end of the notification's resourceUrl, once per notification "
                          "the municipality kept (one per Idempotency-Key)",
            "informatieverzoek": "the request's kenmerk (verzoek_kenmerk in the answer), once per answer the police "
                                 "unit kept (one per Idempotency-Key)",
            "wmo305/307/315/317": "the allocation a 305/307 reports on, the ReferentieAanbieder of a 315/317, once "
                                  "per message the municipality accepted (it refuses an identification it has "
                                  "with 9056); the BerichtIdentificatie must be the one the worker was told",
        },
        "workdir": str(workdir),
    }
    if not with_wmo:
        report["connectors_left_out"]["wmo301 -> care4"] = f"official WMO301 example not found at {WMO301_EXAMPLE}"
    if not config.plugins:
        report["connectors_left_out"]["veiligthuis, police, wmo outbound"] = "left out of this run (plugins=False)"
    plan = _plan(config, with_wmo, config.plugins)
    with ExitStack() as stack:
        world = World(workdir, database_url, config.processes, extra_env, stack, with_wmo=with_wmo,
                      with_plugins=config.plugins)
        world.control_sinks(BASE_FAULTS, config.late_delay)
        if config.plugins:
            world.seed_allocations(plan)
            world.control_simulators(PLUGIN_FAULTS, config.late_delay)
        world.start_gateways()
        log(f"{config.count} exchanges, {config.backend}, {config.processes} process(es), {config.kills} kills; "
            f"workdir {workdir}")
        submitter = Submitter(world, hard_deadline)
        stack.callback(submitter.close)
        stop = threading.Event()
        care4_log: list[dict[str, Any]] = []
        if world.care4 is not None:
            faults = threading.Thread(target=_care4_faults, args=(world.care4.url, random.Random(config.seed), stop,
                                                                  care4_log), daemon=True)
            faults.start()
        kills: list[dict[str, Any]] = []
        restarting = threading.Lock()  # the outage starts while every gateway runs, not during a restart
        outage_log: list[dict[str, Any]] = []

        def killer() -> None:
            for k in range(config.kills):
                threshold = config.count * (k + 1) / (config.kills + 1)
                while submitter.acked < threshold and not stop.is_set() and time.monotonic() < hard_deadline:
                    time.sleep(0.05)
                if stop.is_set() or time.monotonic() >= hard_deadline:
                    return
                gateway = world.gateways[k % len(world.gateways)]
                in_flight = world.states().get("sending", 0)
                world.note_rss(gateway)
                with restarting:
                    at = time.monotonic() - started
                    gateway.kill9()
                    down = time.monotonic()
                    gateway.start(timeout=120)
                kills.append({"at_s": round(at, 1), "process": k % len(world.gateways), "acked_before": submitter.acked,
                              "sending_at_kill": in_flight, "restart_s": round(time.monotonic() - down, 1)})
                log(f"kill {k + 1}: process {k % len(world.gateways)} at {at:.0f} s, {in_flight} sending; "
                    f"back in {time.monotonic() - down:.1f} s")

        def outage() -> None:
            relay = world.outages.get("wijkteam-uitval")
            if relay is None:
                return
            while submitter.acked < config.count * config.outage_at and not stop.is_set():
                time.sleep(0.05)
            if stop.is_set():
                return
            with restarting:
                at = time.monotonic() - started
                relay.down()
            log(f"wijkteam-uitval down at {at:.0f} s for {config.outage_seconds:g} s")
            stop.wait(config.outage_seconds)
            relay.up()
            outage_log.append({"at_s": round(at, 1), "down_s": relay.stretches[-1]["down_s"]})
            log("wijkteam-uitval back")

        helpers = [threading.Thread(target=killer, daemon=True), threading.Thread(target=outage, daemon=True)]
        for thread in helpers:
            thread.start()
        submit_started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=config.submitters) as pool:
            done = 0
            for _ in pool.map(submitter.submit, plan):
                done += 1
                if done % max(1, config.count // 10) == 0:
                    log(f"submitted {done}/{config.count} ({submitter.acked} acknowledged); states {world.states()}")
        submit_seconds = time.monotonic() - submit_started
        for thread in helpers:
            thread.join(timeout=max(1.0, hard_deadline - time.monotonic()))
        # The WMO301's exchange is found by its identification (its answer is a retour, not an id).
        wmo_ids = world.wmo_exchange_ids()
        for item in plan:
            if item.connector.startswith("wmo301") and item.outcome == "acknowledged":
                item.exchange_id = wmo_ids.get(f"{item.index + 1:012d}")
        log(f"all submitted in {submit_seconds:.0f} s; waiting for every exchange to end")
        drain_started = time.monotonic()
        while time.monotonic() < hard_deadline:
            states = world.states()
            if all(state in TERMINAL for state in states):
                break
            time.sleep(1.0)
        drain_seconds = time.monotonic() - drain_started
        stop.set()
        world.heal_sinks()
        world.stop_gateways()
        timed_out = not all(state in TERMINAL for state in world.states())
        exchanges = world.exchanges()
        webhook_effects, sink_stats = world.webhook_effects()
        effects: dict[str, collections.Counter[str]] = {f"webhook:{k}": v for k, v in webhook_effects.items()}
        care4_stats: dict[str, Any] = {}
        synced: dict[str, dict[str, Any]] = {}
        if world.care4 is not None:
            arrangements, care4_stats = world.care4_effects()
            # An arrangement's logical id is client:allocation; the plan's ids carry the BSN.
            clients = _care4_clients()
            for item in plan:
                if item.connector.startswith("wmo301"):
                    _, i, bsn, allocation = item.logical_id.split(":")
                    item.logical_id = f"{clients[bsn]}:{allocation}"
            synced["wmo301:care4-ecd"] = {"state": arrangements, "as_of": world.as_of(
                [item.exchange_id for item in plan if item.connector.startswith("wmo301") and item.exchange_id])}
        # Notices refused for lack of a basis were addressed to wijkteam-storing: an effect there is
        # what would be unexpected, so they are judged against that partner's effects.
        for item in plan:
            if item.connector == "webhook:no-basis":
                item.connector, item.expect_refusal = "webhook:wijkteam-storing", True
        plugin_stats: dict[str, dict[str, Any]] = {}
        identity: dict[str, Any] = {}
        if world.simulators:
            plugin_effects, plugin_stats, carried = world.plugin_effects()
            effects.update(plugin_effects)
            _adopt_gateway_ids(plan)
            identity = _identity_checks(plan, carried)
        audit_result = world.audit_verify()
        result = check(plan, effects, exchanges, synced)
        report.update({
            "timed_out": timed_out,
            "seconds": {"total": round(time.monotonic() - started, 1), "submit": round(submit_seconds, 1),
                        "drain_after_submit": round(drain_seconds, 1)},
            "kills": kills,
            "outages": outage_log,
            "care4_faults_injected": dict(collections.Counter(f["fault"] for f in care4_log)),
            "peak_rss_mib": round(world.peak_rss_kib / 1024, 1),
            "partner_stats": {**{f"webhook:{k}": v for k, v in sink_stats.items()},
                              **({"wmo301:care4-ecd": care4_stats} if care4_stats else {}),
                              **{f"simulator:{k}": v for k, v in plugin_stats.items()}},
            "identity_checks": identity,
            "submissions": {"tries": sum(s.tries for s in plan),
                            "interrupted": sum(s.indeterminate for s in plan)},
            "audit": audit_result,
            "check": result,
        })
        report["valid"] = bool(result["verdict"]["valid"] and audit_result["ok"] and not timed_out
                               and len(kills) == config.kills
                               and not any(v for k, v in identity.items() if not k.endswith("examples")))
        log(f"verdict {json.dumps(result['verdict'])}; audit {'intact' if audit_result['ok'] else 'BROKEN'} "
            f"({audit_result['entries']} entries); {report['seconds']}")
    return report


# --- the backlog drain -------------------------------------------------------------------------------


@dataclass
class DrainConfig:
    backend: str = "sqlite"
    backlog: int = 3600  # an hour of traffic for the partner that is down: one message a second
    hour_seconds: float = 3600.0  # the outage's length, as the gateway's back-off sees it
    other_rate: float = 5.0  # messages a second to the partner that stays up, throughout
    baseline_seconds: float = 20.0
    retry_scale: float = 0.1  # shrinks back-off, and the hour with it: the outage lasts hour_seconds * scale
    policy: str = "patient"  # the retry policy of the backlog's route
    timeout: float = 1800.0
    workdir: Path | None = None
    database_url: str | None = None


def _percentiles(values: list[float], unit: str = "ms") -> dict[str, float | int]:
    """Percentiles of seconds in milliseconds (``unit="ms"``), or of plain counts (``unit=""``)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    factor, suffix = (1000, "_ms") if unit == "ms" else (1, "")

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * factor, 1)

    return {"n": len(values), f"p50{suffix}": at(0.50), f"p95{suffix}": at(0.95), f"p99{suffix}": at(0.99),
            f"max{suffix}": round(ordered[-1] * factor, 1), f"mean{suffix}": round(statistics.fmean(ordered) * factor, 1)}


def give_up_after() -> dict[str, float]:
    """Minutes of continuous failure after which each named retry policy dead-letters a message
    (at retry scale 1, from ``gateway.core.retry.POLICIES`` itself; jitter makes it vary slightly)."""
    from gateway.core.retry import POLICIES

    found = {}
    for name, policy in POLICIES.items():
        elapsed, attempt = 0.0, 1
        while (delay := policy.next_delay(attempt, elapsed)) is not None:
            elapsed += delay
            attempt += 1
        found[name] = round(elapsed / 60, 1)
    return found


def drain(config: DrainConfig) -> dict[str, Any]:
    """A partner down for an hour while its traffic queues up, then back: how the gateway drains it.

    Time is compressed by the retry scale: with scale 0.1 the gateway backs off ten times faster,
    so the hour lasts 360 s and the backlog arrives ten times faster too — the gateway's retry
    work per second is then ten times what a real hour would cause."""
    from gateway.core.models import Exchange, Transition

    started = time.monotonic()
    hard_deadline = started + config.timeout
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="schakel-drain-"))
    database_url = config.database_url or f"sqlite:///{workdir / 'gateway.db'}"
    down_partner, other_partner = "wijkteam-uitval", "wijkteam-storing"
    backlog_route = "webhook.notice-backlog"
    outage_seconds = config.hour_seconds * config.retry_scale
    # The backlog's route: the notice route with its own retry policy, as an administrator configures it.
    routes = workdir / "routes.yaml"
    routes.write_text(json.dumps({"routes": [{
        "id": backlog_route, "message_type": "notice", "target": "webhook", "purpose": "signalering",
        "legal_bases": ["toestemming"], "mapping": "webhook_notice", "retry_policy": config.policy,
        "description": "Notices to a partner that may be down for long (backlog drain)."}]}))
    report: dict[str, Any] = {
        "scenario": "backlog-drain", "backend": config.backend, "processes": 1, "backlog": config.backlog,
        "outage_as_seen_by_back_off_s": config.hour_seconds, "retry_scale": config.retry_scale,
        "backlog_policy": config.policy, "other_rate_per_s": config.other_rate,
        "policies_give_up_after_min_at_scale_1": give_up_after(), "workdir": str(workdir)}
    with ExitStack() as stack:
        world = World(workdir, database_url, 1, {"GATEWAY_RETRY_SCALE": str(config.retry_scale),
                                                 "GATEWAY_ROUTES_FILE": str(routes)}, stack,
                      with_wmo=False, webhook_partners={down_partner: {}, other_partner: {}}, outage_partner=down_partner)
        world.start_gateways()
        gateway = world.gateways[0]
        assert gateway.process is not None
        pid = gateway.process.pid
        client = httpx.Client(base_url=gateway.url, timeout=30,
                              headers={"Authorization": f"Bearer {world.worker_token}"},
                              limits=httpx.Limits(max_connections=16))
        stack.callback(client.close)
        phase = {"name": "baseline"}
        phase_started: dict[str, float] = {"baseline": time.monotonic()}
        other_ids: dict[str, str] = {}  # exchange id -> the phase it was sent in
        stop = threading.Event()
        rss_samples: list[dict[str, Any]] = []

        def enter(name: str) -> None:
            phase["name"] = name
            phase_started[name] = time.monotonic()

        def send(route: str, partner: str, reference: str) -> str:
            body = {"reference": reference, "category": "signaal", "text": "Fictieve melding (drain)",
                    "client_id": CONSENTING_CLIENT, "partner": partner}
            for _ in range(100):
                try:
                    response = client.post(f"/api/v1/routes/{route}/messages", json=body,
                                           headers={"Idempotency-Key": reference})
                    if response.status_code == 202:
                        return response.json()["exchange_id"]
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            raise RuntimeError(f"{reference} was never accepted")

        def paced(route: str, partner: str, prefix: str, rate: float, count: int | None, into: Any) -> None:
            """Messages at a fixed rate (the schedule does not slip when one is slow to be accepted)."""
            n = 0
            next_at = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                while (count is None or n < count) and not stop.is_set() and time.monotonic() < hard_deadline:
                    sent_in = phase["name"]
                    future = pool.submit(send, route, partner, f"{prefix}-{n:06d}")
                    future.add_done_callback(lambda f, s=sent_in: into(f.result(), s))
                    n += 1
                    next_at += 1.0 / rate
                    stop.wait(max(0.0, next_at - time.monotonic()))

        def sample() -> None:
            while not stop.wait(0.5):
                memory = rss_kib(pid)
                if memory:
                    rss_samples.append({"phase": phase["name"], "rss_mib": round(memory["VmRSS"] / 1024, 1)})

        threads = [threading.Thread(target=paced, args=(WEBHOOK_ROUTE, other_partner, "other", config.other_rate,
                                                        None, other_ids.__setitem__), daemon=True),
                   threading.Thread(target=sample, daemon=True)]
        for thread in threads:
            thread.start()
        stop.wait(config.baseline_seconds)
        # The partner goes down for the (compressed) hour; its traffic keeps coming.
        enter("outage")
        world.outages[down_partner].down()
        backlog_ids: list[str] = []
        paced(backlog_route, down_partner, "backlog", config.backlog / outage_seconds, config.backlog,
              lambda exchange_id, _: backlog_ids.append(exchange_id))
        stop.wait(max(0.0, phase_started["outage"] + outage_seconds - time.monotonic()))
        outage_s = time.monotonic() - phase_started["outage"]
        enter("drain")
        world.outages[down_partner].up()
        up_wall = datetime.now(timezone.utc)
        up_at = time.monotonic()
        log(f"partner back after {outage_s:.0f} s down, {len(backlog_ids)} messages queued for it")

        def backlog_states() -> collections.Counter[str]:
            with world.gw.store.reading() as session:
                return collections.Counter(dict(session.execute(
                    select(Exchange.state, func.count()).where(Exchange.route_id == backlog_route)
                    .group_by(Exchange.state)).all()))

        # What the policy gave up on while the partner was down is replayed, as an operator would.
        dead_at_up = backlog_states().get("dead", 0)
        replay: dict[str, Any] = {"dead_letters": dead_at_up}
        if dead_at_up:
            began = time.monotonic()
            result = subprocess.run([sys.executable, "-m", "gateway.cli", "dead-letters", "replay", "--partner",
                                     down_partner, "-r", "partner back after an outage"], cwd=ROOT,
                                    env={**os.environ, **world.env}, capture_output=True, text=True, timeout=600)
            replay.update({"exit_code": result.returncode, "seconds": round(time.monotonic() - began, 1)})
        progress: list[tuple[float, int]] = []
        while time.monotonic() < hard_deadline:
            done = backlog_states().get("delivered", 0)
            progress.append((time.monotonic() - up_at, done))
            if done >= config.backlog:
                break
            time.sleep(0.5)
        drained_s = time.monotonic() - up_at
        enter("after")
        stop.wait(config.baseline_seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        deadline = time.monotonic() + 60  # the last of the other partner's messages
        while time.monotonic() < deadline and world.states().get("delivered", 0) < len(other_ids) + config.backlog:
            time.sleep(0.5)
        peak = rss_kib(pid).get("VmHWM", 0)
        world.stop_gateways()
        exchanges = world.exchanges()
        with world.gw.store.reading() as session:
            failed_attempts = session.scalar(
                select(func.count()).select_from(Transition).join(Exchange, Exchange.id == Transition.exchange_id)
                .where(Exchange.route_id == backlog_route, Transition.to_state.in_(("failed", "dead")))) or 0
        latency: dict[str, list[float]] = collections.defaultdict(list)
        undelivered = 0
        for exchange_id, sent_in in other_ids.items():
            item = exchanges.get(exchange_id)
            if item is None or item["delivered_at"] is None:
                undelivered += 1
                continue
            latency[sent_in].append((item["delivered_at"] - item["created_at"]).total_seconds())
        ended = collections.Counter(exchanges[i]["state"] for i in backlog_ids if i in exchanges)
        after_up = sorted((exchanges[i]["delivered_at"] - up_wall).total_seconds() for i in backlog_ids
                          if i in exchanges and exchanges[i]["delivered_at"] is not None)
        effects, stats = world.webhook_effects()

        def reached(share: float) -> float | None:
            return next((round(t, 1) for t, n in progress if n >= share * config.backlog), None)

        def rss_max(name: str) -> float | None:
            return max((s["rss_mib"] for s in rss_samples if s["phase"] == name), default=None)

        report.update({
            "outage_s": round(outage_s, 1),
            "backlog_queued": len(backlog_ids),
            "failed_attempts_on_backlog": failed_attempts,
            "retry_work_per_s_during_outage": round(failed_attempts / outage_s, 1),
            "replay": replay,
            "drained": ended.get("delivered", 0) == config.backlog,
            "drain_s": round(drained_s, 1),
            "drain_s_to": {"first": reached(1 / config.backlog), "half": reached(0.5), "all": reached(1.0)},
            "backlog_states": dict(ended),
            "backlog_delivered_after_up_s": {"p50": round(after_up[len(after_up) // 2], 1) if after_up else None,
                                             "max": round(after_up[-1], 1) if after_up else None},
            "backlog_attempts_per_message": _percentiles([exchanges[i]["attempts"] for i in backlog_ids
                                                          if i in exchanges], unit=""),
            "effects": {partner: {"unique": len(found), "duplicated": sum(1 for n in found.values() if n > 1),
                                  "absorbed_by_key": stats[partner]["duplicates"]}
                        for partner, found in effects.items()},
            "other_partner_latency": {name: _percentiles(values) for name, values in latency.items()},
            "other_partner_sent": len(other_ids),
            "other_partner_undelivered": undelivered,
            "rss_mib": {**{f"{name}_max": rss_max(name) for name in phase_started},
                        "peak_vmhwm": round(peak / 1024, 1)},
            "seconds_total": round(time.monotonic() - started, 1),
        })
        report["valid"] = bool(report["drained"] and undelivered == 0 and all(
            e["duplicated"] == 0 for e in report["effects"].values())
            and report["effects"][down_partner]["unique"] == config.backlog)
        log(f"drain: {json.dumps({k: report[k] for k in ('drain_s', 'drained', 'replay', 'rss_mib')})}")
    return report


# --- results as Markdown -------------------------------------------------------------------------------


def render(data: dict[str, Any], scenario: str | None = None) -> str:
    """The tables of ``docs/reliability.md``, from the results file (so no number is copied by hand);
    ``scenario`` (``chaos`` or ``backlog-drain``) for one kind of run only."""
    lines: list[str] = []
    chaos_runs = {name: r for name, r in data.items() if r.get("scenario") == "chaos" and scenario in (None, "chaos")}
    drains = {name: r for name, r in data.items()
              if r.get("scenario") == "backlog-drain" and scenario in (None, "backlog-drain")}
    if chaos_runs:
        lines += ["| run | exchanges | processes | kills | lost | duplicated | unexpected | recovered | unfinished "
                  "| dead (with reason) | refused | audit chain | submit | until all ended | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in chaos_runs.items():
            v, t = r["check"]["verdict"], r["check"]["totals"]
            audit = f"intact, {r['audit']['entries']} entries" if r["audit"]["ok"] else "BROKEN"
            lines.append(f"| `{name}` | {r['count']} | {r['processes']} ({r['backend']}) | {len(r['kills'])} | {v['lost']} "
                         f"| {v['duplicated']} | {v['unexpected']} | {v['recovered']} | {v['unfinished']} "
                         f"| {t.get('dead_with_reason', 0)} | {t.get('refused', 0)} | {audit} "
                         f"| {r['seconds']['submit']} s "
                         f"| {r['seconds']['submit'] + r['seconds']['drain_after_submit']:.0f} s "
                         f"| {'valid' if r['valid'] else 'INVALID'} |")
        for name, r in chaos_runs.items():
            lines += ["", f"Per connector, `{name}`:", "",
                      "| connector | sent | acknowledged | delivered | lost | duplicated | unexpected | recovered "
                      "| survived a kill | dead (with reason) | refused | attempt failures |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for connector, c in r["check"]["connectors"].items():
                failures = "; ".join(f"{k}: {n}" for k, n in c["attempt_failures"].items()) or "none"
                lines.append(f"| {connector} | {c.get('sent', 0)} | {c.get('acknowledged', 0)} | {c.get('delivered', 0)} "
                             f"| {c['lost']} | {c['duplicated'] if not connector.startswith('wmo301') else 'n/o'} "
                             f"| {c['unexpected']} | {c['recovered']} | {c.get('survived_a_kill', 0)} "
                             f"| {c['dead_with_reason']} | {c.get('refused', 0)} | {failures} |")
            for connector, c in r["check"]["connectors"].items():
                if "superseded" in c:
                    lines += ["", f"{connector}, judged as state: {c['superseded']} older 301s superseded (delivered "
                              f"with nothing written, the gateway saying so); newest 301 not in force for "
                              f"{c['newest_not_in_force']} allocations; an older allocation left in force next to a "
                              f"newer one: {c['older_left_in_force']}."]
            absorbed = ", ".join(f"{k.split(':', 1)[1]} {v['duplicates']}" for k, v in r["partner_stats"].items()
                                 if k.startswith(("webhook", "simulator")))
            lines += ["", "Kills: " + "; ".join(f"at {k['at_s']} s ({k['sending_at_kill']} attempts in flight, "
                                                 f"back in {k['restart_s']} s)" for k in r["kills"]) + ".",
                      f"Submissions: {r['submissions']['tries']} requests for {r['count']} messages, "
                      f"{r['submissions']['interrupted']} of them without an answer (refused while a process "
                      f"restarted, or cut off by a kill) and sent again with the same key; "
                      f"{r['check']['totals'].get('acknowledged_by_replay', 0)} of the repeats were answered from "
                      f"the stored result of a request that had committed.",
                      f"Repeats the partners absorbed (by Idempotency-Key; the municipality by "
                      f"BerichtIdentificatie, answering 9056): {absorbed}. "
                      f"Peak resident memory of a gateway process: "
                      f"{r['peak_rss_mib']} MiB."]
            identity = r.get("identity_checks")
            if identity:
                lines.append(f"What the partners received was the message the gateway said it made: melding "
                             f"kenmerk not its exchange {identity['kenmerk_not_its_exchange']} times, iWmo "
                             f"BerichtIdentificatie not the one the worker was told "
                             f"{identity['identificatie_not_as_told']} times.")
    if drains:
        lines += [""] if lines else []
        lines += ["| run | backlog | policy | scale | outage | retry work | dead at return "
                  "| drain: first / half / all | RSS baseline → peak | exactly once |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in drains.items():
            to = r["drain_s_to"]
            once = all(e["duplicated"] == 0 for e in r["effects"].values())
            lines.append(f"| `{name}` | {r['backlog']} | {r['backlog_policy']} | {r['retry_scale']} | {r['outage_s']} s "
                         f"| {r['retry_work_per_s_during_outage']} failed attempts/s | {r['replay']['dead_letters']} "
                         f"| {to['first']} / {to['half']} / {to['all']} s "
                         f"| {r['rss_mib']['baseline_max']} → {r['rss_mib']['peak_vmhwm']} MiB "
                         f"| {'yes' if once else 'NO'} |")
        for name, r in drains.items():
            lines += ["", f"Latency of the other partner's deliveries, `{name}` (created → delivered):", "",
                      "| sent during | n | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|"]
            for phase, p in r["other_partner_latency"].items():
                lines.append(f"| {phase} | {p['n']} | {p.get('p50_ms')} ms | {p.get('p95_ms')} ms | {p.get('p99_ms')} ms "
                             f"| {p.get('max_ms')} ms |")
    return "\n".join(lines) + "\n"


# --- the command line ----------------------------------------------------------------------------------


def _fresh_postgres(server: str) -> Iterator[str]:
    from tests.conftest import _fresh_postgres_database

    return _fresh_postgres_database(server)


def _write(out: Path, name: str, report: dict[str, Any]) -> None:
    """Keep each named result in one JSON file, replacing an earlier one of the same name."""
    data = json.loads(out.read_text()) if out.exists() else {}
    report = {**report, "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    report.pop("workdir", None)
    data[name] = report
    out.write_text(json.dumps(dict(sorted(data.items())), indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["chaos", "drain"], default="chaos")
    parser.add_argument("--count", type=int, default=1000, help="exchanges in a chaos run")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--processes", type=int, default=1, help="gateway processes (PostgreSQL: several)")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs (and restarts) during the run")
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--backlog", type=int, default=3600, help="drain: messages queued for the partner that is down")
    parser.add_argument("--other-rate", type=float, default=5.0, help="drain: messages a second to the other partner")
    parser.add_argument("--hour-seconds", type=float, default=3600.0,
                        help="drain: how long the partner is down, as back-off sees it (wall time: this x --retry-scale)")
    parser.add_argument("--retry-scale", type=float, default=0.1, help="drain: GATEWAY_RETRY_SCALE (shrinks back-off)")
    parser.add_argument("--policy", default="patient", help="drain: retry policy of the backlog's route")
    parser.add_argument("--timeout", type=float, default=3600.0, help="hard deadline of the run, in seconds")
    parser.add_argument("--seed", type=int, default=7513)
    parser.add_argument("--postgres-url", default=os.environ.get("GATEWAY_TEST_POSTGRES_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--out", type=Path, help="merge the result into this JSON file")
    parser.add_argument("--name", help="the result's name in --out (default: from the scenario)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="print the Markdown tables of a results file, and stop")
    parser.add_argument("--render-only", choices=["chaos", "backlog-drain"], help="with --render: one kind of run")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text()), args.render_only).strip("\n"))
        return 0
    if args.scenario == "drain" and args.backend != "sqlite":
        parser.error("the drain runs on SQLite with one gateway process")
    if args.backend == "sqlite" and args.processes != 1:
        parser.error("SQLite runs one gateway process; use --backend postgres for several")
    with ExitStack() as stack:
        database_url = None
        if args.backend == "postgres":
            fresh = _fresh_postgres(args.postgres_url)
            database_url = next(fresh)
            stack.callback(lambda: next(fresh, None))
        workdir = Path(tempfile.mkdtemp(prefix=f"schakel-{args.scenario}-"))
        if args.scenario == "chaos":
            report = chaos(ChaosConfig(count=args.count, backend=args.backend, processes=args.processes,
                                       kills=args.kills, seed=args.seed, timeout=args.timeout,
                                       outage_seconds=args.outage_seconds, workdir=workdir, database_url=database_url))
            name = args.name or f"chaos-{args.backend}-{args.processes}p-{args.count}"
        else:
            report = drain(DrainConfig(backend=args.backend, backlog=args.backlog, hour_seconds=args.hour_seconds,
                                       other_rate=args.other_rate, retry_scale=args.retry_scale, policy=args.policy,
                                       timeout=args.timeout, workdir=workdir, database_url=database_url))
            name = args.name or f"drain-{args.backend}-{args.backlog}-{args.policy}"
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        _write(args.out, name, report)
    return 0 if report.get("valid") else 1


if __name__ == "__main__":
    sys.exit(main())
