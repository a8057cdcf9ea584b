"""What Schakel is measured against in the same run: the bare relay (the floor) and Node-RED.

Node-RED is installed from npm by this script into a temporary folder (kept there between runs,
so a second run only checks it), and runs ``bench/nodered/flow.json``: http in -> http request
-> http response, with keep-alive to the partner.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from procs import Proc, free_port, wait_for

HERE = Path(__file__).resolve().parent
NODE_RED_SPEC = "node-red@~4.1.0"
NODE_RED_DIR = Path(tempfile.gettempdir()) / "schakel-bench-node-red-4.1"


def install_node_red(log: Path) -> tuple[str, float]:
    """``npm install`` Node-RED 4.1 into the temporary folder; returns its version and the seconds it took."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise RuntimeError("node and npm are needed for the Node-RED baseline: apt-get install -y nodejs npm")
        with open(log, "ab") as out:
            subprocess.run(["apt-get", "install", "-y", "nodejs", "npm"], stdout=out, stderr=subprocess.STDOUT, check=True)
    NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "ab") as out:
        subprocess.run(["npm", "install", "--prefix", str(NODE_RED_DIR), "--no-audit", "--no-fund", "--omit=dev",
                        "--no-save", NODE_RED_SPEC], check=True, stdout=out, stderr=subprocess.STDOUT)
    version = json.loads((NODE_RED_DIR / "node_modules" / "node-red" / "package.json").read_text())["version"]
    return version, time.monotonic() - started


def wait_relaying(url: str, timeout: float = 60.0) -> None:
    """A three-node flow has no health route: ready is when a message goes through (the bench
    resets the partner's records before it measures)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, content=b'{"reference":"ready"}', headers={"Content-Type": "application/json"},
                          timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} relayed nothing within {timeout} s")


@dataclass
class Relay:
    """The bare FastAPI + httpx relay (or, with ``client="aiohttp"``, the same relay on aiohttp's
    client): ``processes`` uvicorn processes, each on its own port and loaded by its own wrk, as
    Schakel's processes are. Not ``uvicorn --workers``: its workers share one listening socket, and
    with the bench's few long-lived connections the kernel often hands them all to one worker —
    the relay's two-process passes then measured one process or two, by chance (seen on 2026-12-06:
    614 and 1,424 messages per second in two passes an hour apart)."""

    processes: int
    workdir: Path
    client: str = "httpx"
    procs: list[Proc] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"relay-{self.processes}" if self.client == "httpx" else f"relay-{self.client}-{self.processes}"

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self, target: str) -> "Relay":
        env = {"RELAY_TARGET": target, "RELAY_CLIENT": self.client}
        for i in range(self.processes):
            while (port := free_port()) in self.ports:  # two asks may get one port: then one relay would answer for both
                pass
            command = [sys.executable, "-m", "uvicorn", "relay:create_app", "--factory", "--app-dir", str(HERE),
                       "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
            self.ports.append(port)
            self.procs.append(Proc(f"{self.name}-{i}", command, env, self.workdir / f"{self.name}-{i}.log").start())
        for url in self.urls:
            wait_for(url + "/health")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@dataclass
class NodeRed:
    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    url: str = ""
    processes: int = 1

    @property
    def name(self) -> str:
        return "node-red-1"

    @property
    def urls(self) -> list[str]:
        return [self.url]

    def start(self, target: str) -> "NodeRed":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        user_dir = self.workdir / "node-red"
        user_dir.mkdir(parents=True, exist_ok=True)
        flow = user_dir / "flow.json"
        shutil.copyfile(HERE / "nodered" / "flow.json", flow)
        command = ["node", str(NODE_RED_DIR / "node_modules" / "node-red" / "red.js"),
                   "--settings", str(HERE / "nodered" / "settings.js"), "--userDir", str(user_dir)]
        env = {"PORT": str(port), "SINK_URL": target, "NODE_RED_FLOW_FILE": str(flow)}
        self.procs = [Proc(self.name, command, env, self.workdir / "node-red.log").start()]
        wait_relaying(self.url + "/relay")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
