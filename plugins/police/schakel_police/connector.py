"""The ``police`` connector type."""

from __future__ import annotations

from gateway.core.connectors import BearerConfig, ConnectorManifest, HttpConnector

MANIFEST = ConnectorManifest(
    id="police",
    version="0.1.0",
    title="Police and municipality contacts",
    partner_kind="politie_gemeente",
    messages_in=('huisverbod', 'zorgmelding', 'informatieverzoek'),
    messages_out=('warme_overdracht', 'informatieverzoek_antwoord'),
    purposes=('huisverbod', 'warme_overdracht'),
    config_schema=BearerConfig,
)


class PoliceConnector(HttpConnector):
    manifest = MANIFEST
