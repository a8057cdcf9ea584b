"""Driving load with wrk (bench/load.lua) and reading back what each request did.

One ``wrk`` process (one thread) per target URL: two gateway processes get two load generators,
each with half the connections, the way a load balancer would split them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MESSAGES = HERE / "messages"


@dataclass(frozen=True)
class Target:
    """How one system is sent one kind of message, and how its answer names the message."""

    path: str
    template: Path
    media_type: str
    pattern: str  # Lua pattern for the key in the answer: the message id, or Schakel's exchange id
    token: str = ""
    idempotency_key: bool = False
    bsns: tuple[str, ...] = ()
    retour: bool = False  # the answer is an iWmo retour, whose codes say whether the message was taken


@dataclass
class Load:
    started: float
    ended: float
    sent: dict[str, float] = field(default_factory=dict)
    answers: list[tuple[str, int, float]] = field(default_factory=list)  # key, status, time
    wrk: list[dict[str, int]] = field(default_factory=list)

    @property
    def socket_errors(self) -> int:
        return sum(w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"] for w in self.wrk)


def ensure_wrk(log: Path) -> str:
    """wrk's version; installed from Debian's packages first when it is missing and we may."""
    if shutil.which("wrk") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise RuntimeError("wrk is needed: apt-get install -y wrk")
        with open(log, "ab") as out:
            if subprocess.run(["apt-get", "install", "-y", "wrk"], stdout=out, stderr=subprocess.STDOUT).returncode:
                subprocess.run(["apt-get", "update"], stdout=out, stderr=subprocess.STDOUT, check=True)
                subprocess.run(["apt-get", "install", "-y", "wrk"], stdout=out, stderr=subprocess.STDOUT, check=True)
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].split(" [")[0]


def wrk_summary(output: str) -> dict[str, int]:
    """The counts a bench Lua script's ``done`` writes as its ``BENCH {...}`` line."""
    line = next((line for line in output.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{output}")
    return json.loads(line[6:])


def drive(urls: list[str], target: Target, *, seconds: float, connections: int, delay_ms: int, prefix: str,
          logdir: Path) -> Load:
    logdir.mkdir(parents=True, exist_ok=True)
    per_target = max(1, connections // len(urls))
    runs = []
    started = time.time()
    for i, url in enumerate(urls):
        env = {**os.environ, "BENCH_PATH": target.path, "BENCH_TEMPLATE": str(target.template),
               "BENCH_TYPE": target.media_type, "BENCH_TOKEN": target.token,
               "BENCH_IDEM": "1" if target.idempotency_key else "0", "BENCH_PREFIX": f"{prefix}{i}",
               "BENCH_LOG": str(logdir / f"{prefix}{i}"), "BENCH_PATTERN": target.pattern,
               "BENCH_DELAY_MS": str(delay_ms), "BENCH_BSNS": ",".join(target.bsns),
               "BENCH_RETOUR": "1" if target.retour else "0"}
        command = ["wrk", "-t1", f"-c{per_target}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                   "-s", str(HERE / "load.lua"), url + target.path]
        runs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [run.communicate()[0] for run in runs]
    load = Load(started=started, ended=time.time())
    for output in outputs:
        load.wrk.append(wrk_summary(output))
    for log in sorted(logdir.glob(f"{prefix}*-*.log")):
        for line in log.read_text().splitlines():
            parts = line.split(" ")
            if parts[0] == "S" and len(parts) == 3:
                load.sent[parts[1]] = float(parts[2])
            elif parts[0] == "R" and len(parts) == 4:
                load.answers.append((parts[1], int(parts[2]), float(parts[3])))
    return load
