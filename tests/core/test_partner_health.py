"""A partner that was down is known to be back at its first answer, once."""

from __future__ import annotations

from gateway.core.partner_health import PartnerHealth


def test_a_partner_is_down_after_the_threshold_of_failures_in_a_row():
    health = PartnerHealth(threshold=3)
    for _ in range(2):
        assert health.observe("a", "retry") is False
    assert health.observe("a", "delivered") is False  # answered before the threshold: the count starts again
    for _ in range(2):
        health.observe("a", "retry")
    assert not health.is_down("a")
    health.observe("a", "retry")
    assert health.is_down("a") and not health.is_down("b")


def test_its_first_answer_after_being_down_says_it_is_back_and_only_once():
    health = PartnerHealth(threshold=3)
    for _ in range(4):
        health.observe("a", "retry")
    assert health.observe("a", "reject") is True  # a 4xx is an answer: the partner is there
    assert not health.is_down("a")
    assert health.observe("a", "delivered") is False
