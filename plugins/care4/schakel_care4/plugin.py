"""Hook implementations of the care4 plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.core.hookspecs import hookimpl

from schakel_care4.connector import Care4Connector


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(Care4Connector())
