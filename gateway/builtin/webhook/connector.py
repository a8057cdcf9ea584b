"""The ``webhook`` connector type: POST minimal JSON to a partner that de-duplicates by key."""

from __future__ import annotations

from gateway.core.connectors import BearerConfig, ConnectorManifest, HttpConnector

MANIFEST = ConnectorManifest(
    id="webhook",
    version="1.0.0",
    title="Generic JSON webhook",
    partner_kind="generic",
    messages_in=(),
    messages_out=("notice",),
    purposes=("signalering",),
    config_schema=BearerConfig,
    description="Posts a minimal JSON notice to a partner endpoint with a stable Idempotency-Key.",
)


class WebhookConnector(HttpConnector):
    manifest = MANIFEST
