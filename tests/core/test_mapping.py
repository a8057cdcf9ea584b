"""Declarative mappings: only named fields leave; broken files are named with their field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.core.mapping import MappingError, json_schema, load_mapping, load_mappings
from gateway.core.runtime import DEFAULT_MAPPINGS_DIR

DATA = {
    "reference": "R-1",
    "client": {"name": "Fictief", "address": "Geheime Opvang 1", "bsn": "111222333"},
    "children": [{"name": "Kind", "birth_date": "2019-04-02", "school": "De Regenboog"}],
}


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_only_the_fields_a_mapping_names_leave(tmp_path):
    mapping = load_mapping(write(tmp_path, """
id: m
version: 1
message_type: t
fields:
  - {to: ref, from: reference, required: true}
  - {to: person.name, from: client.name, transform: upper}
  - to: kids
    from: children
    each:
      - {to: born, from: birth_date, transform: date}
"""))
    result = mapping.apply(DATA)
    assert result.fields == {"ref": "R-1", "person": {"name": "FICTIEF"}, "kids": [{"born": "2019-04-02"}]}
    assert result.names == ["kids", "kids[].born", "person.name", "ref"]
    assert "bsn" not in json.dumps(result.fields) and "Geheime" not in json.dumps(result.fields)


def test_a_confidential_field_leaves_only_when_named_explicitly_and_the_basis_allows(tmp_path):
    text = """
id: m
version: 1
message_type: t
fields:
  - {to: address, from: client.address, confidential: true, bases: [vitaal_belang]}
  - {to: school, from: children.school}
  - to: kids
    from: children
    each:
      - {to: school, from: school}
"""
    mapping = load_mapping(write(tmp_path, text))
    confidential = frozenset({"client.address", "children.school"})
    withheld = mapping.apply(DATA, confidential=confidential, basis="toestemming")
    assert withheld.fields == {"kids": [{}]}
    assert sorted(path for path, _ in withheld.withheld) == ["children.school", "children.school", "client.address"]
    allowed = mapping.apply(DATA, confidential=confidential, basis="vitaal_belang")
    assert allowed.fields["address"] == "Geheime Opvang 1"
    assert "school" not in json.dumps(allowed.fields)


def test_a_required_field_that_is_missing_is_reported_by_name(tmp_path):
    mapping = load_mapping(write(tmp_path, "id: m\nversion: 1\nmessage_type: t\nfields:\n  - {to: x, from: nope, required: true}\n"))
    assert mapping.apply(DATA).missing == ["nope"]


@pytest.mark.parametrize(("text", "message"), [
    ("id: m\nversion: 1\nmessage_type: t\nfields:\n  - {to: x, from: a, transform: eval}\n", r"m.yaml: field fields.0.transform"),
    ("id: m\nversion: 1\nmessage_type: t\nfields:\n  - {to: 'x y', from: a}\n", r"m.yaml: field fields.0.to"),
    ("id: m\nversion: 0\nmessage_type: t\nfields:\n  - {to: x, from: a}\n", r"m.yaml: field version"),
    ("id: other\nversion: 1\nmessage_type: t\nfields:\n  - {to: x, from: a}\n", r"m.yaml: field id: must equal the file name"),
    ("id: m\nversion: 1\nmessage_type: t\nfields: []\n", r"m.yaml: field fields"),
    ("id: [m\n", r"m.yaml: cannot be read"),
])
def test_a_broken_mapping_names_its_file_and_field(tmp_path, text, message):
    with pytest.raises(MappingError, match=message):
        load_mapping(write(tmp_path, text))


def test_every_shipped_mapping_is_valid_and_the_exported_schema_is_current():
    mappings = load_mappings(DEFAULT_MAPPINGS_DIR)
    assert mappings, "no mappings shipped"
    exported = json.loads((DEFAULT_MAPPINGS_DIR.parent / "docs" / "mapping.schema.json").read_text())
    assert exported == json_schema(), "docs/mapping.schema.json is stale: run `python -m gateway.core.mapping`"
