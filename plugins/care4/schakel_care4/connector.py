"""The ``care4`` connector type."""

from __future__ import annotations

from gateway.core.connectors import BearerConfig, ConnectorManifest, HttpConnector

MANIFEST = ConnectorManifest(
    id="care4",
    version="0.1.0",
    title="Care4-style ECD (the organisation's client records)",
    partner_kind="ecd",
    messages_in=(),
    messages_out=('note', 'status', 'draft_plan', 'referral', 'arrangement'),
    purposes=('hulpverlening',),
    config_schema=BearerConfig,
)


class Care4Connector(HttpConnector):
    manifest = MANIFEST
