"""Bearer tokens and roles.

Tokens are 32 random bytes shown once; the store keeps only their SHA-256 (a slow hash buys
nothing for a random secret of that size). A ``partner`` token is bound to one partner and
reaches only that partner's endpoints and messages.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core import audit
from gateway.core.models import ApiToken, utcnow

ROLES = ("beheerder", "hulpverlener", "privacy", "partner")
TOKEN_PREFIX = "sk_"


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: str
    partner_id: str | None = None
    access_point: str | None = None

    def actor(self, on_behalf_of: str | None = None) -> audit.Actor:
        return audit.Actor(user_id=self.name, role=self.role, on_behalf_of=on_behalf_of, access_point=self.access_point)

    @property
    def source(self) -> str:
        """How exchanges name where they came from."""
        return f"partner:{self.partner_id}" if self.partner_id else f"{self.role}:{self.name}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: str, *, partner_id: str | None = None,
                 expires_in: timedelta | None = None, actor: audit.Actor | None = None) -> tuple[ApiToken, str]:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "partner") != (partner_id is not None):
        raise ValueError("a partner token names exactly one partner; other roles name none")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(id=str(uuid.uuid4()), name=name, token_hash=_hash(plain), role=role, partner_id=partner_id,
                   expires_at=(utcnow() + expires_in) if expires_in else None)
    session.add(row)
    session.flush()
    audit.record(session, "token.created", actor=actor or audit.Actor.system("cli"), action_code="C",
                 partner_id=partner_id, detail=f"{role} token {row.id}")
    return row, plain


def revoke_token(session: Session, token_id: str, actor: audit.Actor | None = None) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    TokenCache.revoked()
    audit.record(session, "token.revoked", actor=actor or audit.Actor.system("cli"), action_code="U",
                 detail=f"{row.role} token {row.id}")
    return True


def authenticate(session: Session, token: str, now: datetime | None = None) -> Principal | None:
    found = authenticate_until(session, token, now)
    return found[0] if found else None


def authenticate_until(session: Session, token: str,
                       now: datetime | None = None) -> tuple[Principal, datetime | None] | None:
    """The token's principal and when the token expires (None: never), if it is valid now."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    now = now or utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return Principal(token_id=row.id, name=row.name, role=row.role, partner_id=row.partner_id), row.expires_at


class TokenCache:
    """Tokens this process found valid a moment ago, so that a caller's burst of requests costs one
    database read instead of one each.

    An entry is trusted for at most ``seconds`` and never past the token's own expiry. A token
    revoked in this process is refused at once (every entry made before the revocation is
    dropped); one revoked elsewhere (``gateway tokens revoke`` runs in its own process) is refused
    by this process at the latest ``seconds`` later. ``seconds=0`` turns the cache off. Only valid
    tokens are kept, under their SHA-256, so unknown tokens cannot fill it.
    """

    _generation = 0  # bumped by every revocation in this process

    def __init__(self, seconds: float, size: int = 4096) -> None:
        self.seconds = seconds
        self.size = size
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal, float, int]] = {}

    @classmethod
    def revoked(cls) -> None:
        cls._generation += 1

    def get(self, token: str) -> Principal | None:
        if self.seconds <= 0:
            return None
        key = _hash(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            principal, valid_until, generation = entry
            if valid_until <= time.monotonic() or generation != TokenCache._generation:
                del self._entries[key]
                return None
            return principal

    def put(self, token: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.seconds <= 0:
            return
        trusted = self.seconds
        if expires_at is not None:
            trusted = min(trusted, (expires_at - utcnow()).total_seconds())
        if trusted <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))  # the oldest entry
            self._entries[_hash(token)] = (principal, time.monotonic() + trusted, TokenCache._generation)
