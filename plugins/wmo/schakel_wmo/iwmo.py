"""iWmo 3.2 messages: identify, validate against the official XSDs, and answer with a retour.

The official XSDs ship in ``xsd/`` (see ``xsd/SOURCES.txt``) and are compiled once per process.
Documents are parsed only through the core's safe parser. A retour (WMO302 on a 301, …) mirrors
the message it answers, in the retour's namespace, with the retour header fields and a
``RetourCodes`` block closing each message class — as the standard prescribes.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from lxml import etree

from gateway.core.problems import Problem
from gateway.core.xml import load_schema, parse_xml

XSD_DIR = Path(__file__).with_name("xsd")
BASIS = "http://www.istandaarden.nl/iwmo/3_2/basisschema/schema"
VERSION_PREFIX = "http://www.istandaarden.nl/iwmo/3_2/"
CODES = {"WMO301": "414", "WMO302": "415", "WMO305": "418", "WMO306": "419", "WMO307": "420", "WMO308": "421",
         "WMO315": "444", "WMO316": "445", "WMO317": "480", "WMO318": "481", "WMO319": "482", "WMO320": "483",
         "WMO323": "484"}
# The retour that answers each inbound message, and the message classes that carry RetourCodes.
# WMO316 is itself a retour (on our 315): nothing answers it.
RETOUR = {"WMO301": "WMO302", "WMO319": "WMO320"}
RETOUR_CLASSES = {"WMO302": ("Client", "Relatie", "Contact", "ToegewezenProduct"), "WMO320": ("Antwoord",)}
ACCEPTED = "0200"
TECHNICAL = "0001"
NOT_UNIQUE = "9056"
DATED_AHEAD = "8848"  # "Dagtekening moet gelijk zijn aan of voor de systeemdatum liggen."
NO_EARLIER_MESSAGE = "9063"  # "Het bericht kan niet verwerkt worden omdat geen eerder bericht ontvangen is."


def namespace(bericht: str) -> str:
    return f"{VERSION_PREFIX}{bericht.lower()}/schema"


@lru_cache(maxsize=32)  # one per message kind; identify() admits only the standard's
def has_schema(bericht: str) -> bool:
    """Whether the official XSD of ``bericht`` ships with the plugin (WMO320's is not in our
    reference set: a 320 is built by the same rule as a 302, and checked for that structure).
    The XSDs are package data and do not change while the process runs: asked once per kind,
    not with a file-system call for every message."""
    return (XSD_DIR / f"{bericht}.xsd").exists()


@lru_cache(maxsize=None)
def enumeration(simple_type: str) -> dict[str, str]:
    """A code list of the basisschema (value → its official description), read from the XSD
    itself so labels never drift from the standard."""
    root = parse_xml((XSD_DIR / "basisschema.xsd").read_bytes())
    xs = "{http://www.w3.org/2001/XMLSchema}"
    for node in root.iterfind(f"{xs}simpleType"):
        if node.get("name") == simple_type:
            return {e.get("value"): (e.findtext(f"{xs}annotation/{xs}documentation") or "").strip()
                    for e in node.iter(f"{xs}enumeration")}
    raise KeyError(simple_type)


@lru_cache(maxsize=None)
def schema(bericht: str) -> etree.XMLSchema:
    """The official XSD of ``bericht``, compiled once (imports resolve inside ``xsd/``)."""
    path = XSD_DIR / f"{bericht}.xsd"
    return load_schema(path.read_bytes(), base_url=path.as_uri())


@dataclass(frozen=True)
class Header:
    bericht: str
    code: str
    afzender: str
    ontvanger: str
    identificatie: str
    dagtekening: str


def identify(root: etree._Element) -> str:
    """Which iWmo 3.2 message this is, from its root's namespace."""
    tag = root.tag if isinstance(root.tag, str) else ""
    if not tag.startswith("{") or not tag.endswith("}Bericht"):
        raise Problem("message-invalid", "Not an iWmo message: the root must be a namespaced Bericht.")
    ns = tag[1:].split("}", 1)[0]
    if not ns.startswith(VERSION_PREFIX):
        raise Problem("message-invalid", "Not an iWmo 3.2 message (an earlier or other release's namespace).",
                      extensions={"expected_namespace_prefix": VERSION_PREFIX})
    bericht = ns[len(VERSION_PREFIX):].split("/", 1)[0].upper()
    if bericht not in CODES:
        raise Problem("message-invalid", f"{bericht} is not an iWmo 3.2 message this gateway knows.")
    return bericht


def parse(body: bytes) -> tuple[str, etree._Element]:
    root = parse_xml(body)
    return identify(root), root


def validate(bericht: str, root: etree._Element) -> list[dict[str, str]]:
    """Schema errors as line, element path and kind — never the offending value. A message of the
    standard whose XSD the plugin does not ship (a WMO306, say) cannot be validated, so it is
    refused as one this gateway does not take, not crashed on (found by the fuzzer)."""
    if not has_schema(bericht):
        raise Problem("message-invalid", f"{bericht} is an iWmo 3.2 message this gateway does not validate or accept.")
    xsd = schema(bericht)
    if xsd.validate(root):
        return []
    return [{"line": str(error.line), "path": _local_path(error.path), "reason": error.type_name}
            for error in list(xsd.error_log)[:20]]


def _local_path(path: str | None) -> str:
    # lxml gives Clark-notation steps ({namespace}Name[1]); the names alone say where.
    return "/".join(step.split("}")[-1] for step in (path or "").split("/") if step)


def header(bericht: str, root: etree._Element) -> Header:
    ns = {"m": namespace(bericht), "b": BASIS}

    def text(path: str) -> str:
        return (root.findtext(path, namespaces=ns) or "").strip()

    return Header(bericht=bericht, code=text("m:Header/m:BerichtCode"), afzender=text("m:Header/m:Afzender"),
                  ontvanger=text("m:Header/m:Ontvanger"),
                  identificatie=text("m:Header/m:BerichtIdentificatie/b:Identificatie"),
                  dagtekening=text("m:Header/m:BerichtIdentificatie/b:Dagtekening"))


def new_identificatie() -> str:
    """A message identification: at most 12 characters, unique per sender and message kind."""
    return uuid.uuid4().hex[:12].upper()


def _structure_errors(bericht: str, root: etree._Element) -> list[dict[str, str]]:
    """For a retour whose XSD we do not ship: the header and every retour class carry codes."""
    ns = {"m": namespace(bericht)}
    missing = [name for name in ("BerichtCode", "IdentificatieRetour", "DagtekeningRetour", "XsdVersieRetour", "RetourCodes")
               if root.find(f"m:Header/m:{name}", namespaces=ns) is None]
    for cls in RETOUR_CLASSES[bericht]:
        missing += [cls for node in root.iterfind(f".//m:{cls}", namespaces=ns) if node.find("m:RetourCodes", namespaces=ns) is None]
    return [{"line": "0", "reason": f"missing {name}"} for name in missing]


def path_of(element: etree._Element) -> str:
    """How :func:`retour` is told which message class a code belongs to."""
    return element.getroottree().getpath(element)


def retour(bericht: str, root: etree._Element, codes: dict[str, list[str]] | None = None,
           header_codes: list[str] | None = None, today: date | None = None) -> bytes:
    """The retour on ``root``: every class accepted (0200) unless ``codes`` (keyed by
    :func:`path_of` of a class element in ``root``) or ``header_codes`` say otherwise.
    Valid against the retour's XSD, or not returned at all."""
    target = RETOUR[bericht]
    source_ns, target_ns = namespace(bericht), namespace(target)
    classes = RETOUR_CLASSES[target]
    codes = codes or {}
    copied = copy.deepcopy(root)
    source, renamed = f"{{{source_ns}}}", f"{{{target_ns}}}"

    def add_codes(parent: etree._Element, values: list[str]) -> None:
        block = etree.SubElement(parent, f"{renamed}RetourCodes")
        for value in values:
            etree.SubElement(block, f"{renamed}RetourCode").text = value

    # One pass over the message's own elements (lxml filters them by namespace in C). Paths are
    # taken first, while they are still the paths in ``root`` the codes were given for.
    nodes = list(copied.iter(f"{source}*"))
    paths = {node: path_of(node) for node in nodes if node.tag[len(source):] in classes} if codes else {}
    for node in nodes:
        local = node.tag[len(source):]
        if local in classes:
            add_codes(node, codes.get(paths[node], [ACCEPTED]) if codes else [ACCEPTED])
        node.tag = renamed + local
    head = copied.find(f"{renamed}Header")
    assert head is not None
    head.find(f"{renamed}BerichtCode").text = CODES[target]
    versie = head.find(f"{renamed}XsdVersie")
    etree.SubElement(head, f"{renamed}IdentificatieRetour").text = new_identificatie()
    etree.SubElement(head, f"{renamed}DagtekeningRetour").text = (today or date.today()).isoformat()
    retour_versie = copy.deepcopy(versie)
    retour_versie.tag = f"{renamed}XsdVersieRetour"
    head.append(retour_versie)
    add_codes(head, header_codes or [ACCEPTED])
    nsmap = {"iwmo": BASIS, target.lower(): target_ns}
    cleaned = etree.Element(copied.tag, nsmap=nsmap)
    cleaned.extend(list(copied))
    etree.cleanup_namespaces(cleaned)
    errors = validate(target, cleaned) if has_schema(target) else _structure_errors(target, cleaned)
    if errors:
        raise Problem("internal-error", f"The {target} retour would not validate; it was not sent.",
                      extensions={"errors": errors})
    return etree.tostring(cleaned, xml_declaration=True, encoding="UTF-8")
