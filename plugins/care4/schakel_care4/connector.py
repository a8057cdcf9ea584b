"""The ``care4`` connector type: writes into the organisation's own ECD, through the outbox.

The mapped body names its ``operation`` and the record it belongs to::

    {"operation": "dossier_update", "dossier_id": "D-0001", "note": {...}, "status": {...}}
    {"operation": "document", "dossier_id": "D-0001", "document": {...}}
    {"operation": "referral", "referral": {...}}
    {"operation": "arrangement", "client_id": "C-0001", "arrangement": {...}}
    {"operation": "arrangements_sync", "bsn": "...", "municipality": "0384", "arrangements": [...]}
    {"operation": "referral_open", "link": {"household_member_bsns": [...]} | {"client_bsns": [...]},
     "referral": {..., "reference": "..."}}
    {"operation": "referral_update", "reference": "...", "changes": {"deadline": ..., "status": ..., "details": {...}}}

``arrangements_sync`` makes the client's arrangements from that municipality what the message says:
an iWmo 301 carries *all* current allocations, so one it no longer names has ended.

``referral_open`` links the referral to the household one of the BSNs belongs to, or to the active
dossier of the first BSN that is a client, and creates it unless one with its reference exists.
``referral_update`` changes the referral with that reference; one not (yet) in the ECD is retried,
since the exchange that opens it may still be on its way.

Each write carries the exchange's idempotency key (with a suffix per step), so a retried
exchange never writes a note twice.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from gateway.core.connectors import (ConnectorManifest, Delivery, DeliveryResult, HttpConnector, no_answer_in_time,
                                     transport_failure)
from gateway.core import transport
from schakel_care4.client import Care4Client


class NotYet(Exception):
    """What the write needs is not in the ECD yet; a later attempt may find it."""


class Care4Config(BaseModel):
    client_id: str = "schakel"
    client_secret: SecretStr | None = None
    token_path: str = "/oauth/token"


MANIFEST = ConnectorManifest(
    id="care4",
    version="1.0.0",
    title="Care4-style ECD (the organisation's client records)",
    partner_kind="ecd",
    messages_in=(),
    messages_out=("dossier_update", "document", "referral", "referral_update", "arrangement"),
    purposes=("hulpverlening", "dossiervorming"),
    config_schema=Care4Config,
    description="Reads clients, households and dossiers; writes notes, status, drafts, referrals and arrangements.",
)


class Care4Connector(HttpConnector):
    manifest = MANIFEST
    receipt_key = "id"

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        body: dict[str, Any] = json.loads(delivery.body)
        client = Care4Client(delivery.http, delivery.partner)
        try:
            async with asyncio.timeout(delivery.deadline):
                token = await client.token()
                resolve = self.RESOLVERS.get(body.get("operation"))
                if resolve is not None:
                    try:
                        body = await resolve(delivery, client, token, body)
                    except httpx.HTTPStatusError as exc:
                        if exc.response.status_code != 401:
                            raise
                        token = await client.token(refresh=True)
                        body = await resolve(delivery, client, token, body)
                if body.get("operation") == "existing":
                    return DeliveryResult("delivered", "already in the ECD", 200, {"status": 200, "reference": body["id"]})
                if body.get("superseded"):
                    return DeliveryResult("delivered", "superseded: the ECD already reflects a newer message; nothing "
                                          "written", 200, {"status": 200, "superseded": True})
                steps = self._steps(body)
                last = None
                for suffix, method, path, payload in steps:
                    for fresh in (False, True):
                        if fresh:  # the ECD no longer knows our token: one new one
                            token = await client.token(refresh=True)
                        last = await transport.request(
                            delivery.http, method, client.base + path, json=payload, timeout=delivery.deadline,
                            headers={"Authorization": f"Bearer {token}",
                                     "Idempotency-Key": f"{delivery.idempotency_key}:{suffix}",
                                     "X-Correlation-ID": delivery.correlation_id, **delivery.headers})
                        if last.status_code != 401:
                            break
                    if last.status_code >= 300:
                        return self.classify(last)
        except TimeoutError:
            return no_answer_in_time(delivery)
        except httpx.HTTPStatusError as exc:
            return self.classify(exc.response)
        except httpx.TransportError as exc:
            return transport_failure(exc)
        except NotYet as exc:
            return DeliveryResult("retry", str(exc))
        except KeyError as exc:
            return DeliveryResult("reject", f"the ECD cannot take this: {exc.args[0] if exc.args else 'missing field'}")
        except ValueError:
            return DeliveryResult("reject", "the mapped body does not name a known ECD operation")
        assert last is not None
        return DeliveryResult("delivered", f"HTTP {last.status_code}", last.status_code, self.receipt(last))

    @staticmethod
    def _steps(body: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
        operation = body["operation"]
        if operation == "dossier_update":
            steps = []
            if body.get("note"):
                steps.append(("note", "POST", f"/dossiers/{body['dossier_id']}/notes", body["note"]))
            if body.get("status"):
                steps.append(("status", "PUT", f"/dossiers/{body['dossier_id']}/status", body["status"]))
            if not steps:
                raise ValueError("empty dossier update")
            return steps
        if operation == "document":
            return [("document", "POST", f"/dossiers/{body['dossier_id']}/documents", body["document"])]
        if operation == "referral":
            return [("referral", "POST", "/referrals", body["referral"])]
        if operation == "referral_patch":
            return [("referral", "PATCH", f"/referrals/{body['referral_id']}", body["changes"])]
        if operation == "arrangement":
            number = body["arrangement"]["allocation_number"]
            return [("arrangement", "PUT", f"/clients/{body['client_id']}/arrangements/{number}", body["arrangement"])]
        if operation == "resolved_sync":
            return [(f"arrangement-{a['allocation_number']}", "PUT",
                     f"/clients/{body['client_id']}/arrangements/{a['allocation_number']}", a) for a in body["arrangements"]]
        raise ValueError(operation)

    @staticmethod
    async def _open_referral(delivery: Delivery, client: Care4Client, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Link the referral to its household or dossier; an existing one with its reference stays."""
        headers = {"Authorization": f"Bearer {token}"}

        async def items(path: str, **params: str) -> list[dict[str, Any]]:
            found = await transport.request(delivery.http, "GET", client.base + path, params=params, headers=headers)
            found.raise_for_status()
            return found.json()["items"]

        referral = dict(body["referral"])
        existing = await items("/referrals", reference=referral["reference"])
        if existing:
            return {"operation": "existing", "id": existing[0]["id"]}
        link = body.get("link") or {}
        for bsn in link.get("household_member_bsns") or []:
            households = await items("/households", member_bsn=bsn)
            if len(households) == 1:
                referral["household_id"] = households[0]["id"]
                break
        for bsn in link.get("client_bsns") or []:
            clients = await items("/clients", bsn=bsn)
            dossiers = await items("/dossiers", client_id=clients[0]["id"]) if len(clients) == 1 else []
            active = [d for d in dossiers if d["status"] != "gesloten"]
            if active:
                referral["dossier_id"] = active[0]["id"]
                break
        return {"operation": "referral", "referral": referral}

    @staticmethod
    async def _update_referral(delivery: Delivery, client: Care4Client, token: str, body: dict[str, Any]) -> dict[str, Any]:
        found = await transport.request(delivery.http, "GET", client.base + "/referrals",
                                        params={"reference": body["reference"]},
                                        headers={"Authorization": f"Bearer {token}"})
        found.raise_for_status()
        items = found.json()["items"]
        if not items:
            raise NotYet("the referral to change is not in the ECD yet")
        return {"operation": "referral_patch", "referral_id": items[0]["id"], "changes": body.get("changes") or {}}

    @staticmethod
    async def _sync_steps(delivery: Delivery, client: Care4Client, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Resolve the client by BSN and add the municipality's arrangements that have ended."""
        headers = {"Authorization": f"Bearer {token}"}
        found = await transport.request(delivery.http, "GET", client.base + "/clients", params={"bsn": body["bsn"]},
                                        headers=headers)
        found.raise_for_status()
        items = found.json()["items"]
        if len(items) != 1:
            raise KeyError("no single ECD client with this BSN")
        client_id = items[0]["id"]
        current = await transport.request(delivery.http, "GET", client.base + f"/clients/{client_id}/arrangements",
                                          headers=headers)
        current.raise_for_status()
        mine = [a for a in current.json() if a["municipality"] == body["municipality"]]
        as_of = body.get("as_of")
        newest = max((a.get("as_of") or "" for a in mine), default="")
        if as_of and newest and as_of < newest:
            # An older 301 (retried, or replayed from a dead letter) after a newer one was applied:
            # writing it would reopen what the newer one ended.
            return {"operation": "resolved_sync", "client_id": client_id, "arrangements": [], "superseded": True}
        named = {a["allocation_number"] for a in body["arrangements"]}
        ended = [{**{k: v for k, v in a.items() if k not in ("id", "client_id", "updated_at")}, "status": "beeindigd",
                  "as_of": as_of}
                 for a in mine if a["status"] == "actief" and a["allocation_number"] not in named]
        arrangements = [{**a, "municipality": body["municipality"], "status": "actief", "as_of": as_of}
                        for a in body["arrangements"]]
        return {"operation": "resolved_sync", "client_id": client_id, "arrangements": [*arrangements, *ended]}

    # Operations that first read the ECD to find what they write to.
    RESOLVERS: ClassVar[dict[str, Any]] = {
        "arrangements_sync": _sync_steps,
        "referral_open": _open_referral,
        "referral_update": _update_referral,
    }
