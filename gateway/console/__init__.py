"""The web console: Dutch, server-rendered pages for administrators, workers and privacy officers.

Every page calls the same core functions as the API (``gateway/api/*`` and ``gateway/core/*``),
behind the same roles and tokens; nothing here decides who may receive what. Plugins add pages
through the ``register_console_pages`` hook with the pieces exported here.
"""

from typing import Any

from gateway.console.pages import ConsoleError, NavEntry, console_router, redirect, render
from gateway.console.session import ConsoleSession, console_user


def mount(app: Any, gw: Any) -> Any:
    """Add the console (and the plugins' console pages) to the app; see :mod:`gateway.console.assembly`."""
    from gateway.console.assembly import mount as _mount

    return _mount(app, gw)


__all__ = ["ConsoleError", "ConsoleSession", "NavEntry", "console_router", "console_user", "mount", "redirect", "render"]
