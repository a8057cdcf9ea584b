"""Legal bases: consent, and the named grounds that are not consent.

A route declares the bases it accepts. Consent is looked up in the register; ``wettelijke_plicht``
holds by the route itself (an iWmo message for an allocation); the others hold only with recorded
evidence — who decided, when, and why — that travels with the message, is stored encrypted with
the exchange, and whose presence the audit log records.

A decision is dated (``decided_at``): one dated in the future is refused, and a ``vitaal_belang``
decision — acute danger — holds only for a while after it was taken (``GATEWAY_VITAAL_BELANG_HOURS``):
a message still waiting after that, for a retry or a replay, no longer leaves on it, and a worker
who still sees the danger records a new decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.settings import Settings

MELDCODE_EXCEPTIONS = {
    "gevaar_kind_of_gezin": "informing the client would endanger the child or the family",
    "gevaar_professional": "informing the client would endanger the professional",
    "breuk_hulpverleningsrelatie": "informing the client would break the care relationship needed for safety",
}


# What kinds of a client's data a route carries, and a consent may be limited to. A consent that
# names none covers every kind its purpose needs; one that names some covers only a route whose
# kinds are all among them.
DATA_CATEGORIES = {
    "personalia": "naam, geboortedatum, BSN, geslacht",
    "contactgegevens": "adres, telefoon, e-mail",
    "gezinssituatie": "gezinsleden, kinderen, de andere partij, het netwerk",
    "signalen": "signalen, zorgen en het soort geweld",
    "hulpverlening": "de hulp, de hulpverlener en andere betrokken hulpverleners",
    "veiligheid": "risico's, veiligheidsafspraken en bereikte doelen",
}


def covers(consented: list[str] | tuple[str, ...] | None, carried: tuple[str, ...]) -> bool:
    """Whether a consent limited to ``consented`` kinds of data (none: no limit) covers a route
    that carries ``carried``. A route that does not say what it carries is covered only by an
    unlimited consent."""
    if not consented:
        return True
    return bool(carried) and set(carried) <= set(consented)


# A decision's time without an offset is read as a Dutch worker's clock shows it.
_LOCAL = ZoneInfo("Europe/Amsterdam")
# Clocks of the submitter's system and ours may differ by this much; a decision dated further
# ahead than that has not been taken yet.
CLOCK_SKEW = timedelta(minutes=5)


def decided_at(evidence: dict[str, Any]) -> datetime | None:
    """The evidence's ``decided_at`` as an aware time, or ``None`` where it is not one."""
    try:
        moment = datetime.fromisoformat(str(evidence.get("decided_at")))
    except ValueError:
        return None
    return moment.replace(tzinfo=_LOCAL) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class LegalBasis:
    name: str
    title: str
    law: str
    evidence: tuple[str, ...] = ()
    consent: bool = False
    # Holds only this long after its decision, by the setting of this name (hours); None: no limit.
    valid_for_setting: str | None = None

    def check_evidence(self, evidence: dict[str, Any] | None, now: datetime | None = None,
                       valid_hours: float | None = None) -> str | None:
        """Why the evidence does not support this basis at ``now``, or ``None`` when it does.
        ``valid_hours``: how long a decision of a basis that lapses holds (its setting's default
        when None)."""
        if self.consent:
            return None
        if not self.evidence:
            return None
        evidence = evidence or {}
        missing = [name for name in self.evidence if evidence.get(name) in (None, "", [])]
        if missing:
            return f"{self.name} requires a recorded {', '.join(missing)}"
        if "decided_at" in self.evidence:
            problem = self.lapsed(evidence, now, valid_hours)
            if problem is not None:
                return problem
        if self.name == "meldrecht" and evidence.get("client_informed") is False:
            if evidence.get("exception") not in MELDCODE_EXCEPTIONS:
                return ("meldrecht without informing the client requires the exception that applies: "
                        + ", ".join(MELDCODE_EXCEPTIONS))
        return None

    def lapsed(self, evidence: dict[str, Any], now: datetime | None = None,
               valid_hours: float | None = None) -> str | None:
        """Why the decision the evidence records does not hold at ``now`` — not a time, not taken
        yet, or (for a basis that lapses) taken too long ago — or ``None``. Asked when a message
        is submitted and again before each attempt. The reason names no one and no time."""
        moment = decided_at(evidence)
        if moment is None:
            return f"{self.name}: decided_at is not a date and time"
        if now is None:
            return None
        if moment > now + CLOCK_SKEW:
            return f"{self.name}: decided_at lies in the future"
        if self.valid_for_setting is not None:
            hours = Settings.model_fields[self.valid_for_setting].default if valid_hours is None else valid_hours
            if now - moment > timedelta(hours=hours):
                return (f"the {self.name} decision is more than {hours:g} hours old; "
                        "a new decision has to be recorded")
        return None


BASES: dict[str, LegalBasis] = {
    basis.name: basis
    for basis in (
        LegalBasis("toestemming", "Toestemming van de cliënt", "AVG art. 6 lid 1 sub a", consent=True),
        LegalBasis("meldrecht", "Meldrecht (melding aan Veilig Thuis zonder toestemming)", "Wmo 2015 art. 5.2.6",
                   ("decided_by", "decided_at", "weighing", "client_informed")),
        LegalBasis("wettelijke_plicht", "Wettelijke verplichting", "AVG art. 6 lid 1 sub c"),
        LegalBasis("vitaal_belang", "Vitaal belang (acuut gevaar)", "AVG art. 6 lid 1 sub d", ("decided_by", "decided_at", "reason"),
                   valid_for_setting="vitaal_belang_hours"),
        LegalBasis("huisverbod", "Wet tijdelijk huisverbod", "Wet tijdelijk huisverbod art. 2 en 9", ("decision_reference",)),
    )
}


def get(name: str) -> LegalBasis:
    try:
        return BASES[name]
    except KeyError:
        raise KeyError(f"unknown legal basis {name!r}; known: {', '.join(BASES)}") from None
