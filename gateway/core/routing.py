"""Routes: which message goes to which connector type, why, on what ground, and how.

A route never names an address: the partner is resolved per message — from the partner the
message itself names, from the routing table by one of the message's attributes (the Veilig
Thuis region serving a gemeentecode), or, where a connector type has exactly one partner
(the organisation's own ECD), that one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.retry import POLICIES

_ROUTE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,99}$")


@dataclass(frozen=True)
class Route:
    id: str
    message_type: str
    target: str
    purpose: str
    legal_bases: tuple[str, ...] = ()
    mapping: str | None = None
    retry_policy: str = "standard"
    partner_attribute: str | None = None
    sources: tuple[str, ...] = ("hulpverlener", "beheerder")
    data_categories: tuple[str, ...] = ()
    description: str = ""
    # One at a time per client and partner, oldest first: for messages whose effect depends on
    # what the partner holds when it arrives (a read-then-write, like a WMO301's allocations into
    # the ECD), so two of them about one client never race each other.
    ordered: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not _ROUTE_ID.match(self.id):
            raise ValueError(f"route id {self.id!r} is not a valid identifier")
        if self.retry_policy not in POLICIES:
            raise ValueError(f"route {self.id}: unknown retry policy {self.retry_policy!r}")
        from gateway.core.legal import BASES, DATA_CATEGORIES

        unknown = [basis for basis in self.legal_bases if basis not in BASES]
        if unknown:
            raise ValueError(f"route {self.id}: unknown legal basis {unknown[0]!r}; known: {', '.join(BASES)}")
        unknown = [category for category in self.data_categories if category not in DATA_CATEGORIES]
        if unknown:
            raise ValueError(f"route {self.id}: unknown data category {unknown[0]!r}; known: {', '.join(DATA_CATEGORIES)}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_type": self.message_type,
            "target": self.target,
            "purpose": self.purpose,
            "legal_bases": list(self.legal_bases),
            "mapping": self.mapping,
            "retry_policy": self.retry_policy,
            "partner_attribute": self.partner_attribute,
            "sources": list(self.sources),
            "data_categories": list(self.data_categories),
            "description": self.description,
            "ordered": self.ordered,
        }


class RouteFileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    message_type: str
    target: str
    purpose: str
    legal_bases: list[str] = Field(default_factory=list)
    mapping: str | None = None
    retry_policy: str = "standard"
    partner_attribute: str | None = None
    sources: list[str] = Field(default_factory=lambda: ["hulpverlener", "beheerder"])
    data_categories: list[str] = Field(default_factory=list)
    description: str = ""
    ordered: bool = False


class RouteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    routes: list[RouteFileEntry]


def load_routes_file(path: Path) -> list[Route]:
    """Routes an administrator configured in YAML; a broken file names itself and the entry."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = RouteFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"routes file {path}: cannot be read ({type(exc).__name__})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"routes file {path}: {where}: {first['msg']}") from None
    routes = []
    for entry in parsed.routes:
        data = entry.model_dump()
        try:
            routes.append(Route(**{**data, "legal_bases": tuple(data["legal_bases"]), "sources": tuple(data["sources"]),
                                   "data_categories": tuple(data["data_categories"])}))
        except ValueError as exc:
            raise ValueError(f"routes file {path}: {exc}") from None
    return routes
