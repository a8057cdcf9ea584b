"""Real servers on loopback for the tests: in a thread (fast) or as a process (to kill -9)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 30.0, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == status:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s (last: {last})")


class ThreadServer:
    """An ASGI app served by uvicorn in a background thread, on a free loopback port."""

    def __init__(self, app: Any, ready_path: str = "/health") -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        wait_for(self.url + self.ready_path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ProcessServer:
    """``gateway serve`` (or any command) in its own process group, so it can be killed -9."""

    def __init__(self, env: dict[str, str], port: int | None = None, command: list[str] | None = None,
                 ready_path: str = "/ready", log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "GATEWAY_PORT": str(self.port), "GATEWAY_HOST": "127.0.0.1"}
        self.command = command or [sys.executable, "-m", "gateway.cli", "serve"]
        self.ready_path = ready_path
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "ProcessServer":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=out, stderr=out,
                                        start_new_session=True)
        wait_for(self.url + self.ready_path, timeout=timeout)
        return self

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def __enter__(self) -> "ProcessServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sink_process(log: Path | None = None) -> ProcessServer:
    port = free_port()
    return ProcessServer(
        env={}, port=port, ready_path="/_stats", log=log,
        command=[sys.executable, "-m", "uvicorn", "--factory", "gateway.builtin.webhook.simulator:create_app",
                 "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
    )
