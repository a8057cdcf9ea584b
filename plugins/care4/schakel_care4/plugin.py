"""Hook implementations of the care4 plugin."""

from __future__ import annotations

from typing import Any, Callable

from gateway.core.hookspecs import hookimpl
from gateway.core.simulators import DemoPartner, Simulator
from schakel_care4.connector import Care4Connector


@hookimpl
def register_connectors(register: Callable[[Any], None]) -> None:
    register(Care4Connector())


@hookimpl
def register_simulators(register: Callable[[Simulator], None]) -> None:
    from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET, create_app

    register(Simulator(
        name="care4", app=create_app,
        description="Care4-style ECD with 22 fictional households.",
        demo_partners=(DemoPartner(id="care4-ecd", connector_type="care4", name="Care4 (simulator)", path="",
                                   config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),),
    ))
