"""The municipality's ondersteuningsplan in; a draft gezinsactieplan for the caseworker out.

The plan arrives as XML valid against ``schemas/ondersteuningsplan-1.0.xsd`` (documented in
docs/flows/wmo.md). Plans scored with the older 11-domain ZRM 2013 are converted to ZRM 2017 and
say so in the draft. The gezinsactieplan is due 10 days after signing, once the arrangement is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.core.problems import Problem
from gateway.core.xml import load_schema, parse_xml

XSD = Path(__file__).with_name("schemas") / "ondersteuningsplan-1.0.xsd"
NS = "urn:schakel:ondersteuningsplan:1.0"
DUE_DAYS = 10

ZRM_2017 = {
    "financien": "Financiën", "werk_opleiding": "Werk & opleiding", "tijdsbesteding": "Tijdsbesteding",
    "huisvesting": "Huisvesting", "huiselijke_relaties": "Huiselijke relaties",
    "geestelijke_gezondheid": "Geestelijke gezondheid", "lichamelijke_gezondheid": "Lichamelijke gezondheid",
    "middelengebruik": "Middelengebruik", "basale_adl": "Basale ADL", "instrumentele_adl": "Instrumentele ADL",
    "sociaal_netwerk": "Sociaal netwerk", "maatschappelijke_participatie": "Maatschappelijke participatie",
    "justitie": "Justitie",
}
# ZRM 2013 → 2017. Dagbesteding split into Werk & opleiding and Tijdsbesteding, ADL into basale and
# instrumentele ADL: the score and results go to the domain that kept the old one's core, and the
# draft asks the caseworker to check the other half.
ZRM_2013 = {
    "financien": ("financien", None), "huisvesting": ("huisvesting", None),
    "huiselijke_relaties": ("huiselijke_relaties", None), "geestelijke_gezondheid": ("geestelijke_gezondheid", None),
    "lichamelijke_gezondheid": ("lichamelijke_gezondheid", None), "sociaal_netwerk": ("sociaal_netwerk", None),
    "maatschappelijke_participatie": ("maatschappelijke_participatie", None), "justitie": ("justitie", None),
    "verslaving": ("middelengebruik", "ZRM 2013 'Verslaving' heet in ZRM 2017 'Middelengebruik'."),
    "dagbesteding": ("tijdsbesteding", "Omgezet van ZRM 2013 'Dagbesteding': beoordeel ook het domein Werk & opleiding."),
    "adl": ("basale_adl", "Omgezet van ZRM 2013 'ADL': beoordeel ook het domein Instrumentele ADL."),
}
SCORES = {1: "acute problematiek", 2: "niet zelfredzaam", 3: "beperkt zelfredzaam", 4: "voldoende zelfredzaam",
          5: "volledig zelfredzaam"}


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return load_schema(XSD.read_bytes(), base_url=XSD.as_uri())


@dataclass(frozen=True)
class Plan:
    plan_id: str
    bsn: str
    gemeentecode: str
    consulent: dict[str, str | None]
    signed: date
    arrangement: str | None
    zrm_version: str
    domains: list[dict[str, Any]]
    children: list[dict[str, Any]]

    @property
    def due(self) -> date | None:
        """Ten calendar days after signing — only once the arrangement is known."""
        return self.signed + timedelta(days=DUE_DAYS) if self.arrangement else None


def parse(body: bytes) -> Plan:
    root = parse_xml(body)
    if root.tag != f"{{{NS}}}Ondersteuningsplan":
        raise Problem("message-invalid", "Not a Schakel ondersteuningsplan 1.0 (root element or namespace).",
                      extensions={"expected_namespace": NS})
    xsd = schema()
    if not xsd.validate(root):
        errors = [{"line": str(e.line), "reason": e.type_name} for e in list(xsd.error_log)[:20]]
        raise Problem("message-invalid", "The ondersteuningsplan does not validate against its schema.",
                      extensions={"errors": errors})
    ns = {"o": NS}

    def text(node: etree._Element, path: str) -> str | None:
        value = node.findtext(path, namespaces=ns)
        return value.strip() if value else None

    version = "2017" if root.find("o:Zrm2017", namespaces=ns) is not None else "2013"
    domains = []
    for node in root.iterfind(f"o:Zrm{version}/o:Domein", namespaces=ns):
        code, note = (node.get("code"), None) if version == "2017" else ZRM_2013[node.get("code", "")]
        score = int(node.get("score", "0"))
        domains.append({"code": code, "name": ZRM_2017[code], "score": score, "score_label": SCORES[score],
                        "results": [r.text.strip() for r in node.iterfind("o:Resultaat", namespaces=ns) if r.text],
                        "conversion_note": note})
    children = [{"first_name": text(kid, "o:Voornaam"), "date_of_birth": text(kid, "o:Geboortedatum"),
                 "kio": kid.find("o:Kio", namespaces=ns).get("ondersteuning") in ("true", "1"),
                 "results": [r.text.strip() for r in kid.iterfind("o:Kio/o:Resultaat", namespaces=ns) if r.text]}
                for kid in root.iterfind("o:Kinderen/o:Kind", namespaces=ns)]
    return Plan(
        plan_id=text(root, "o:PlanId") or "", bsn=text(root, "o:Client/o:Bsn") or "",
        gemeentecode=text(root, "o:Gemeente/o:Code") or "",
        consulent={"name": text(root, "o:WmoConsulent/o:Naam"), "phone": text(root, "o:WmoConsulent/o:Telefoon"),
                   "email": text(root, "o:WmoConsulent/o:Email")},
        signed=date.fromisoformat(text(root, "o:Ondertekend") or ""), arrangement=text(root, "o:Arrangement"),
        zrm_version=version, domains=domains, children=children)


def draft_data(plan: Plan, dossier_id: str) -> dict[str, Any]:
    """What the mapping ``zrm2017_gezinsactieplan`` turns into the draft: a section per domain that
    has agreed results, each result a goal, and a KIO section per child."""
    return {
        "dossier_id": dossier_id,
        "plan_id": plan.plan_id,
        "gemeentecode": plan.gemeentecode,
        "signed": plan.signed.isoformat(),
        "arrangement": plan.arrangement,
        "due": plan.due.isoformat() if plan.due else None,
        "zrm_version": plan.zrm_version,
        "consulent": plan.consulent,
        "title": f"Gezinsactieplan (concept) bij ondersteuningsplan {plan.plan_id}",
        "domains": [{**d, "goals": [{"result": r} for r in d["results"]]} for d in plan.domains if d["results"]],
        "children": [{**c, "goals": [{"result": r} for r in c["results"]]} for c in plan.children],
    }


def status(due: date | None, delivered: bool, today: date | None = None) -> str:
    """Where a plan stands: opgeleverd, te_laat, bijna (2 days or less), open, or wacht_op_arrangement."""
    today = today or date.today()
    if delivered:
        return "opgeleverd"
    if due is None:
        return "wacht_op_arrangement"
    if today > due:
        return "te_laat"
    return "bijna" if (due - today).days <= 2 else "open"
