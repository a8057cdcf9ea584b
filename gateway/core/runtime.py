"""The gateway runtime: one object holding what a process needs, built once and kept in app state."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pluggy
import structlog

from gateway.core.auth import TokenCache
from gateway.core.crypto import Box
from gateway.core.mapping import Mapping, MappingError, load_mappings
from gateway.core.plugins import PluginError, Registry, add_routes, build_plugin_manager, collect
from gateway.core.policy import Policy
from gateway.core.pseudonyms import Pseudonymiser
from gateway.core.routing import load_routes_file
from gateway.core.store import Store
from gateway.settings import Settings

log = structlog.get_logger("gateway.runtime")

DEFAULT_MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "mappings"


class Gateway:
    """Settings, store, plugins and the services built on them. No I/O happens in ``__init__``
    beyond loading plugins and mapping files; the HTTP client and workers start in the lifespan."""

    def __init__(self, settings: Settings, plugins: Iterable[ModuleType | object] = ()) -> None:
        from gateway.core.pipeline import Pipeline

        self.settings = settings
        self.store = Store(settings.sqlalchemy_url())
        self.box = Box(settings.encryption_keys)
        assert settings.pseudonym_key is not None
        self.pseudonymise = Pseudonymiser(settings.pseudonym_key)
        self.pm: pluggy.PluginManager = build_plugin_manager(settings.enabled_plugins, plugins)
        self.registry: Registry = collect(self.pm)
        if settings.routes_file:
            try:
                add_routes(self.registry, load_routes_file(settings.routes_file))
            except ValueError as exc:
                raise PluginError(str(exc)) from None
        self.mappings = self._load_mappings(settings.mappings_dir or DEFAULT_MAPPINGS_DIR)
        self.policy = Policy(self.registry, self)
        self.pipeline = Pipeline(self)
        self.tokens = TokenCache(settings.token_cache_seconds)
        self.http: httpx.AsyncClient | None = None  # type: ignore[assignment]
        self.workers: list[Any] = []
        from gateway.telemetry import Instruments

        self.instruments = Instruments()
        self.store.listeners.append(self._dispatch_events)

    def _load_mappings(self, directory: Path) -> dict[str, Mapping]:
        try:
            mappings = load_mappings(directory)
        except MappingError as exc:
            raise PluginError(str(exc)) from None
        for route in self.registry.routes.values():
            if route.mapping and route.mapping not in mappings:
                raise PluginError(f"route {route.id!r} names mapping {route.mapping!r}, but {directory}/{route.mapping}.yaml does not exist")
            if route.mapping and mappings[route.mapping].spec.message_type != route.message_type:
                raise PluginError(f"mapping {route.mapping}.yaml: field message_type: does not match route {route.id!r}")
        return mappings

    def _dispatch_events(self, events: list[Any]) -> None:
        for event in events:
            self.instruments.transitions.add(1, {"route": event.route_id, "state": event.to_state,
                                                 "connector": event.connector_type})
            try:
                self.pm.hook.exchange_event(event=event)
            except Exception as exc:  # an observer must not undo or block a committed change
                log.error("exchange_event_observer_failed", error_type=type(exc).__name__, exchange_id=event.exchange_id)

    def exchange_context(self, exchange_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """An exchange's metadata and the context its plugin stored with it, or None."""
        from gateway.core.models import Exchange

        with self.store.reading() as session:
            exchange = session.get(Exchange, exchange_id)
            if exchange is None:
                return None
            meta = {"id": exchange.id, "route_id": exchange.route_id, "state": exchange.state,
                    "partner_id": exchange.partner_id, "subject": exchange.subject,
                    "correlation_id": exchange.correlation_id, "created_at": exchange.created_at,
                    "delivered_at": exchange.delivered_at}
            context = self.box.decrypt_json(exchange.context_encrypted) if exchange.context_encrypted else {}
        return meta, context

    def running_worker(self) -> Any:
        """This process's delivery worker while it runs (on the event loop that serves requests), else None."""
        return next((worker for worker in self.workers if worker.running), None)

    def wake_workers(self) -> None:
        for worker in self.workers:
            worker.wake()

    def new_http_client(self) -> httpx.AsyncClient:
        from gateway.core.transport import new_client

        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        timeout = httpx.Timeout(self.settings.attempt_deadline_seconds, connect=self.settings.connect_timeout_seconds)
        return new_client(limits, timeout)
