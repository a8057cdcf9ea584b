"""The ``notice`` message: a short, structured signal to a generic partner."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Notice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=64, description="The sender's reference, unique per notice")
    category: str = Field(min_length=1, max_length=64)
    text: str = Field(default="", max_length=2000)
    client_id: str | None = Field(default=None, max_length=64, description="ECD client number; pseudonymised")
    partner: str | None = Field(default=None, max_length=64, description="Send to this partner id")
    region: str | None = Field(default=None, max_length=64, description="Route by region through the routing table")
    evidence: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Evidence per legal basis that is not consent, e.g. vitaal_belang: decided_by, "
                                    "decided_at (ISO 8601; without an offset, Dutch local time; at most "
                                    "GATEWAY_VITAAL_BELANG_HOURS old) and reason")
