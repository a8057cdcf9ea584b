"""A Veilig Thuis melding: drafted from the Care4 dossier, completed by the worker, rendered as
XML valid against ``schemas/vt-melding-1.0.xsd``.

The draft holds everything the ECD can supply; ``confidential`` lists the paths the ECD marks
confidential (a secret shelter address, a child's school, the other party's whereabouts), which
the route's mapping withholds. The worker adds what only she can: the meldcode steps she took,
her answers to the weighing framework, her decision, whether the client was informed (and if not,
why not) and her remarks.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.core.legal import MELDCODE_EXCEPTIONS
from gateway.core.problems import Problem
from gateway.core.xml import load_schema

NAMESPACE = "urn:schakel:veiligthuis:melding:1"
VERSION = "1.0"
XSD = Path(__file__).with_name("schemas") / "vt-melding-1.0.xsd"

WEIGHING_QUESTIONS = {
    "vermoeden": "Heb ik op basis van de stappen 1 tot en met 3 een vermoeden van huiselijk geweld of kindermishandeling?",
    "onveiligheid": "Schat ik in dat er sprake is van acute of structurele onveiligheid?",
    "hulp_mogelijk": "Ben ik in staat effectieve hulp te bieden of te organiseren?",
    "hulp_aanvaard": "Aanvaarden de betrokkenen de hulp die nodig is en zijn zij bereid zich in te zetten?",
    "hulp_leidt_tot_veiligheid": "Leidt de hulp binnen de gewenste termijn tot de noodzakelijke resultaten ten aanzien van de veiligheid?",
}


class Weighing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vermoeden: bool
    onveiligheid: bool
    hulp_mogelijk: bool
    hulp_aanvaard: bool
    hulp_leidt_tot_veiligheid: bool
    toelichting: str | None = Field(default=None, max_length=4000)


class Answers(BaseModel):
    """What the worker supplies: the meldcode weighing, her decision, and her own remarks."""

    model_config = ConfigDict(extra="forbid")

    meldcode_steps: list[int] = Field(min_length=1, max_length=5, description="Meldcode steps taken, 1..5")
    weighing: Weighing
    decision: str = Field(min_length=3, max_length=200, description="Step 5: the decision, e.g. 'melden en hulp bieden'")
    client_informed: bool
    exception: Literal["gevaar_kind_of_gezin", "gevaar_professional", "breuk_hulpverleningsrelatie"] | None = None
    remarks: str | None = Field(default=None, max_length=4000)
    legal_basis: Literal["toestemming", "meldrecht"]

    @model_validator(mode="after")
    def _coherent(self) -> "Answers":
        if any(step not in range(1, 6) for step in self.meldcode_steps):
            raise ValueError("meldcode steps are 1 to 5")
        if not self.client_informed and self.exception is None:
            raise ValueError("a client not informed needs the exception that applies")
        return self


ViolenceForm = Literal["fysiek", "psychisch", "seksueel", "financieel", "getuige_van_geweld", "verwaarlozing",
                       "stalking", "eergerelateerd", "overig"]


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    kind: Literal["observed", "told"]
    description: str = Field(min_length=3, max_length=4000)


class UnsafetyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    acute: bool
    structural: bool


class Edits(BaseModel):
    """What the worker may change in the draft before sending. Everything else comes from the ECD
    as it is (correct it there), and fields the ECD marks confidential cannot be added here."""

    model_config = ConfigDict(extra="forbid")

    violence: list[ViolenceForm] | None = Field(default=None, min_length=1, max_length=10,
                                                description="Replaces the nature of the violence")
    unsafety: UnsafetyIn | None = Field(default=None, description="The worker's own assessment")
    signals_added: list[SignalIn] = Field(default_factory=list, max_length=50)
    help_added: list[str] = Field(default_factory=list, max_length=20)


def apply_edits(draft: dict[str, Any], edits: Edits) -> dict[str, Any]:
    edited = dict(draft)
    if edits.violence is not None:
        edited["violence"] = list(edits.violence)
    if edits.unsafety is not None:
        edited["unsafety"] = edits.unsafety.model_dump()
    edited["signals"] = [*draft["signals"], *(s.model_dump() for s in edits.signals_added)]
    edited["help_given"] = [*draft["help_given"], *edits.help_added]
    return edited


# Veilig Thuis's schema requires these of every person in a melding (Betrokkene).
REQUIRED_OF_A_PERSON = ("first_name", "last_name", "gender", "date_of_birth")


def unsendable(confidential: list[str]) -> list[str]:
    """The confidential paths a melding would need: while the ECD marks any of them, the melding
    cannot leave electronically (it would be sent without them, and their schema refuses that)."""
    return [path for path in confidential if path.rsplit(".", 1)[-1] in REQUIRED_OF_A_PERSON]


def _person(source: dict[str, Any], role: str) -> dict[str, Any]:
    person = {"role": role, "first_name": source["first_name"], "last_name": source["last_name"],
              "gender": source["gender"], "date_of_birth": source["date_of_birth"]}
    for key in ("bsn", "relation", "address", "phone"):
        if source.get(key):
            person[key] = source[key]
    return person


def build_draft(bundle: dict[str, Any]) -> tuple[dict[str, Any], list[str], str]:
    """The draft melding from a Care4 dossier bundle, its confidential paths, and the
    gemeentecode that decides the Veilig Thuis region."""
    dossier, client, household = bundle["dossier"], bundle["client"], bundle["household"]
    confidential: set[str] = set()
    victim = _person(client, "slachtoffer")
    # Whatever the ECD marks confidential about a person is withheld under the same name here (a
    # melding's person has the ECD's own field names); she lives where her household does.
    for key in client.get("confidential", []):
        confidential.add(f"victim.{key}")
    if "address" in household.get("confidential", []):
        confidential.add("victim.address")
    children = []
    for child in household["children"]:
        entry = _person(child, "kind")
        holders = ["cliënt" if holder == client["id"] else "andere partij" if holder == "other_party" else "overig"
                   for holder in child.get("parental_authority", [])]
        entry["parental_authority"] = " en ".join(holders) or "onbekend"
        if child.get("school"):
            entry["school"] = child["school"]
        for key in child.get("confidential", []):
            confidential.add(f"children.{key}")  # for every child: withholding too much is the safe side
        children.append(entry)
    draft: dict[str, Any] = {
        "reporter": dict(dossier["worker"]),
        "victim": victim,
        "children": children,
        "violence": list(dossier["violence"]),
        "signals": [{"date": s["date"], "kind": s["kind"], "description": s["description"]} for s in dossier["signals"]],
        "unsafety": dict(dossier["unsafety"]),
        "help_given": list(dossier["help_given"]),
        "network": [dict(m) for m in dossier["network"]],
        "care_providers": [dict(p) for p in dossier["care_providers"]],
    }
    other = dossier.get("other_party")
    if other:
        draft["other_party"] = _person(other, "pleger")
        for key in other.get("confidential", []):
            confidential.add(f"other_party.{key}")
    gemeentecode = household["gemeentecode"] if children else client["address"]["gemeentecode"]
    return draft, sorted(confidential), gemeentecode


def complete(draft: dict[str, Any], answers: Answers) -> dict[str, Any]:
    return {
        **draft,
        "meldcode": {"steps": sorted(set(answers.meldcode_steps)), "weighing": answers.weighing.model_dump(exclude_none=True),
                     "decision": answers.decision},
        "client_informed": answers.client_informed,
        **({"exception": answers.exception} if answers.exception else {}),
        **({"remarks": answers.remarks} if answers.remarks else {}),
    }


def meldrecht_evidence(answers: Answers, decided_by: str) -> dict[str, Any]:
    return {"decided_by": decided_by, "decided_at": datetime.now(timezone.utc).isoformat(),
            "weighing": answers.weighing.model_dump(), "decision": answers.decision,
            "client_informed": answers.client_informed, "exception": answers.exception}


def still_to_answer() -> list[dict[str, str]]:
    fields = [{"field": "meldcode_steps", "question": "Welke stappen van de meldcode heeft u gezet (1 t/m 5)?"}]
    fields += [{"field": f"weighing.{key}", "question": text} for key, text in WEIGHING_QUESTIONS.items()]
    fields += [
        {"field": "decision", "question": "Wat is uw besluit (stap 5)?"},
        {"field": "client_informed", "question": "Is de cliënt geïnformeerd over de melding?"},
        {"field": "exception", "question": "Zo nee, welke uitzondering geldt? " + "; ".join(MELDCODE_EXCEPTIONS)},
        {"field": "legal_basis", "question": "Meldt u met toestemming van de cliënt, of op grond van het meldrecht?"},
        {"field": "remarks", "question": "Uw eigen opmerkingen (optioneel)."},
    ]
    return fields


# --- XML ------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The XSD, compiled once per process."""
    return load_schema(XSD.read_bytes(), base_url=XSD.as_uri())


def _sub(parent: etree._Element, name: str, value: Any = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}")
    if value is not None:
        element.text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return element


def _optional(parent: etree._Element, name: str, value: Any) -> None:
    if value not in (None, "", []):
        _sub(parent, name, value)


def _betrokkene(parent: etree._Element, person: dict[str, Any], role: str) -> None:
    node = _sub(parent, "Betrokkene")
    _sub(node, "Rol", role)
    for name, key in (("Voornaam", "first_name"), ("Achternaam", "last_name"), ("Geslacht", "gender"),
                      ("Geboortedatum", "date_of_birth")):
        _sub(node, name, person[key])
    _optional(node, "BSN", person.get("bsn"))
    _optional(node, "Relatie", person.get("relation"))
    address = person.get("address")
    if address:
        adres = _sub(node, "Adres")
        for name, key in (("Straat", "street"), ("Huisnummer", "house_number"), ("Postcode", "postcode"),
                          ("Plaats", "city"), ("Gemeentecode", "gemeentecode")):
            _sub(adres, name, address[key])
    _optional(node, "Telefoon", person.get("phone"))
    _optional(node, "Gezag", person.get("parental_authority"))
    _optional(node, "School", person.get("school"))


def to_xml(fields: dict[str, Any], kenmerk: str) -> bytes:
    """Render the mapped (minimised) fields; raise a problem if the result is not valid."""
    try:
        root = etree.Element(f"{{{NAMESPACE}}}Melding", nsmap={None: NAMESPACE}, versie=VERSION)
        _sub(root, "Kenmerk", kenmerk)
        _sub(root, "Aangemaakt", datetime.now(timezone.utc).replace(microsecond=0).isoformat())
        reporter = fields["reporter"]
        melder = _sub(root, "Melder")
        for name, key in (("Naam", "name"), ("Organisatie", "organisation"), ("Functie", "role"), ("Telefoon", "phone")):
            _sub(melder, name, reporter[key])
        _optional(melder, "Email", reporter.get("email"))
        people = _sub(root, "Betrokkenen")
        _betrokkene(people, fields["victim"], "slachtoffer")
        if fields.get("other_party"):
            _betrokkene(people, fields["other_party"], "pleger")
        for child in fields.get("children", []):
            _betrokkene(people, child, "kind")
        aard = _sub(root, "AardGeweld")
        for form in fields["violence"]:
            _sub(aard, "Vorm", form)
        signalen = _sub(root, "Signalen")
        for signal in fields["signals"]:
            node = _sub(signalen, "Signaal")
            _sub(node, "Datum", signal["date"])
            _sub(node, "Soort", "waargenomen" if signal["kind"] == "observed" else "verteld")
            _sub(node, "Omschrijving", signal["description"])
        onveiligheid = _sub(root, "Onveiligheid")
        _sub(onveiligheid, "Acuut", fields["unsafety"]["acute"])
        _sub(onveiligheid, "Structureel", fields["unsafety"]["structural"])
        meldcode = _sub(root, "Meldcode")
        steps = _sub(meldcode, "StappenGezet")
        for step in fields["meldcode"]["steps"]:
            _sub(steps, "Stap", step)
        weighing = fields["meldcode"]["weighing"]
        kader = _sub(meldcode, "Afwegingskader")
        for name, key in (("Vermoeden", "vermoeden"), ("AcuteOfStructureleOnveiligheid", "onveiligheid"),
                          ("EffectieveHulpMogelijk", "hulp_mogelijk"), ("HulpAanvaard", "hulp_aanvaard"),
                          ("HulpLeidtTotVeiligheid", "hulp_leidt_tot_veiligheid")):
            _sub(kader, name, weighing[key])
        _optional(kader, "Toelichting", weighing.get("toelichting"))
        _sub(meldcode, "Besluit", fields["meldcode"]["decision"])
        if fields.get("help_given"):
            hulp = _sub(root, "HulpVerleend")
            for item in fields["help_given"]:
                _sub(hulp, "Hulp", item)
        if fields.get("network"):
            netwerk = _sub(root, "Netwerk")
            for member in fields["network"]:
                node = _sub(netwerk, "Persoon")
                _sub(node, "Naam", member["name"])
                _sub(node, "Relatie", member["relation"])
                _sub(node, "Steunend", member["supportive"])
        if fields.get("care_providers"):
            providers = _sub(root, "Hulpverleners")
            for provider in fields["care_providers"]:
                node = _sub(providers, "Hulpverlener")
                _sub(node, "Naam", provider["name"])
                _sub(node, "Rol", provider["role"])
        info = _sub(root, "InformatieClient")
        _sub(info, "Geinformeerd", fields["client_informed"])
        _optional(info, "Uitzondering", fields.get("exception"))
        _optional(root, "Opmerkingen", fields.get("remarks"))
    except (KeyError, TypeError):
        raise Problem("message-invalid", "The melding lacks a field the schema requires.") from None
    validate(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def validate(root: etree._Element) -> None:
    xsd = schema()
    if not xsd.validate(root):
        errors = [{"line": str(e.line), "reason": e.type_name} for e in list(xsd.error_log)[:10]]
        raise Problem("message-invalid", f"The melding does not validate against the VT melding schema {VERSION}.",
                      extensions={"errors": errors})
