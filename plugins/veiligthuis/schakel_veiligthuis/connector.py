"""The ``veiligthuis`` connector type."""

from __future__ import annotations

from gateway.core.connectors import BearerConfig, ConnectorManifest, HttpConnector

MANIFEST = ConnectorManifest(
    id="veiligthuis",
    version="0.1.0",
    title="Veilig Thuis melding and feedback",
    partner_kind="veilig_thuis",
    messages_in=('ontvangstbevestiging', 'terugkoppeling'),
    messages_out=('melding',),
    purposes=('melding_huiselijk_geweld',),
    config_schema=BearerConfig,
)


class VeiligThuisConnector(HttpConnector):
    manifest = MANIFEST
