"""Liveness, readiness and the problem-type pages."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import GatewayDep
from gateway.core.problems import CATALOGUE, Problem
from gateway.core.store import current_revision, head_revision

router = APIRouter(tags=["health"])


# HEAD for load balancers and uptime monitors, on these endpoints only: elsewhere a GET may record
# what it did (an audited read, a handover marked fetched), which a HEAD must not.
@router.head("/health", include_in_schema=False)
@router.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.head("/ready", include_in_schema=False)
@router.get("/ready", summary="Database reachable and migrated, plugins loaded, workers running")
async def ready(gw: GatewayDep) -> JSONResponse:
    checks: dict[str, str] = {}

    def _database() -> None:
        gw.store.ping()
        if current_revision(gw.store) != head_revision(gw.store.url):
            raise RuntimeError("migrations pending")

    try:
        await run_in_threadpool(_database)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failing: {type(exc).__name__}" if "migrations" not in str(exc) else "migrations pending"
    checks["plugins"] = f"{len(gw.registry.connectors)} connector types"
    if gw.settings.worker_enabled:
        checks["workers"] = "ok" if gw.workers and all(w.running for w in gw.workers) else "not running"
    ok = checks["database"] == "ok" and checks.get("workers", "ok") == "ok"
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


@router.head("/problems/{slug}", response_class=HTMLResponse, include_in_schema=False)
@router.get("/problems/{slug}", response_class=HTMLResponse, include_in_schema=False)
async def problem_page(slug: str) -> HTMLResponse:
    if slug not in CATALOGUE:
        raise Problem("not-found", "No such problem type.")
    status, title = CATALOGUE[slug]
    return HTMLResponse(
        f"<!doctype html><html lang='en'><title>{html.escape(title)}</title><main><h1>{html.escape(title)}</h1>"
        f"<p>Problem type <code>/problems/{html.escape(slug)}</code>, HTTP status {status}.</p></main></html>",
        headers={"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff"},
    )
