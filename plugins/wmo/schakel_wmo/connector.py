"""The ``wmo`` connector type: iWmo messages to a municipality."""

from __future__ import annotations

import httpx
from pydantic import Field

from gateway.core.connectors import BearerConfig, ConnectorManifest, Delivery, DeliveryResult, HttpConnector
from schakel_wmo import iwmo


class WmoConfig(BearerConfig):
    aanbieder_agb: str | None = Field(default=None, pattern=r"^\d{8}$",
                                      description="Our AGB code as this municipality knows us: the Afzender of what we send")


MANIFEST = ConnectorManifest(
    id="wmo",
    version="0.2.0",
    title="iWmo 3.2 and ondersteuningsplan",
    partner_kind="gemeente",
    messages_in=('WMO301', 'WMO316', 'WMO319', 'ondersteuningsplan'),
    messages_out=('WMO302', 'WMO305', 'WMO307', 'WMO315', 'WMO317', 'WMO320'),
    purposes=('wmo_uitvoering',),
    config_schema=WmoConfig,
)


class WmoConnector(HttpConnector):
    manifest = MANIFEST

    def classify(self, response: httpx.Response, delivery: Delivery | None = None) -> DeliveryResult:
        result = super().classify(response, delivery)
        if result.outcome != "delivered" and delivery is not None and delivery.attempt > 1 and _retourcode(response) == iwmo.NOT_UNIQUE:
            # Our BerichtIdentificatie is fixed per exchange: on a retry, "identification not unique"
            # means an earlier attempt arrived and only its answer was lost.
            return DeliveryResult("delivered", f"HTTP {response.status_code}: retourcode 9056 on attempt "
                                  f"{delivery.attempt}, so an earlier attempt arrived", response.status_code,
                                  {**self.receipt(response), "retourcode": iwmo.NOT_UNIQUE})
        return result


def _retourcode(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("retourcode")) if isinstance(body, dict) and body.get("retourcode") else None
