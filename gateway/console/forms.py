"""From an HTML form to the core's own request models, with errors in Dutch.

The console validates with the same pydantic models as the API (``ReasonIn``, ``PartnerIn``,
``Answers`` …), so a form can never accept what the API refuses. Messages name what is wrong,
never the value typed: that may be personal data.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.console.pages import LOCAL

Model = TypeVar("Model", bound=BaseModel)

# Custom validators in the core speak English; the people reading these forms do not.
KNOWN = {
    "a client not informed needs the exception that applies":
        "Als de cliënt niet is geïnformeerd, kies dan welke uitzondering geldt.",
    "meldcode steps are 1 to 5": "De stappen van de meldcode zijn 1 tot en met 5.",
}


def dutch(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "Vul dit in."
    if kind == "string_too_short":
        # Whether it was left empty says nothing about what was typed.
        empty = error.get("input") == "" or ctx.get("min_length") == 1
        return "Vul dit in." if empty else f"Te kort: minstens {ctx.get('min_length')} tekens."
    if kind == "too_short":
        return "Kies er minstens één." if ctx.get("min_length") == 1 else f"Kies er minstens {ctx.get('min_length')}."
    if kind in ("string_too_long", "too_long"):
        return f"Te lang: hoogstens {ctx.get('max_length')} {'tekens' if kind == 'string_too_long' else 'keuzes'}."
    if kind == "string_pattern_mismatch":
        return "Dit heeft niet de juiste vorm."
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type"):
        return "Vul een getal in."
    if kind in ("bool_parsing", "bool_type"):
        return "Kies ja of nee."
    if kind in ("literal_error", "enum"):
        return "Kies een van de mogelijkheden."
    if kind.startswith("date") or kind.startswith("datetime"):
        return "Vul een geldige datum in."
    if kind == "value_error":
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        return KNOWN.get(message, "Deze waarde of combinatie klopt niet.")
    return "Deze waarde is niet geldig."


def errors_of(exc: ValidationError, prefix: tuple[str, ...] = ()) -> dict[str, str]:
    """Field path (``weighing.vermoeden``) → the first Dutch message for it."""
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
        if loc[: len(prefix)] == list(prefix):
            loc = loc[len(prefix):]
        found.setdefault(".".join(loc) or "_", dutch(error))
    return found


def validate(model: type[Model], data: dict[str, Any]) -> tuple[Model | None, dict[str, str]]:
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, errors_of(exc)


def text(form: Any, name: str) -> str:
    return str(form.get(name, "") or "").strip()


def optional(form: Any, name: str) -> str | None:
    return text(form, name) or None


def lines_to_dict(value: str) -> dict[str, str]:
    """``sleutel=waarde`` per line, as administrators type identifiers."""
    result = {}
    for line in value.splitlines():
        if "=" in line:
            key, _, item = line.partition("=")
            if key.strip():
                result[key.strip()] = item.strip()
    return result


def lines_to_lists(value: str) -> dict[str, list[str]]:
    """``gemeentecode=0363, 0384`` per line: a routing attribute and the values a partner serves."""
    return {key: [v.strip() for v in item.split(",") if v.strip()] for key, item in lines_to_dict(value).items()}


def dict_to_lines(value: dict[str, Any]) -> str:
    return "\n".join(f"{k}={', '.join(v) if isinstance(v, list) else v}" for k, v in (value or {}).items())


def day_start(value: str, days_later: int = 0) -> datetime | None:
    """A date typed in the console means that day in the Netherlands."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    from datetime import timedelta

    return datetime.combine(day + timedelta(days=days_later), time.min, tzinfo=LOCAL)
