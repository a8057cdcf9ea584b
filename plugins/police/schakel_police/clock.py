"""Dates as the organisation lives them: in the Netherlands."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

NL = ZoneInfo("Europe/Amsterdam")


def today() -> date:
    return datetime.now(NL).date()
