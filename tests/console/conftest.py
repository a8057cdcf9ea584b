"""A running gateway with its Care4, Veilig Thuis and webhook simulators, and a headless Chromium
(Debian's ``chromium``, driven by Playwright) that signs in to its console as a person would."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from schakel_care4.fixtures import REGIONS
from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET
from schakel_care4.simulator import create_app as create_care4
from schakel_veiligthuis.simulator import create_app as create_vt
from tests.conftest import LiveGateway, _fresh_postgres_database, make_settings
from tests.console.a11y import accessibility_problems
from tests.servers import ROOT, ThreadServer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "console"
PLUGINS = ["care4", "veiligthuis"]


@dataclass
class World:
    live: LiveGateway
    care4: ThreadServer
    vt: ThreadServer
    sink: ThreadServer

    def vt_received(self) -> list[dict[str, Any]]:
        return httpx.get(self.vt.url + "/_received", timeout=10).json()["items"]

    def sink_control(self, **settings: Any) -> None:
        httpx.post(self.sink.url + "/_control", json=settings, timeout=10).raise_for_status()


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """SQLite unless a test asks for ``postgres`` with ``indirect=True``."""
    from gateway.builtin.webhook.simulator import create_app as create_sink

    backend = getattr(request, "param", "sqlite")
    if backend == "postgres":
        urls = _fresh_postgres_database(request.getfixturevalue("postgres_server"))
        database_url = next(urls)
    else:
        urls, database_url = None, f"sqlite:///{tmp_path / 'gateway.db'}"
    settings = make_settings(database_url, tmp_path, enabled_plugins=PLUGINS)
    try:
        with ThreadServer(create_app(settings)) as server, \
                ThreadServer(create_care4(), ready_path="/docs") as care4, \
                ThreadServer(create_vt(), ready_path="/_received") as vt, \
                ThreadServer(create_sink(), ready_path="/_stats") as sink:
            live = LiveGateway(server)
            live.add_partner("care4-ecd", care4.url, connector_type="care4", consenting_clients=(), name="Care4 ECD",
                             config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
            tokens = {}
            for region, codes in REGIONS.items():
                live.add_partner(f"vt-{region}", f"{vt.url}/{region}/meldingen", connector_type="veiligthuis",
                                 consenting_clients=(), routing={"gemeentecode": codes},
                                 name=f"Veilig Thuis {region.replace('-', ' ').title()}")
                tokens[region] = live.token("partner", f"vt-{region}")
            httpx.post(vt.url + "/_control", json={"callback_url": live.url, "tokens": tokens, "ack_delay": 0.1},
                       timeout=10).raise_for_status()
            yield World(live, care4, vt, sink)
    finally:
        if urls is not None:
            next(urls, None)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Package scope: Playwright's sync API runs an event loop in the main thread while it lives,
    # which would break every later test that calls asyncio.run().
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; `make test` does it); console browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


class Console:
    """One person at the console: a browser tab, their token, and a folder for screenshots."""

    def __init__(self, page: Any, live: LiveGateway, shots: Path) -> None:
        self.page = page
        self.live = live
        self.shots = shots
        self.count = 0

    def goto(self, path: str) -> Any:
        return self.page.goto(self.live.url + path)

    def login(self, role: str, token: str | None = None, here: bool = False) -> None:
        """Sign in with the role's token; ``here`` on the login page the browser already shows."""
        if not here:
            self.goto("/console/inloggen")
        self.page.get_by_label("Uw token").fill(token or self.live.token(role))
        self.page.get_by_role("button", name="Inloggen").click()
        self.page.wait_for_load_state()

    def heading(self) -> str:
        return self.page.locator("h1").inner_text()

    def text(self) -> str:
        return self.page.locator("main").inner_text()

    def shot(self, name: str) -> Path:
        """A full-page screenshot, kept as a test artefact."""
        self.count += 1
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def check(self, name: str) -> None:
        """Screenshot the page and hold it to the accessibility basics."""
        self.shot(name)
        problems = accessibility_problems(self.page)
        assert not problems, f"{name} ({self.page.url}): " + "; ".join(problems)

    def submit(self, button: str) -> None:
        self.page.get_by_role("button", name=button).click()
        self.page.wait_for_load_state()

    def flash(self) -> str:
        return " ".join(self.page.locator(".flash").all_inner_texts())


@pytest.fixture
def console_factory(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Open a fresh browser (own cookies) per person: ``console_factory(world.live)``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    contexts = []

    def open_console(live: LiveGateway, who: str = "") -> Console:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
        contexts.append(context)
        return Console(context.new_page(), live, folder / who if who else folder)

    yield open_console
    for context in contexts:
        context.close()
