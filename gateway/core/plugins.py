"""Build the plugin manager and collect what the plugins register.

Plugins are found through the entry-point group ``gateway.plugins``; only those named in
``GATEWAY_ENABLED_PLUGINS`` load. Built-in plugins (the generic webhook connector) load always,
through the same hooks as outside ones. Startup fails with a clear message when an enabled
plugin is not installed or a plugin implements a hook that does not exist.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from gateway.core import hookspecs
from gateway.core.connectors import Connector
from gateway.core.routing import Route
from gateway.core.simulators import Simulator

ENTRY_POINT_GROUP = "gateway.plugins"
BUILTIN_PLUGINS = ("gateway.builtin.webhook.plugin",)
# The core's own API areas; a plugin router may not shadow them.
CORE_PREFIXES = tuple(f"/api/v1/{name}" for name in (
    "routes", "exchanges", "dead-letters", "connectors", "partners", "pseudonyms", "consents", "audit", "access-report"))


class PluginError(RuntimeError):
    """The plugin set cannot start: the message says which plugin and why."""


@dataclass
class Registry:
    """Everything the enabled plugins registered."""

    connectors: dict[str, Connector] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    routers: list[tuple[Any, str]] = field(default_factory=list)
    simulators: dict[str, Simulator] = field(default_factory=dict)

    def connector(self, connector_type: str) -> Connector:
        return self.connectors[connector_type]


def installed_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def build_plugin_manager(enabled: Iterable[str], extra: Iterable[ModuleType | object] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("gateway")
    pm.add_hookspecs(hookspecs)
    for dotted in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(dotted), name=dotted)
    available = installed_plugins()
    for name in enabled:
        entry_point = available.get(name)
        if entry_point is None:
            known = ", ".join(sorted(available)) or "none"
            raise PluginError(
                f"plugin {name!r} is enabled in GATEWAY_ENABLED_PLUGINS but not installed "
                f"(installed: {known}); install it or remove it from the setting"
            )
        try:
            module = entry_point.load()
        except Exception as exc:  # an import error inside a plugin must name the plugin
            raise PluginError(f"plugin {name!r} failed to import: {type(exc).__name__}: {exc}") from exc
        pm.register(module, name=name)
    for plugin in extra:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r} implements an unknown hook: {exc}") from exc
    return pm


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call the registration hooks once and validate what comes back."""
    registry = Registry()

    def register_connector(connector: Connector) -> None:
        manifest = getattr(connector, "manifest", None)
        if not isinstance(connector, Connector) or manifest is None:
            raise PluginError(f"{connector!r} is not a Connector with a manifest")
        if manifest.id in registry.connectors:
            raise PluginError(f"two plugins register connector type {manifest.id!r}")
        registry.connectors[manifest.id] = connector

    def register_route(route: Route) -> None:
        if route.id in registry.routes:
            raise PluginError(f"two plugins register route {route.id!r}")
        registry.routes[route.id] = route

    def register_router(router: Any, prefix: str) -> None:
        # Partner-facing endpoints live under /partners/<name>, worker-facing ones under /api/v1/<name>.
        if not re.match(r"^/(partners|api/v1)/[a-z0-9_-]+(/|$)", prefix) or prefix.startswith(CORE_PREFIXES):
            raise PluginError(f"plugin routers are mounted under /partners/<name> or /api/v1/<name>, not {prefix!r}")
        registry.routers.append((router, prefix))

    def register_simulator(simulator: Simulator) -> None:
        if simulator.name in registry.simulators:
            raise PluginError(f"two plugins register simulator {simulator.name!r}")
        registry.simulators[simulator.name] = simulator

    pm.hook.register_connectors(register=register_connector)
    pm.hook.register_routes(register=register_route)
    pm.hook.register_routers(register=register_router)
    pm.hook.register_simulators(register=register_simulator)
    for route in registry.routes.values():
        if route.target not in registry.connectors:
            raise PluginError(f"route {route.id!r} targets connector type {route.target!r}, which no enabled plugin provides")
    return registry


def add_routes(registry: Registry, routes: Iterable[Route]) -> None:
    """Routes from the administrator's routes file add to, or replace, the plugins' routes."""
    for route in routes:
        if route.target not in registry.connectors:
            raise PluginError(f"route {route.id!r} targets connector type {route.target!r}, which no enabled plugin provides")
        registry.routes[route.id] = route
