"""Dutch words for the gateway's English codes: states, outcomes, legal bases, roles, field names.

The codes stay what they are in the API and the audit log; only the console translates them, and
shows the code beside the word where an administrator may need to look it up.
"""

from __future__ import annotations

from typing import Any

from gateway.core import legal

STATES = {
    "received": "ontvangen",
    "validated": "gecontroleerd",
    "authorised": "toegestaan",
    "refused": "geweigerd",
    "queued": "in de wachtrij",
    "sending": "wordt verstuurd",
    "delivered": "afgeleverd",
    "acknowledged": "bevestigd",
    "failed": "mislukt, wordt opnieuw geprobeerd",
    "dead": "onbestelbaar",
    "replayed": "opnieuw aangeboden",
    "parked": "geparkeerd (gepauzeerd)",
    "active": "actief",
    "paused": "gepauzeerd",
    "inactive": "niet actief",
}

OUTCOMES = {0: "geslaagd", 4: "kleine fout", 8: "ernstige fout", 12: "zware fout"}

ROLES = {"beheerder": "functioneel beheerder", "hulpverlener": "hulpverlener", "privacy": "privacy officer",
         "partner": "partnersysteem", "system": "systeem"}

# The melding's field paths as a worker reads them.
FIELDS = {
    "reporter": "melder", "victim": "slachtoffer", "other_party": "andere partij (pleger)", "children": "kinderen",
    "violence": "aard van het geweld", "signals": "signalen", "unsafety": "onveiligheid", "help_given": "geboden hulp",
    "network": "netwerk", "care_providers": "andere hulpverleners", "meldcode": "meldcode", "client_informed":
    "cliënt geïnformeerd", "exception": "uitzondering", "remarks": "opmerkingen", "address": "adres", "phone":
    "telefoonnummer", "school": "school", "first_name": "voornaam", "last_name": "achternaam", "gender": "geslacht",
    "date_of_birth": "geboortedatum", "bsn": "BSN", "relation": "relatie", "parental_authority": "gezag",
    "name": "naam", "organisation": "organisatie", "role": "functie", "email": "e-mail", "acute": "acuut",
    "structural": "structureel", "date": "datum", "kind": "soort", "description": "omschrijving",
    "supportive": "steunend", "steps": "stappen gezet", "weighing": "afweging", "decision": "besluit",
    "vermoeden": "vermoeden", "onveiligheid": "acute of structurele onveiligheid", "hulp_mogelijk": "effectieve hulp mogelijk",
    "hulp_aanvaard": "hulp aanvaard", "hulp_leidt_tot_veiligheid": "hulp leidt tot veiligheid", "toelichting": "toelichting",
}


def state(code: Any) -> str:
    return STATES.get(str(code), str(code))


def outcome(code: Any) -> str:
    try:
        return OUTCOMES.get(int(code), str(code))
    except (TypeError, ValueError):
        return "—"


def basis(code: Any) -> str:
    found = legal.BASES.get(str(code or ""))
    return f"{found.title} ({found.law})" if found else (str(code) if code else "—")


def role(code: Any) -> str:
    return ROLES.get(str(code), str(code or "—"))


def yes_no(value: Any) -> str:
    return "ja" if value else "nee"


def field(path: Any) -> str:
    """``victim.address`` → ``slachtoffer: adres``."""
    parts = [FIELDS.get(part.removesuffix("[]"), part) for part in str(path).split(".")]
    return ": ".join(parts)
