"""For other plugins: find the organisation's ECD partner and read from it."""

from __future__ import annotations

from sqlalchemy import select

from gateway.core import partners as partner_registry
from gateway.core.models import Partner
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_care4.client import Care4Client


def ecd_client(gw: Gateway) -> Care4Client:
    """A reader for the one registered care4 partner (the organisation has one ECD)."""
    with gw.store.reading() as session:
        rows = list(session.scalars(select(Partner).where(Partner.connector_type == "care4").limit(2)))
        if len(rows) != 1:
            raise Problem("no-partner", "Exactly one Care4 ECD partner must be registered.")
        view = partner_registry.view(rows[0], gw.box)
    assert gw.http is not None, "the shared HTTP client starts with the app"
    return Care4Client(gw.http, view, gw.settings.retry_scale)
