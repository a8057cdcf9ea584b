"""Bearer tokens as a caller meets them over HTTP, with the cache of tokens found valid."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from sqlalchemy import update

from gateway.app import create_app
from gateway.core.auth import create_token, revoke_token
from gateway.core.models import ApiToken, utcnow
from tests.conftest import LiveGateway, make_settings
from tests.servers import ThreadServer


class _Gateway(LiveGateway):
    """A running gateway whose token cache keeps tokens for ``seconds``."""

    def __init__(self, database_url, tmp_path, seconds: float) -> None:
        self._server = ThreadServer(create_app(make_settings(database_url, tmp_path, token_cache_seconds=seconds)))

    def __enter__(self) -> "_Gateway":
        super().__init__(self._server.__enter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def status(self, token: str) -> int:
        return httpx.get(self.url + "/api/v1/partners", headers={"Authorization": f"Bearer {token}"},
                         timeout=10).status_code

    def new_token(self, **kwargs) -> tuple[str, str]:
        with self.gw.store.transaction() as session:
            row, plain = create_token(session, "test-beheerder", "beheerder", **kwargs)
        return row.id, plain

    def revoke_elsewhere(self, token_id: str) -> None:
        """What ``gateway tokens revoke`` does from its own process: this process's cache is not told."""
        with self.gw.store.transaction() as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=utcnow()))


def test_a_token_revoked_in_another_process_is_refused_once_the_cache_time_has_passed(database_url, tmp_path):
    with _Gateway(database_url, tmp_path, 2) as gateway:
        token_id, token = gateway.new_token()
        assert gateway.status(token) == 200
        gateway.revoke_elsewhere(token_id)
        assert gateway.status(token) == 200  # trusted for at most two seconds more, as configured
        time.sleep(2.1)
        assert gateway.status(token) == 401


def test_a_token_revoked_in_this_process_is_refused_at_once(database_url, tmp_path):
    with _Gateway(database_url, tmp_path, 60) as gateway:
        token_id, token = gateway.new_token()
        assert gateway.status(token) == 200
        with gateway.gw.store.transaction() as session:
            assert revoke_token(session, token_id)
        assert gateway.status(token) == 401


def test_without_the_cache_every_request_asks_the_database(database_url, tmp_path):
    with _Gateway(database_url, tmp_path, 0) as gateway:
        token_id, token = gateway.new_token()
        assert gateway.status(token) == 200
        gateway.revoke_elsewhere(token_id)
        assert gateway.status(token) == 401


def test_a_cached_token_is_never_trusted_past_its_expiry(database_url, tmp_path):
    with _Gateway(database_url, tmp_path, 60) as gateway:
        _, token = gateway.new_token(expires_in=timedelta(seconds=1))
        assert gateway.status(token) == 200
        time.sleep(1.1)
        assert gateway.status(token) == 401


def test_unknown_tokens_are_not_kept(database_url, tmp_path):
    with _Gateway(database_url, tmp_path, 60) as gateway:
        for i in range(20):
            assert gateway.status(f"sk_unknown-{i}") == 401
        assert gateway.gw.tokens._entries == {}
