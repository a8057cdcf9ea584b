"""The policy asks the plugins whether recorded evidence still holds, and fails closed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from gateway.core.hookspecs import hookimpl
from gateway.core.runtime import Gateway

def evidence(hours_ago: float = 1.0) -> dict[str, str]:
    decided = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    return {"decided_by": "test-hulpverlener", "decided_at": decided.isoformat(), "reason": "acuut gevaar"}


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


def recheck(settings, plugin, basis: str = "vitaal_belang", recorded: dict | None = None, erased: bool = False):
    gw = Gateway(settings, plugins=[plugin])
    try:
        exchange = SimpleNamespace(route_id="webhook.notice", legal_basis=basis, consent_id=None, subject=None,
                                   basis_evidence_encrypted=None if erased else gw.box.encrypt_json(recorded or evidence()))
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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_vital_interest_decision_older_than_the_setting_allows_is_refused_before_an_attempt_whatever_the_plugins_say(
        settings):
    # The webhook route accepts vitaal_belang; no plugin has a say on it, and still the core refuses.
    stale = recheck(settings, Silent(), recorded=evidence(hours_ago=25))
    assert not stale.allowed
    assert stale.reason == ("the basis vitaal_belang no longer holds: the vitaal_belang decision is more than 24 "
                            "hours old; a new decision has to be recorded")
    assert recheck(settings, Silent(), recorded=evidence(hours_ago=23)).allowed
    shorter = settings.model_copy(update={"vitaal_belang_hours": 2.0})
    assert not recheck(shorter, Silent(), recorded=evidence(hours_ago=3)).allowed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_evidence_that_is_no_longer_held_lets_nothing_leave_on_a_ground_that_lapses(settings):
    decision = recheck(settings, Silent(), erased=True)  # the column retention empties
    assert not decision.allowed and "decided_at is not a date and time" in decision.reason
