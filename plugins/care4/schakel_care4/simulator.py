"""A simulator of the Care4-style ECD API, seeded with fictional households (``fixtures.py``).

OAuth2 client credentials (``POST /oauth/token``) guard every other endpoint. Writes are
idempotent by ``Idempotency-Key``. ``POST /_control`` makes it fail or stall, for tests.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from schakel_care4 import fixtures
from schakel_care4.schemas import (
    Arrangement, ArrangementIn, Client, ConsentRecord, Document, DocumentIn, Dossier, Household, Note, NoteIn, Page,
    Referral, ReferralIn, ReferralPatch, StatusIn, Token,
)

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0)]
CLIENT_ID = "schakel"
CLIENT_SECRET = "care4-demo-secret"  # the simulator's own fictional credential


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(into: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Nested objects are merged key by key, so a change names only what changed."""
    merged = dict(into)
    for key, value in changes.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


@dataclass
class EcdState:
    data: dict[str, dict[str, Any]] = field(default_factory=fixtures.build)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    referrals: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrangements: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    seen_keys: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0
    fail_status: int | None = None
    fail_count: int | None = None
    delay: float = 0.0


def create_app(client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> FastAPI:
    app = FastAPI(title="Care4-style ECD API (simulator)", version="1.0.0",
                  description="Clients, households, dossiers, signals, consents, plans, notes and referrals of a "
                              "shelter's client records. OAuth2 client credentials. Fictional data only.")
    state = EcdState()
    app.state.ecd = state

    async def faults() -> None:
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.fail_status is not None:
            if state.fail_count is not None:
                if state.fail_count <= 0:
                    state.fail_status = state.fail_count = None
                    return
                state.fail_count -= 1
            raise HTTPException(state.fail_status, "simulated failure")

    async def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        await faults()
        token = (authorization or "").removeprefix("Bearer ").strip()
        if state.tokens.get(token, 0) < time.time():
            raise HTTPException(401, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"})

    Auth = Depends(authorised)

    def once(key: str | None, make: Any) -> Any:
        """Apply a write once per Idempotency-Key; a repeat returns the first result."""
        if key and key in state.seen_keys:
            state.duplicates += 1
            return state.seen_keys[key]
        result = make()
        if key:
            state.seen_keys[key] = result
        return result

    def page(items: list[Any], limit: int, offset: int, updated_since: str | None) -> dict[str, Any]:
        if updated_since:
            items = [i for i in items if i.get("updated_at", "") >= updated_since]
        return {"items": items[offset: offset + limit], "total": len(items), "limit": limit, "offset": offset}

    def get(kind: str, key: str) -> dict[str, Any]:
        item = state.data[kind].get(key)
        if item is None:
            raise HTTPException(404, f"no such {kind[:-1]}")
        return item

    @app.post("/oauth/token", response_model=Token, tags=["auth"])
    async def token(grant_type: Annotated[str, Form()], client_id: Annotated[str, Form()] = "",
                    client_secret: Annotated[str, Form()] = "") -> dict[str, Any]:
        await faults()
        if grant_type != "client_credentials":
            raise HTTPException(400, "unsupported_grant_type")
        if not (secrets.compare_digest(client_id, app_client_id) and secrets.compare_digest(client_secret, app_client_secret)):
            raise HTTPException(401, "invalid_client")
        value = secrets.token_urlsafe(24)
        state.tokens[value] = time.time() + 3600
        return {"access_token": value, "token_type": "bearer", "expires_in": 3600}

    app_client_id, app_client_secret = client_id, client_secret

    @app.get("/clients", response_model=Page[Client], dependencies=[Auth], tags=["clients"])
    async def list_clients(limit: Limit = 50, offset: Offset = 0, updated_since: str | None = None,
                           bsn: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None) -> dict[str, Any]:
        items = [c for c in state.data["clients"].values() if bsn in (None, c["bsn"])]
        return page(items, limit, offset, updated_since)

    @app.get("/clients/{client_id}", response_model=Client, dependencies=[Auth], tags=["clients"])
    async def show_client(client_id: str) -> dict[str, Any]:
        return get("clients", client_id)

    @app.get("/households", response_model=Page[Household], dependencies=[Auth], tags=["households"])
    async def list_households(limit: Limit = 50, offset: Offset = 0, updated_since: str | None = None,
                              member_bsn: Annotated[str | None, Query(pattern=r"^\d{9}$",
                                                                      description="An adult's or a child's BSN")] = None,
                              ) -> dict[str, Any]:
        def members(household: dict[str, Any]) -> set[str | None]:
            adults = {state.data["clients"][a]["bsn"] for a in household["adults"]}
            return adults | {child["bsn"] for child in household["children"]}

        items = [h for h in state.data["households"].values() if member_bsn is None or member_bsn in members(h)]
        return page(items, limit, offset, updated_since)

    @app.get("/households/{household_id}", response_model=Household, dependencies=[Auth], tags=["households"])
    async def show_household(household_id: str) -> dict[str, Any]:
        return get("households", household_id)

    @app.get("/dossiers", response_model=Page[Dossier], dependencies=[Auth], tags=["dossiers"])
    async def list_dossiers(limit: Limit = 50, offset: Offset = 0, client_id: str | None = None,
                            updated_since: str | None = None) -> dict[str, Any]:
        items = [d for d in state.data["dossiers"].values() if client_id in (None, d["client_id"])]
        return page(items, limit, offset, updated_since)

    @app.get("/dossiers/{dossier_id}", response_model=Dossier, dependencies=[Auth], tags=["dossiers"])
    async def show_dossier(dossier_id: str) -> dict[str, Any]:
        return get("dossiers", dossier_id)

    @app.put("/dossiers/{dossier_id}/status", response_model=Dossier, dependencies=[Auth], tags=["dossiers"])
    async def set_status(dossier_id: str, body: StatusIn,
                         idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        dossier = get("dossiers", dossier_id)

        def apply() -> dict[str, Any]:
            dossier["status"], dossier["updated_at"] = body.status, _now()
            return dossier

        return once(idempotency_key, apply)

    @app.get("/dossiers/{dossier_id}/consents", response_model=list[ConsentRecord], dependencies=[Auth], tags=["consents"])
    async def dossier_consents(dossier_id: str) -> list[dict[str, Any]]:
        client = get("dossiers", dossier_id)["client_id"]
        return [c for c in state.data["consents"].values() if c["client_id"] == client]

    @app.get("/dossiers/{dossier_id}/notes", response_model=list[Note], dependencies=[Auth], tags=["notes"])
    async def list_notes(dossier_id: str) -> list[dict[str, Any]]:
        get("dossiers", dossier_id)
        return [n for n in state.notes.values() if n["dossier_id"] == dossier_id]

    @app.post("/dossiers/{dossier_id}/notes", response_model=Note, status_code=201, dependencies=[Auth], tags=["notes"])
    async def add_note(dossier_id: str, body: NoteIn, idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        get("dossiers", dossier_id)

        def apply() -> dict[str, Any]:
            note = {"id": f"N-{uuid.uuid4().hex[:8]}", "dossier_id": dossier_id, "created_at": _now(), **body.model_dump()}
            state.notes[note["id"]] = note
            return note

        return once(idempotency_key, apply)

    @app.get("/dossiers/{dossier_id}/documents", response_model=list[Document], dependencies=[Auth], tags=["plans"])
    async def list_documents(dossier_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        get("dossiers", dossier_id)
        return [d for d in state.documents.values() if d["dossier_id"] == dossier_id and kind in (None, d["kind"])]

    @app.post("/dossiers/{dossier_id}/documents", response_model=Document, status_code=201, dependencies=[Auth], tags=["plans"])
    async def add_document(dossier_id: str, body: DocumentIn,
                           idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        get("dossiers", dossier_id)

        def apply() -> dict[str, Any]:
            now = _now()
            doc = {"id": f"DOC-{uuid.uuid4().hex[:8]}", "dossier_id": dossier_id, "created_at": now, "updated_at": now,
                   **body.model_dump()}
            state.documents[doc["id"]] = doc
            return doc

        return once(idempotency_key, apply)

    @app.get("/documents/{document_id}", response_model=Document, dependencies=[Auth], tags=["plans"])
    async def show_document(document_id: str) -> dict[str, Any]:
        if document_id not in state.documents:
            raise HTTPException(404, "no such document")
        return state.documents[document_id]

    @app.put("/documents/{document_id}", response_model=Document, dependencies=[Auth], tags=["plans"])
    async def update_document(document_id: str, body: DocumentIn) -> dict[str, Any]:
        if document_id not in state.documents:
            raise HTTPException(404, "no such document")
        state.documents[document_id].update({**body.model_dump(), "updated_at": _now()})
        return state.documents[document_id]

    @app.get("/referrals", response_model=Page[Referral], dependencies=[Auth], tags=["referrals"])
    async def list_referrals(limit: Limit = 50, offset: Offset = 0, household_id: str | None = None,
                             dossier_id: str | None = None, reference: str | None = None,
                             updated_since: str | None = None) -> dict[str, Any]:
        items = [r for r in state.referrals.values() if household_id in (None, r["household_id"])
                 and dossier_id in (None, r["dossier_id"]) and reference in (None, r["reference"])]
        return page(items, limit, offset, updated_since)

    @app.post("/referrals", response_model=Referral, status_code=201, dependencies=[Auth], tags=["referrals"])
    async def add_referral(body: ReferralIn, idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        def apply() -> dict[str, Any]:
            now = _now()
            referral = {"id": f"R-{uuid.uuid4().hex[:8]}", "created_at": now, "updated_at": now, **body.model_dump()}
            state.referrals[referral["id"]] = referral
            return referral

        return once(idempotency_key, apply)

    @app.put("/referrals/{referral_id}", response_model=Referral, dependencies=[Auth], tags=["referrals"])
    async def update_referral(referral_id: str, body: ReferralIn) -> dict[str, Any]:
        if referral_id not in state.referrals:
            raise HTTPException(404, "no such referral")
        state.referrals[referral_id].update({**body.model_dump(), "updated_at": _now()})
        return state.referrals[referral_id]

    @app.patch("/referrals/{referral_id}", response_model=Referral, dependencies=[Auth], tags=["referrals"])
    async def change_referral(referral_id: str, body: ReferralPatch,
                              idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        if referral_id not in state.referrals:
            raise HTTPException(404, "no such referral")
        referral = state.referrals[referral_id]

        def apply() -> dict[str, Any]:
            changes = body.model_dump(exclude_none=True, exclude={"details"})
            referral.update({**changes, "details": _merge(referral["details"], body.details), "updated_at": _now()})
            return dict(referral)

        return once(idempotency_key, apply)

    @app.get("/clients/{client_id}/arrangements", response_model=list[Arrangement], dependencies=[Auth], tags=["arrangements"])
    async def list_arrangements(client_id: str) -> list[dict[str, Any]]:
        get("clients", client_id)
        return [a for a in state.arrangements.values() if a["client_id"] == client_id]

    @app.put("/clients/{client_id}/arrangements/{allocation_number}", response_model=Arrangement, dependencies=[Auth],
             tags=["arrangements"])
    async def put_arrangement(client_id: str, allocation_number: str, body: ArrangementIn) -> dict[str, Any]:
        get("clients", client_id)
        key = f"{client_id}:{allocation_number}"
        current = state.arrangements.get(key, {"id": f"A-{uuid.uuid4().hex[:8]}", "client_id": client_id})
        current.update({**body.model_dump(), "allocation_number": allocation_number, "updated_at": _now()})
        state.arrangements[key] = current
        return current

    # --- test controls (not part of the ECD API) ---------------------------------------------------

    @app.post("/_control", include_in_schema=False)
    async def control(request: Request) -> dict[str, Any]:
        data = await request.json()
        state.fail_status, state.fail_count = data.get("fail_status"), data.get("count")
        state.delay = float(data.get("delay", 0))
        return {"fail_status": state.fail_status, "count": state.fail_count, "delay": state.delay}

    @app.get("/_stats", include_in_schema=False)
    async def stats() -> dict[str, Any]:
        return {"notes": len(state.notes), "documents": len(state.documents), "referrals": len(state.referrals),
                "arrangements": len(state.arrangements), "duplicates": state.duplicates}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec.setdefault("components", {})["securitySchemes"] = {
                "oauth2": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}}}}
            for path, operations in spec["paths"].items():
                if path != "/oauth/token":
                    for operation in operations.values():
                        operation["security"] = [{"oauth2": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(HTTPException)
    async def _errors(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return app


if __name__ == "__main__":  # writes the plugin's OpenAPI document
    import json
    from pathlib import Path

    target = Path(__file__).with_name("openapi.json")
    target.write_text(json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {target}")
