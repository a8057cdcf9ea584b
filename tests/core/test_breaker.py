"""A partner's circuit breaker: open after failures in a row, one probe per cool-down, closed when it answers."""

from __future__ import annotations

from gateway.core.breaker import Breaker


def breaker() -> Breaker:
    return Breaker(threshold=3, base_cooldown=10.0, max_cooldown=25.0)


def test_it_stays_closed_until_the_threshold_of_failures_in_a_row():
    b = breaker()
    for now in (0.0, 1.0):
        assert b.allow(now)
        assert b.observe("retry", now) is False
    assert b.observe("delivered", 2.0) is False  # answered: the count starts again
    for now in (3.0, 4.0):
        b.observe("retry", now)
    assert not b.is_open and b.allow(4.5)
    b.observe("retry", 5.0)
    assert b.is_open and not b.allow(5.0) and not b.allow(14.9)


def test_one_probe_per_cool_down_and_the_cool_down_doubles_up_to_its_maximum():
    b = breaker()
    for now in (0.0, 0.0, 0.0):
        b.observe("retry", now)
    assert b.allow(10.0)  # the probe
    assert not b.allow(10.0)  # nobody else while it is out
    b.observe("retry", 10.5)  # the probe failed: 20 s now
    assert not b.allow(30.4) and b.allow(30.5)
    b.observe("retry", 31.0)  # 40 s would be over the maximum: 25 s
    assert not b.allow(55.9) and b.allow(56.0)


def test_a_late_failure_of_an_attempt_already_out_does_not_extend_the_cool_down():
    b = breaker()
    for now in (0.0, 0.0, 0.0):
        b.observe("retry", now)
    b.observe("retry", 9.0)  # was in flight when it opened
    assert b.allow(10.0)


def test_an_answer_closes_it_and_says_so_once():
    b = breaker()
    for now in (0.0, 0.0, 0.0):
        b.observe("retry", now)
    assert b.allow(10.0)
    assert b.observe("reject", 10.1) is True  # a 4xx is an answer: the partner is there
    assert not b.is_open and b.allow(10.2) and b.allow(10.2)
    assert b.observe("delivered", 10.3) is False
