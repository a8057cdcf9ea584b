"""The store's durability settings: no success is answered before it is on disk."""

from __future__ import annotations

from gateway.app import check_durability
from gateway.core.runtime import Gateway
from gateway.core.store import current_revision, head_revision, upgrade


def test_durability_settings_are_the_safe_ones(settings):
    gw = Gateway(settings)
    upgrade(gw.store.url)
    try:
        durability = check_durability(gw)
        if gw.store.is_postgres:
            assert durability["synchronous_commit"] == "on"
            assert durability["fsync"] == "on"
        else:
            assert durability == {"journal_mode": "wal", "synchronous": "FULL"}
        assert current_revision(gw.store) == head_revision(gw.store.url)
    finally:
        gw.store.dispose()


def test_the_answer_comes_after_exchange_outbox_and_audit_are_committed(live_gateway, sink):
    """A 202 means all three rows are visible to a fresh connection."""
    from sqlalchemy import select

    from gateway.core.models import AuditEntry, Exchange, OutboxItem
    from gateway.core.store import Store
    from tests.helpers import notice, submit

    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    live_gateway.gw.settings.worker_enabled = False
    for worker in live_gateway.gw.workers:
        worker._stop.set()
    with live_gateway.client("hulpverlener") as client:
        exchange_id = submit(client, notice("r-commit")).json()["exchange_id"]
    other = Store(live_gateway.gw.store.url)
    try:
        with other.reading() as session:
            assert session.get(Exchange, exchange_id) is not None
            assert session.get(OutboxItem, exchange_id) is not None
            events = list(session.scalars(select(AuditEntry.event_type).where(AuditEntry.exchange_id == exchange_id)))
        assert events == ["exchange.received", "exchange.validated", "exchange.authorised", "exchange.queued"]
    finally:
        other.dispose()
