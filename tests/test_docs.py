"""The docs keep up with the code: every hook and every setting is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from gateway.core import hookspecs
from gateway.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def declared_hooks() -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                  if getattr(fn, "gateway_spec", None) is not None)


def test_hook_names_list_matches_the_declared_hooks():
    assert sorted(hookspecs.HOOK_NAMES) == declared_hooks()


@pytest.mark.parametrize("hook", declared_hooks())
def test_every_hook_is_documented_with_its_own_section(hook):
    text = (DOCS / "plugins.md").read_text()
    assert re.search(rf"^### `{hook}`$", text, re.MULTILINE), f"docs/plugins.md has no section for hook {hook}"
    section = text.split(f"### `{hook}`", 1)[1].split("\n### ", 1)[0]
    assert f"{hook}(" in section, f"the section for {hook} does not show its signature"


@pytest.mark.parametrize("hook", declared_hooks())
def test_every_hook_has_a_docstring(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field):
    alias = Settings.model_fields[field].validation_alias
    name = str(alias.choices[0]) if alias is not None and hasattr(alias, "choices") else f"GATEWAY_{field.upper()}"
    assert f"`{name}`" in (DOCS / "running.md").read_text(), f"docs/running.md does not document {name}"
