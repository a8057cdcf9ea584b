"""Feedback from Veilig Thuis: receipt, decision after the safety assessment, end of involvement.

It arrives from the region's system (``POST /partners/veiligthuis/terugkoppeling``) or is typed in
by a worker when it came by phone or letter; either way it becomes a note, and where it changes
the case a status, in the dossier the melding came from.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DECISIONS = {
    "opgepakt": "Veilig Thuis pakt de melding zelf op",
    "advies": "Veilig Thuis geeft advies aan de melder",
    "overgedragen_lokaal_team": "Veilig Thuis draagt over aan het lokale team",
    "geen_vervolg": "Veilig Thuis geeft geen vervolg aan de melding",
}


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ontvangstbevestiging", "besluit", "einde_betrokkenheid"]
    melding_kenmerk: str = Field(min_length=1, max_length=64, description="The Kenmerk of the melding")
    date: date
    vt_reference: str | None = Field(default=None, max_length=64)
    decision: Literal["opgepakt", "advies", "overgedragen_lokaal_team", "geen_vervolg"] | None = None
    explanation: str | None = Field(default=None, max_length=2000)


def note_for(feedback: Feedback, source: str) -> dict[str, Any]:
    """The dossier note (and status) a piece of feedback becomes."""
    when = feedback.date.strftime("%d-%m-%Y")
    if feedback.type == "ontvangstbevestiging":
        text, status = f"Veilig Thuis bevestigt ontvangst van de melding op {when}.", None
    elif feedback.type == "besluit":
        label = DECISIONS.get(feedback.decision or "", "besluit onbekend")
        text, status = f"Besluit van Veilig Thuis na de veiligheidsbeoordeling ({when}): {label}.", f"vt_{feedback.decision}"
    else:
        text, status = f"Veilig Thuis meldt het einde van zijn betrokkenheid ({when}).", "vt_afgesloten"
    if feedback.explanation:
        text += f" Toelichting: {feedback.explanation}"
    data: dict[str, Any] = {"note_text": text, "source": source, "vt_reference": feedback.vt_reference}
    if status:
        data["dossier_status"], data["status_reason"] = status, f"terugkoppeling Veilig Thuis {when}"
    return data


def add_working_days(start: date, days: int) -> date:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current
