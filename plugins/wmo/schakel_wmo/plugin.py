"""Hook implementations of the wmo plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.core.hookspecs import hookimpl

from schakel_wmo.connector import WmoConnector


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(WmoConnector())
