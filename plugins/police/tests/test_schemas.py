"""The published schemas are the models the gateway validates with, and the documented example is one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.core.pseudonyms import elfproef
from schakel_police import messages

DOC = Path(__file__).resolve().parents[3] / "docs" / "flows" / "police.md"


@pytest.mark.parametrize("name", sorted(messages.PUBLISHED))
def test_each_published_schema_file_is_the_models_own(name):
    assert messages.schema_path(name).read_text(encoding="utf-8") == messages.render(name), \
        "stale: run `python -m schakel_police.messages`"
    assert json.loads(messages.render(name))["$id"] == f"urn:schakel:police:{name}:1.0"


def documented(kind: str) -> list[dict]:
    """The JSON examples in docs/flows/police.md marked ``<!-- example: kind -->``."""
    blocks = re.findall(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [json.loads(block) for marked, block in blocks if marked == kind]


def test_the_worked_examples_in_the_docs_are_valid_messages_about_invented_people():
    examples = {kind: documented(kind) for kind in ("huisverbod", "zorgmelding", "informatieverzoek")}
    assert all(examples.values()), {kind: len(found) for kind, found in examples.items()}
    models = {"huisverbod": messages.HuisverbodBericht, "zorgmelding": messages.Zorgmelding,
              "informatieverzoek": messages.Informatieverzoek}
    for kind, found in examples.items():
        for example in found:
            models[kind].model_validate(example)
            bsns = re.findall(r'"bsn": "(\d+)"', json.dumps(example))
            assert all(elfproef(bsn) for bsn in bsns)


def test_an_order_of_more_than_ten_days_or_an_unknown_field_is_not_a_notice():
    (example, *_) = documented("huisverbod")
    with pytest.raises(ValidationError):
        messages.HuisverbodBericht.model_validate({**example, "einde": "2026-12-30T17:00:00+01:00"})
    with pytest.raises(ValidationError):
        messages.HuisverbodBericht.model_validate({**example, "onbekend": 1})
