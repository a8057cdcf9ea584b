"""Putting the console into the app: its own pages, the plugins' pages and menu entries, the CSS.

Plugins contribute through the ``register_console_pages`` hook. Their prefix must be
``/console/<name>`` and may not take a name the console itself uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from gateway.console import admin, exchanges, login, privacy
from gateway.console.pages import STATIC, ConsoleRoute, ConsoleSite, NavEntry
from gateway.core.plugins import PluginError
from gateway.core.runtime import Gateway

ADMIN, WORKER, PRIVACY = ("beheerder",), ("hulpverlener",), ("privacy",)
CORE_NAV = (
    NavEntry("Overzicht", "/console/beheer", ADMIN),
    NavEntry("Koppelingen", "/console/beheer/koppelingen", ADMIN),
    NavEntry("Partners", "/console/beheer/partners", ADMIN),
    NavEntry("Onbestelbare berichten", "/console/beheer/onbestelbaar", ADMIN),
    NavEntry("Uitwisselingen", "/console/uitwisselingen", ADMIN),
    NavEntry("Start", "/console/werk", WORKER),
    NavEntry("Auditlog", "/console/privacy", PRIVACY),
    NavEntry("Inzageverslag", "/console/privacy/inzage", PRIVACY),
    NavEntry("Toestemmingen", "/console/privacy/toestemmingen", PRIVACY),
    NavEntry("Auditketen", "/console/auditketen", ("beheerder", "privacy")),
)
# First path segments the console itself uses; a plugin may not take them.
RESERVED = {"beheer", "werk", "privacy", "auditketen", "uitwisselingen", "inloggen", "uitloggen", "static"}


def mount(app: FastAPI, gw: Gateway) -> ConsoleSite:
    site = ConsoleSite(CORE_NAV)
    app.state.console = site
    for router in (login.router, admin.router, exchanges.router, privacy.router):
        app.include_router(router)

    def register(router: APIRouter, prefix: str, nav: Iterable[NavEntry] = (), templates: Path | None = None) -> None:
        match = re.match(r"^/console/([a-z0-9][a-z0-9_-]*)$", prefix)
        if not match or match.group(1) in RESERVED:
            raise PluginError(f"console pages are mounted under /console/<name> (not a name the console uses), "
                              f"not {prefix!r}")
        if any(not isinstance(route, ConsoleRoute) for route in router.routes):
            raise PluginError(f"the router for {prefix} must come from gateway.console.console_router()")
        for entry in nav:
            if not isinstance(entry, NavEntry) or not entry.path.startswith(prefix):
                raise PluginError(f"menu entries for {prefix} must be NavEntry objects with paths under it")
            site.nav.append(entry)
        if templates is not None:
            site.add_templates(match.group(1), Path(templates))
        app.include_router(router, prefix=prefix)

    gw.pm.hook.register_console_pages(register=register)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(login.fallback_router)
    return site


__all__: list[Any] = ["mount"]
