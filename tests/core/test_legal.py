"""A named ground's recorded decision: complete, dated, not in the future, and — for vital
interest — recent enough."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.core import legal

VITAL = legal.BASES["vitaal_belang"]
MELDRECHT = legal.BASES["meldrecht"]
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def vital(decided_at: str) -> dict[str, str]:
    return {"decided_by": "teamleider (fictief)", "decided_at": decided_at, "reason": "acuut gevaar"}


def test_a_vital_interest_decision_holds_for_the_hours_set_and_not_a_moment_longer():
    assert VITAL.check_evidence(vital("2026-12-06T12:00:00+00:00"), NOW, 24) is None
    assert VITAL.check_evidence(vital("2026-12-05T12:00:00+00:00"), NOW, 24) is None  # exactly 24 hours
    assert VITAL.check_evidence(vital("2026-12-05T11:59:59+00:00"), NOW, 24) == (
        "the vitaal_belang decision is more than 24 hours old; a new decision has to be recorded")
    assert VITAL.check_evidence(vital("2026-12-06T09:00:00+00:00"), NOW, 2.5) is not None
    assert VITAL.check_evidence(vital("2026-12-06T09:31:00+00:00"), NOW, 2.5) is None


def test_without_hours_given_the_setting_default_applies():
    assert VITAL.check_evidence(vital("2026-12-05T13:00:00+00:00"), NOW) is None
    assert VITAL.check_evidence(vital("2026-12-05T11:00:00+00:00"), NOW) is not None


def test_a_decision_dated_in_the_future_is_refused_beyond_a_little_clock_skew():
    assert VITAL.check_evidence(vital("2026-12-06T12:04:00+00:00"), NOW, 24) is None
    assert VITAL.check_evidence(vital("2026-12-06T13:00:00+00:00"), NOW, 24) == "vitaal_belang: decided_at lies in the future"
    meldrecht = {"decided_by": "aandachtsfunctionaris", "decided_at": "2026-12-07T09:00:00+00:00",
                 "weighing": "stappen 1-5 doorlopen", "client_informed": True}
    assert MELDRECHT.check_evidence(meldrecht, NOW) == "meldrecht: decided_at lies in the future"


def test_a_meldrecht_decision_does_not_lapse_with_time():
    meldrecht = {"decided_by": "aandachtsfunctionaris", "decided_at": "2026-01-06T09:00:00+00:00",
                 "weighing": "stappen 1-5 doorlopen", "client_informed": True}
    assert MELDRECHT.check_evidence(meldrecht, NOW) is None


def test_a_time_without_an_offset_is_read_as_the_dutch_clock_shows_it():
    # 13:00 in Amsterdam in December is 12:00 UTC: 24 hours before NOW, so still within the day.
    assert VITAL.check_evidence(vital("2026-12-05T13:00:00"), NOW, 24) is None
    assert VITAL.check_evidence(vital("2026-12-05T12:59:00"), NOW, 24) is not None
    assert legal.decided_at(vital("2026-07-01T10:00")) == datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc)


def test_a_decided_at_that_is_not_a_time_is_refused_as_before():
    assert VITAL.check_evidence(vital("gisteren"), NOW, 24) == "vitaal_belang: decided_at is not a date and time"
    assert VITAL.check_evidence({"decided_by": "x"}, NOW, 24) == "vitaal_belang requires a recorded decided_at, reason"
