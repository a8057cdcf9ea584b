"""The policy asks the plugins whether recorded evidence still holds, and fails closed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.core.hookspecs import hookimpl
from gateway.core.runtime import Gateway

EVIDENCE = {"decided_by": "test-hulpverlener", "decided_at": "2026-12-06T09:00:00+01:00", "reason": "acuut gevaar"}


class Lapsed:
    @hookimpl
    def basis_still_holds(self, check):
        return "the danger has passed" if check.basis == "vitaal_belang" else None


class Broken:
    @hookimpl
    def basis_still_holds(self, check):
        raise RuntimeError("a plugin's own bug")


class Silent:
    @hookimpl
    def basis_still_holds(self, check):
        return None


def recheck(settings, plugin, basis: str = "vitaal_belang"):
    gw = Gateway(settings, plugins=[plugin])
    try:
        exchange = SimpleNamespace(route_id="webhook.notice", legal_basis=basis, consent_id=None, subject=None,
                                   basis_evidence_encrypted=gw.box.encrypt_json(EVIDENCE))
        return gw.policy.recheck(session=None, exchange=exchange, partner=SimpleNamespace(id="p", connector_type="webhook"))
    finally:
        gw.store.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_plugin_that_says_the_evidence_lapsed_refuses_and_one_that_has_no_say_allows(settings):
    lapsed = recheck(settings, Lapsed())
    assert not lapsed.allowed and lapsed.reason == "the basis vitaal_belang no longer holds: the danger has passed"
    assert recheck(settings, Silent()).allowed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_plugin_whose_check_fails_refuses_rather_than_lets_it_go(settings):
    decision = recheck(settings, Broken())
    assert not decision.allowed and "could not be confirmed" in decision.reason
