"""The ``veiligthuis`` connector type: a melding, as XML, to one Veilig Thuis region."""

from __future__ import annotations

from gateway.core.connectors import BearerConfig, ConnectorManifest, HttpConnector

MANIFEST = ConnectorManifest(
    id="veiligthuis",
    version="1.0.0",
    title="Veilig Thuis (melding and feedback)",
    partner_kind="veilig_thuis",
    messages_in=("vt_terugkoppeling",),
    messages_out=("vt_melding",),
    purposes=("melding_huiselijk_geweld",),
    config_schema=BearerConfig,
    description="Sends meldingen under the meldcode (VT melding schema 1.0) to the region responsible; "
                "receives receipts, decisions and end-of-involvement feedback.",
)


class VeiligThuisConnector(HttpConnector):
    manifest = MANIFEST
