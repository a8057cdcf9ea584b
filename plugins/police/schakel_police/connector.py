"""The ``police`` connector type: police units, municipalities and other care organisations.

A partner of this type says what it is in its identifiers: ``soort`` (``politie``, ``gemeente``
or ``organisatie``), a municipality its ``gemeentecode``, a police unit its ``werkgebied`` (the
gemeentecodes it serves, comma-separated). Those decide what it may send: a notice only for a
municipality it serves, an extension or withdrawal only as that municipality's mayor.

Two kinds of message leave to these partners:

- a warm handover is announced as a VNG Notificaties API notification, posted to the partner's
  callback (``notificaties_path``); the partner then fetches the handover with its own token;
- the answer to an information request is posted to ``antwoorden_path``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from gateway.core.connectors import ConnectorManifest, Delivery, DeliveryResult, HttpConnector

Soort = Literal["politie", "gemeente", "organisatie"]
HANDOVER, ANSWER = "warme_overdracht", "informatieverzoek_antwoord"


class PoliceConfig(BaseModel):
    token: SecretStr | None = None  # sent as the bearer token on our calls to the partner's callbacks
    notificaties_path: str = "/notificaties"
    antwoorden_path: str = "/informatieverzoeken/antwoorden"


MANIFEST = ConnectorManifest(
    id="police",
    version="1.0.0",
    title="Police and municipality contacts",
    partner_kind="politie_gemeente",
    messages_in=("huisverbod", "zorgmelding", "informatieverzoek", "ontvangstbevestiging"),
    messages_out=(HANDOVER, ANSWER),
    purposes=("huisverbod", "hulpverlening", "informatieverstrekking", "warme_overdracht"),
    config_schema=PoliceConfig,
    description="Huisverbod notices and zorgmeldingen in; answers to information requests and warm handovers "
                "(VNG Notificaties API, then fetched by the partner) out.",
)


def soort_of(identifiers: dict[str, Any]) -> str:
    return str(identifiers.get("soort") or "organisatie")


def served_codes(identifiers: dict[str, Any]) -> set[str]:
    """The municipalities a partner may send notices for."""
    codes = {code.strip() for code in str(identifiers.get("werkgebied") or "").split(",") if code.strip()}
    if identifiers.get("gemeentecode"):
        codes.add(str(identifiers["gemeentecode"]))
    return codes


class PoliceConnector(HttpConnector):
    manifest = MANIFEST

    def url(self, delivery: Delivery) -> str:
        key = "notificaties_path" if delivery.message_type == HANDOVER else "antwoorden_path"
        path = str(delivery.partner.config.get(key) or PoliceConfig.model_fields[key].default)
        return delivery.partner.endpoint.rstrip("/") + "/" + path.lstrip("/")

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        if delivery.message_type == HANDOVER:
            # Only the notification is pushed; the handover itself waits to be fetched.
            notification = json.loads(delivery.body)["notificatie"]
            delivery = dataclasses.replace(delivery, body=json.dumps(notification).encode())
        return await super().deliver(delivery)


@dataclasses.dataclass(frozen=True)
class Contact:
    """The registered police unit, municipality or organisation behind a partner token."""

    partner_id: str
    name: str
    soort: str
    codes: frozenset[str]
