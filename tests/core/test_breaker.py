"""A partner that was down is known to be back at its first answer, once."""

from __future__ import annotations

from gateway.core.breaker import Breakers


def test_a_partner_is_down_after_the_threshold_of_failures_in_a_row():
    breakers = Breakers(threshold=3)
    for _ in range(2):
        assert breakers.observe("a", "retry") is False
    assert breakers.observe("a", "delivered") is False  # answered before the threshold: the count starts again
    for _ in range(2):
        breakers.observe("a", "retry")
    assert not breakers.is_down("a")
    breakers.observe("a", "retry")
    assert breakers.is_down("a") and not breakers.is_down("b")


def test_its_first_answer_after_being_down_says_it_is_back_and_only_once():
    breakers = Breakers(threshold=3)
    for _ in range(4):
        breakers.observe("a", "retry")
    assert breakers.observe("a", "reject") is True  # a 4xx is an answer: the partner is there
    assert not breakers.is_down("a")
    assert breakers.observe("a", "delivered") is False
