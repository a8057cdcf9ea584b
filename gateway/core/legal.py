"""Legal bases: consent, and the named grounds that are not consent.

A route declares the bases it accepts. Consent is looked up in the register; ``wettelijke_plicht``
holds by the route itself (an iWmo message for an allocation); the others hold only with recorded
evidence — who decided, when, and why — that travels with the message, is stored encrypted with
the exchange, and whose presence the audit log records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class LegalBasis:
    name: str
    title: str
    law: str
    evidence: tuple[str, ...] = ()
    consent: bool = False

    def check_evidence(self, evidence: dict[str, Any] | None) -> str | None:
        """Why the evidence does not support this basis, or ``None`` when it does."""
        if self.consent:
            return None
        if not self.evidence:
            return None
        evidence = evidence or {}
        missing = [name for name in self.evidence if evidence.get(name) in (None, "", [])]
        if missing:
            return f"{self.name} requires a recorded {', '.join(missing)}"
        if "decided_at" in self.evidence:
            try:
                datetime.fromisoformat(str(evidence["decided_at"]))
            except ValueError:
                return f"{self.name}: decided_at is not a date and time"
        if self.name == "meldrecht" and evidence.get("client_informed") is False:
            if evidence.get("exception") not in MELDCODE_EXCEPTIONS:
                return ("meldrecht without informing the client requires the exception that applies: "
                        + ", ".join(MELDCODE_EXCEPTIONS))
        return None


BASES: dict[str, LegalBasis] = {
    basis.name: basis
    for basis in (
        LegalBasis("toestemming", "Toestemming van de cliënt", "AVG art. 6 lid 1 sub a", consent=True),
        LegalBasis("meldrecht", "Meldrecht (melding aan Veilig Thuis zonder toestemming)", "Wmo 2015 art. 5.2.6",
                   ("decided_by", "decided_at", "weighing", "client_informed")),
        LegalBasis("wettelijke_plicht", "Wettelijke verplichting", "AVG art. 6 lid 1 sub c"),
        LegalBasis("vitaal_belang", "Vitaal belang (acuut gevaar)", "AVG art. 6 lid 1 sub d", ("decided_by", "decided_at", "reason")),
        LegalBasis("huisverbod", "Wet tijdelijk huisverbod", "Wet tijdelijk huisverbod art. 2 en 9", ("decision_reference",)),
    )
}


def get(name: str) -> LegalBasis:
    try:
        return BASES[name]
    except KeyError:
        raise KeyError(f"unknown legal basis {name!r}; known: {', '.join(BASES)}") from None
