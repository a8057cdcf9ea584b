"""Reading from the Care4-style ECD: OAuth2 client credentials, the shared HTTP client, and the
core's named retry policy. Writes never go through here: they are exchanges, queued in the outbox
and delivered by :class:`~schakel_care4.connector.Care4Connector`, so an ECD that is down loses
nothing."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from gateway.core.partners import PartnerView
from gateway.core.problems import Problem
from gateway.core.retry import get_policy

# Tokens per (partner, endpoint, client id); a token is reused until shortly before it expires.
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}


class Care4Unavailable(Exception):
    """The ECD did not answer usefully after the retry policy's attempts."""


RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Care4Client:
    def __init__(self, http: httpx.AsyncClient, partner: PartnerView, retry_scale: float = 1.0) -> None:
        self.http = http
        self.partner = partner
        self.base = partner.endpoint.rstrip("/")
        self.retrying = get_policy("standard").retrying(retry_scale)

    async def token(self, refresh: bool = False) -> str:
        client_id = str(self.partner.config.get("client_id") or "")
        key = (self.partner.id, self.base, client_id)
        cached = _TOKENS.get(key)
        if cached and not refresh and cached[1] > time.time() + 30:
            return cached[0]
        response = await self.http.post(self.base + str(self.partner.config.get("token_path") or "/oauth/token"), data={
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": self.partner.secrets.get("client_secret", "")})
        response.raise_for_status()
        body = response.json()
        _TOKENS[key] = (body["access_token"], time.time() + float(body.get("expires_in", 300)))
        return body["access_token"]

    async def get(self, path: str, **params: Any) -> Any:
        try:
            async for attempt in self.retrying:
                with attempt:
                    response = await self.http.get(self.base + path, params=params or None,
                                                   headers={"Authorization": f"Bearer {await self.token()}"})
                    if response.status_code == 401:  # expired or revoked: one fresh token
                        response = await self.http.get(self.base + path, params=params or None,
                                                       headers={"Authorization": f"Bearer {await self.token(refresh=True)}"})
                    if response.status_code == 404:
                        raise Problem("not-found", "The ECD has no such record.")
                    response.raise_for_status()
                    return response.json()
        except Problem:
            raise
        except (httpx.HTTPError, TimeoutError) as exc:
            raise Care4Unavailable(type(exc).__name__) from None
        raise Care4Unavailable("no attempt made")  # pragma: no cover - AsyncRetrying always attempts

    async def dossier_bundle(self, dossier_id: str) -> dict[str, Any]:
        """What a flow needs about one dossier: the dossier, its client and household, and the
        client's consents. The other party comes from *this* dossier only — never from his own
        dossier, even where he is a client too."""
        if not RECORD_ID.fullmatch(dossier_id):
            # An id is one path segment of the ECD's API: anything else names no record (and
            # must never become a different path).
            raise Problem("not-found", "The ECD has no such record.")
        dossier = await self.get(f"/dossiers/{dossier_id}")
        client = await self.get(f"/clients/{dossier['client_id']}")
        household = await self.get(f"/households/{dossier['household_id']}")
        consents = await self.get(f"/dossiers/{dossier_id}/consents")
        return {"dossier": dossier, "client": client, "household": household, "consents": consents}
