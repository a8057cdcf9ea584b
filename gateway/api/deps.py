"""Shared dependencies: the runtime, the caller, and who may call what."""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from gateway.core.auth import Principal, authenticate_until
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway


async def get_gateway(request: Request) -> Gateway:
    # async although it awaits nothing: FastAPI runs a plain ``def`` dependency on a worker thread.
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def authenticate_request(request: Request) -> Principal:
    """The caller of this request, from its bearer token (401 without a valid one)."""
    gw: Gateway = request.app.state.gateway
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem("unauthenticated", "Send a bearer token in the Authorization header.",
                      headers={"WWW-Authenticate": "Bearer"})

    token = token.strip()

    def _check() -> Principal | None:
        with gw.store.reading() as session:
            found = authenticate_until(session, token)
        if found is None:
            return None
        gw.tokens.put(token, *found)
        return found[0]

    principal = gw.tokens.get(token) or await run_in_threadpool(_check)
    if principal is None:
        raise Problem("unauthenticated", "The token is unknown, expired or revoked.", headers={"WWW-Authenticate": "Bearer"})
    client = request.client.host if request.client else None
    return Principal(principal.token_id, principal.name, principal.role, principal.partner_id, client)


async def get_principal(request: Request) -> Principal:
    return await authenticate_request(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str) -> Callable[..., Principal]:
    """Declare which roles may call an endpoint; the role matrix test reads these."""

    # One dependency taking only the request: FastAPI resolves every level of a dependency chain
    # on every request, and this one is on every authenticated endpoint.
    async def _dependency(request: Request) -> Principal:
        principal = await authenticate_request(request)
        if principal.role not in roles:
            raise Problem("forbidden", "Your role may not do this.")
        return principal

    _dependency.roles = roles  # type: ignore[attr-defined]
    return _dependency


Admin = Annotated[Principal, Depends(require("beheerder"))]
Staff = Annotated[Principal, Depends(require("beheerder", "hulpverlener", "privacy"))]
StaffOrPartner = Annotated[Principal, Depends(require("beheerder", "hulpverlener", "privacy", "partner"))]
Submitter = Annotated[Principal, Depends(require("beheerder", "hulpverlener", "partner"))]
