"""The FastAPI app factory. Nothing is created at import time: settings, plugins, the store,
the shared HTTP client and the delivery workers all come from :func:`create_app` and its lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from gateway import __version__, console
from gateway import logging as gateway_logging
from gateway import telemetry
from gateway.api import connectors, exchanges, health, messages, openapi, partners, privacy
from gateway.api.guards import BodyGuard, CorrelationId, ErrorShield
from gateway.core import problems
from gateway.core.delivery import DeliveryWorker
from gateway.core.runtime import Gateway
from gateway.core.store import refuse_unknown_schema, upgrade
from gateway.settings import Settings, load_settings

log = structlog.get_logger("gateway.app")


class DurabilityError(RuntimeError):
    pass


def check_durability(gw: Gateway) -> dict[str, str]:
    """Refuse to run where an acknowledged commit could be lost in a crash."""
    settings = gw.store.durability()
    if gw.store.is_postgres:
        if settings["synchronous_commit"] != "on":
            raise DurabilityError(f"PostgreSQL synchronous_commit is {settings['synchronous_commit']}, must be on")
    elif settings["synchronous"] not in ("FULL", "EXTRA") or settings["journal_mode"].lower() != "wal":
        raise DurabilityError(f"SQLite must run with journal_mode=WAL and synchronous=FULL, not {settings}")
    return settings


async def maintenance(gw: Gateway) -> None:
    """Hourly: purge old message bodies; and sign an audit checkpoint when the last is a day old.

    Every process runs it; both steps are safe to repeat, so several gateways need no leader.
    """
    from datetime import timedelta

    from sqlalchemy import func, select

    from gateway.core import audit, audit_chain, retention
    from gateway.core.models import AuditCheckpoint, utcnow

    actor = audit.Actor.system("maintenance")

    def once() -> None:
        retention.purge_bodies(gw.store, gw.settings.body_retention_days, actor)
        with gw.store.transaction() as session:
            last = session.scalar(select(func.max(AuditCheckpoint.created_at)))
            if last is None or utcnow() - last >= timedelta(hours=gw.settings.audit_checkpoint_interval_hours):
                audit_chain.checkpoint(session, gw.settings.audit_signing_key)  # type: ignore[arg-type]

    while True:
        try:
            await run_in_threadpool(once)
        except Exception as exc:
            log.warning("maintenance_failed", error_type=type(exc).__name__)
        await asyncio.sleep(gw.settings.maintenance_interval_seconds)


def settle_garbage_collector() -> None:
    """Once started: what exists now (modules, tables, routes, plugins) lives as long as the
    process, so the cyclic collector stops rescanning it (``gc.freeze``), and it runs after every
    ten thousand new container objects instead of seven hundred — a message allocates thousands,
    nearly all freed by reference counting, and the default made the collector a measurable share
    of each one's CPU (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def create_app(settings: Settings | None = None, plugins: Iterable[ModuleType | object] = ()) -> FastAPI:
    settings = settings or load_settings()
    gateway_logging.configure(settings.log_level, settings.log_format)
    telemetry.configure(settings)
    gw = Gateway(settings, plugins)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await run_in_threadpool(refuse_unknown_schema, gw.store)
        if settings.auto_migrate:
            await run_in_threadpool(upgrade, gw.store.url)
        await run_in_threadpool(check_durability, gw)
        gw.http = gw.new_http_client()
        gw.store.group.attach(asyncio.get_running_loop())
        tasks: list[asyncio.Task[None]] = []
        tasks.append(asyncio.create_task(maintenance(gw), name="maintenance"))
        if settings.worker_enabled:
            worker = DeliveryWorker(gw)
            gw.workers.append(worker)
            tasks.append(asyncio.create_task(worker.run(), name="delivery-worker"))
        settle_garbage_collector()
        log.info("gateway_started", plugins=sorted(gw.registry.connectors), routes=len(gw.registry.routes),
                 database=gw.store.dialect)
        try:
            yield {"gateway": gw}
        finally:
            for worker in gw.workers:
                await worker.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for connector in gw.registry.connectors.values():
                await connector.aclose()
            await gw.http.aclose()
            await gw.store.group.detach()
            gw.workers.clear()
            gw.store.dispose()

    app = FastAPI(
        title="Schakel gateway",
        version=__version__,
        description="Consent-aware integration gateway for domestic-violence care. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    app.state.gateway = gw
    problems.install(app)
    openapi.install(app)
    for router in (health.router, messages.router, exchanges.router, connectors.router, partners.router, privacy.router):
        app.include_router(router)
    for router, prefix in gw.registry.routers:
        app.include_router(router, prefix=prefix)
    console.mount(app, gw)

    app.add_middleware(ErrorShield)
    app.add_middleware(CorrelationId)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    return app
