"""Hook implementations of the veiligthuis plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.core.hookspecs import hookimpl

from schakel_veiligthuis.connector import VeiligThuisConnector


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(VeiligThuisConnector())
