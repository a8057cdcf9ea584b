"""Declarative field mappings (``mappings/*.yaml``): the only fields that leave are those named.

A mapping lists target fields, each taken from a source path of the parsed message, optionally
through a named transform (a registry of functions, never ``eval``). A source field the message
marks confidential (a secret shelter address, a child's school) is carried only where the
mapping says ``confidential: true`` for it *and* the exchange's legal basis is one the entry
allows; otherwise it is withheld and the withholding is reported for the audit log.

Files are versioned and validated at startup against :class:`MappingFile`, whose JSON Schema
is exported in ``docs/mapping.schema.json``; a broken file is named with the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\])?)*$")

TRANSFORMS: dict[str, Callable[..., Any]] = {}


def transform(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        TRANSFORMS[name] = fn
        return fn

    return decorate


@transform("string")
def _string(value: Any) -> str:
    return str(value)


@transform("upper")
def _upper(value: Any) -> str:
    return str(value).upper()


@transform("lower")
def _lower(value: Any) -> str:
    return str(value).lower()


@transform("digits")
def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value))


@transform("date")
def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value)[:10]).isoformat()


@transform("truncate")
def _truncate(value: Any, length: int = 200) -> str:
    return str(value)[: int(length)]


@transform("year")
def _year(value: Any) -> int:
    return date.fromisoformat(str(value)[:10]).year


class FieldRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(description="Target path in the outgoing message (dotted)")
    from_: str | None = Field(default=None, alias="from", description="Source path in the parsed message")
    const: Any = Field(default=None, description="A constant value instead of a source path")
    transform: str | None = Field(default=None, description="Name of a registered transform")
    args: list[Any] = Field(default_factory=list)
    required: bool = False
    confidential: bool = Field(default=False, description="Explicitly carries a field marked confidential")
    bases: list[str] = Field(default_factory=list, description="Legal bases under which a confidential field may leave")
    each: list["FieldRule"] | None = Field(default=None, description="Rules applied to each item of a list")

    @field_validator("to", "from_")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not _PATH.match(value):
            raise ValueError("is not a dotted field path")
        return value

    @field_validator("transform")
    @classmethod
    def _known_transform(cls, value: str | None) -> str | None:
        if value is not None and value not in TRANSFORMS:
            raise ValueError(f"unknown transform (known: {', '.join(sorted(TRANSFORMS))})")
        return value


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    version: int = Field(ge=1)
    description: str = ""
    message_type: str
    fields: list[FieldRule] = Field(min_length=1)


@dataclass
class MappingResult:
    fields: dict[str, Any]
    names: list[str]
    withheld: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


_MISSING = object()


def _get(data: Any, path: str) -> Any:
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current


def _set(target: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _is_confidential(path: str, confidential: frozenset[str], *, whole_value: bool) -> bool:
    """Is the value at ``path`` (or, when it is copied whole, anything inside it) confidential?"""
    return any(path == c or path.startswith(c + ".") or (whole_value and c.startswith(path + ".")) for c in confidential)


@dataclass(frozen=True)
class Mapping:
    spec: MappingFile
    source: str

    @property
    def id(self) -> str:
        return self.spec.id

    def apply(self, data: dict[str, Any], *, confidential: frozenset[str] = frozenset(), basis: str | None = None) -> MappingResult:
        result = MappingResult(fields={}, names=[])
        self._apply_rules(self.spec.fields, data, result.fields, result, "", "", confidential, basis)
        return result

    def _apply_rules(self, rules: list[FieldRule], data: Any, out: dict[str, Any], result: MappingResult,
                     src_prefix: str, dst_prefix: str, confidential: frozenset[str], basis: str | None) -> None:
        for rule in rules:
            target = dst_prefix + rule.to
            if rule.from_ is None:
                if rule.const is not None:
                    _set(out, rule.to, rule.const)
                    result.names.append(target)
                continue
            source_path = src_prefix + rule.from_.replace("[]", "")
            # A list mapped item by item is checked per field inside; a value copied whole is not.
            if _is_confidential(source_path, confidential, whole_value=rule.each is None):
                allowed = rule.confidential and (basis is not None and (not rule.bases or basis in rule.bases))
                if not allowed:
                    result.withheld.append((source_path, "confidential field not allowed by this mapping and basis"))
                    continue
            value = _get(data, rule.from_.replace("[]", ""))
            if value is _MISSING or value is None:
                if rule.required:
                    result.missing.append(source_path)
                continue
            if rule.each is not None:
                items = []
                for index, item in enumerate(value if isinstance(value, list) else [value]):
                    mapped: dict[str, Any] = {}
                    self._apply_rules(rule.each, item, mapped, result, f"{source_path}.", f"{target}[].",
                                      _shift(confidential, source_path, index), basis)
                    items.append(mapped)
                _set(out, rule.to, items)
                result.names.append(target)
                continue
            if rule.transform:
                value = TRANSFORMS[rule.transform](value, *rule.args)
            _set(out, rule.to, value)
            result.names.append(target)
        result.names = sorted(set(result.names))


def _shift(confidential: frozenset[str], list_path: str, index: int) -> frozenset[str]:
    """Confidential paths inside list items are written ``children.2.school`` or ``children.school``."""
    shifted = set(confidential)
    for path in confidential:
        for prefix in (f"{list_path}.{index}.", f"{list_path}."):
            if path.startswith(prefix):
                shifted.add(list_path + "." + path[len(prefix):])
    return frozenset(shifted)


class MappingError(ValueError):
    pass


def load_mapping(path: Path) -> Mapping:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"mapping {path.name}: cannot be read ({type(exc).__name__})") from None
    try:
        spec = MappingFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MappingError(f"mapping {path.name}: field {where}: {first['msg']}") from None
    if spec.id != path.stem:
        raise MappingError(f"mapping {path.name}: field id: must equal the file name ({path.stem})")
    return Mapping(spec=spec, source=path.name)


def load_mappings(directory: Path) -> dict[str, Mapping]:
    return {path.stem: load_mapping(path) for path in sorted(directory.glob("*.yaml"))}


def json_schema() -> dict[str, Any]:
    return MappingFile.model_json_schema(by_alias=True)


if __name__ == "__main__":  # writes docs/mapping.schema.json
    import json as _json

    target = Path(__file__).resolve().parents[2] / "docs" / "mapping.schema.json"
    target.write_text(_json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {target}")
