"""The machine and the software versions a run was measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from procs import ROOT


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _run(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def _postgres(url: str) -> dict[str, str]:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            return {name: str(conn.execute(f"SHOW {name}").fetchone()[0])
                    for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers")}
    except Exception as exc:  # no server: the run says so instead of failing here
        return {"error": type(exc).__name__}


def describe(postgres_url: str) -> dict[str, Any]:
    packages = {name: metadata.version(name) for name in
                ("fastapi", "uvicorn", "httpx", "sqlalchemy", "psycopg", "uvloop", "httptools", "pydantic")}
    commit = _run(["git", "rev-parse", "HEAD"])
    dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"]))
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "os": _run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres(postgres_url),
        "node": _run(["node", "--version"]),
        "packages": packages,
        "schakel_commit": commit,
        "schakel_tree_modified": dirty,
    }
