"""The ``wmo`` connector type."""

from __future__ import annotations

from gateway.core.connectors import BearerConfig, ConnectorManifest, HttpConnector

MANIFEST = ConnectorManifest(
    id="wmo",
    version="0.1.0",
    title="iWmo 3.2 and ondersteuningsplan",
    partner_kind="gemeente",
    messages_in=('WMO301', 'WMO316', 'WMO319', 'ondersteuningsplan'),
    messages_out=('WMO302', 'WMO305', 'WMO307', 'WMO315', 'WMO317'),
    purposes=('wmo_uitvoering',),
    config_schema=BearerConfig,
)


class WmoConnector(HttpConnector):
    manifest = MANIFEST
