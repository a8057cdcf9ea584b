"""Hook implementations of the police plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.core.hookspecs import hookimpl

from schakel_police.connector import PoliceConnector


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(PoliceConnector())
