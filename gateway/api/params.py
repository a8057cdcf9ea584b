"""Query parameters several endpoints share, typed so the OpenAPI document is exact.

Moments are ISO 8601 strings with a zone: FastAPI's lax datetime parsing would also take a bare
number as epoch seconds, which the document does not promise. Sequence numbers stop at the
database's 64-bit range, so a huge one is a 422, not an overflow deep in the driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

from gateway.core.problems import Problem

ISO_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
MAX_SEQ = 2**63 - 1

Since = Annotated[str | None, Query(pattern=ISO_TIME, description="From this moment (ISO 8601, with a time zone)")]
Until = Annotated[str | None, Query(pattern=ISO_TIME, description="Before this moment (ISO 8601, with a time zone)")]


def moment(value: str | datetime | None, name: str) -> datetime | None:
    """A query moment; callers inside the gateway (the console) may pass a datetime with a zone."""
    if value is None or isinstance(value, datetime):
        if value is not None and value.tzinfo is None:
            raise Problem("validation-failed", "Times need a time zone (e.g. 2026-11-22T10:00:00Z).")
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem("validation-failed", "Not a moment in time.",
                      extensions={"errors": [{"location": ["query", name], "reason": "datetime"}]}) from None
