"""Outbound iWmo 3.2 messages from the provider: WMO305 (start), WMO307 (stop), WMO315 (request an
allocation) and WMO317 (request a change).

Each is built from the fields its route's mapping let through — nothing else reaches the XML — and
validated against the official XSD before it is queued: a message that would not validate raises
a problem and no exchange is written. The identification is chosen once, when the worker's request
becomes an exchange, so every retry sends the same ``BerichtIdentificatie``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from gateway.core.problems import Problem
from schakel_wmo import iwmo

GENDER = {"M": "1", "F": "2", "X": "0"}
# Dutch surname prefixes, longest first, so "van der Berg" splits as ("van der", "Berg").
PREFIXES = sorted(["de", "den", "der", "het", "in 't", "op de", "ten", "ter", "te", "van", "van de", "van den",
                   "van der", "van het", "van 't", "von", "'t"], key=len, reverse=True)
KINDS = {"start": "WMO305", "stop": "WMO307", "toewijzing": "WMO315", "wijziging": "WMO317"}


def split_surname(last_name: str) -> tuple[str, str | None]:
    """("de Wit") → ("Wit", "de"): iWmo keeps the voorvoegsel apart from the achternaam."""
    lowered = last_name.lower()
    for prefix in PREFIXES:
        if lowered.startswith(prefix + " ") and len(last_name) > len(prefix) + 1:
            return last_name[len(prefix) + 1:].strip(), last_name[:len(prefix)]
    return last_name, None


def client_fields(client: dict[str, Any]) -> dict[str, Any]:
    """The iWmo client identity from a Care4 client record."""
    achternaam, voorvoegsel = split_surname(client["last_name"])
    first = client.get("first_name") or ""
    return {"bsn": client.get("bsn"), "geboortedatum": client["date_of_birth"], "geslacht": GENDER[client["gender"]],
            "achternaam": achternaam, "voorvoegsel": voorvoegsel, "voornamen": first or None,
            "voorletters": "".join(part[0].upper() for part in first.split()) or None}


class _Builder:
    def __init__(self, bericht: str) -> None:
        self.bericht = bericht
        self.ns = iwmo.namespace(bericht)
        self.root = etree.Element(f"{{{self.ns}}}Bericht", nsmap={"iwmo": iwmo.BASIS, bericht.lower(): self.ns})

    def add(self, parent: etree._Element, name: str, value: Any = None, basis: bool = False) -> etree._Element | None:
        """A child element; an element with a value of None is left out (every optional field)."""
        if value is None:
            return None
        element = etree.SubElement(parent, f"{{{iwmo.BASIS if basis else self.ns}}}{name}")
        if value is not ...:
            element.text = str(value)
        return element

    def group(self, parent: etree._Element, name: str, basis: bool = False) -> etree._Element:
        element = self.add(parent, name, ..., basis)
        assert element is not None
        return element

    def header(self, header: dict[str, Any]) -> None:
        head = self.group(self.root, "Header")
        self.add(head, "BerichtCode", iwmo.CODES[self.bericht])
        self.add(head, "BerichtVersie", "3")
        self.add(head, "BerichtSubversie", "2")
        self.add(head, "Afzender", header["afzender"])
        self.add(head, "Ontvanger", header["ontvanger"])
        ident = self.group(head, "BerichtIdentificatie")
        self.add(ident, "Identificatie", header["identificatie"], basis=True)
        self.add(ident, "Dagtekening", header["dagtekening"], basis=True)
        versie = self.group(head, "XsdVersie")
        self.add(versie, "BasisschemaXsdVersie", "1.0.0", basis=True)
        self.add(versie, "BerichtXsdVersie", "1.0.0", basis=True)

    def client(self, client: dict[str, Any], full: bool = True) -> etree._Element:
        node = self.group(self.root, "Client")
        self.add(node, "Bsn", client.get("bsn"))
        if full:
            birth = self.group(node, "Geboortedatum")
            self.add(birth, "Datum", client.get("geboortedatum"), basis=True)
            self.add(node, "Geslacht", client.get("geslacht"))
            name = self.group(node, "Naam")
            surname = self.group(name, "Geslachtsnaam", basis=True)
            self.add(surname, "Achternaam", client.get("achternaam"), basis=True)
            self.add(surname, "Voorvoegsel", client.get("voorvoegsel"), basis=True)
            self.add(name, "Voornamen", client.get("voornamen"), basis=True)
            self.add(name, "Voorletters", client.get("voorletters"), basis=True)
        return node

    def product(self, parent: etree._Element, product: dict[str, Any]) -> None:
        if product.get("product_category"):
            node = self.group(parent, "Product")
            self.add(node, "Categorie", product["product_category"], basis=True)
            self.add(node, "Code", product.get("product_code"), basis=True)

    def omvang(self, parent: etree._Element, product: dict[str, Any]) -> None:
        if product.get("volume") is not None:
            node = self.group(parent, "Omvang")
            self.add(node, "Volume", product["volume"], basis=True)
            self.add(node, "Eenheid", product.get("unit"), basis=True)
            self.add(node, "Frequentie", product.get("frequency"), basis=True)


def build(fields: dict[str, Any]) -> bytes:
    """The XML of one outbound message from its mapped fields, valid against its XSD or refused."""
    bericht = fields["bericht"]
    b = _Builder(bericht)
    b.header(fields["header"])
    products = fields.get("products") or []
    if bericht in ("WMO305", "WMO307"):
        # Start and stop name the same allocation fields; a stop adds its reason and end date.
        kind = "Start" if bericht == "WMO305" else "Stop"
        client = b.client(fields["client"])
        group = b.group(client, f"{kind}Producten")
        for p in products:
            node = b.group(group, f"{kind}Product")
            b.add(node, "ToewijzingNummer", p.get("allocation_number"))
            b.product(node, p)
            b.add(node, "ToewijzingIngangsdatum", p.get("allocation_start"))
            b.add(node, "Begindatum", p.get("begindatum"))
            b.add(node, "RedenBeeindiging", p.get("reden"))
            b.add(node, "Einddatum", p.get("einddatum"))
            b.add(node, "StatusAanlevering", "1")
    elif bericht == "WMO315":
        client = b.client(fields["client"])
        b.add(client, "Commentaar", fields.get("commentaar"))
        group = b.group(client, "AangevraagdeProducten")
        for p in products:
            node = b.group(group, "AangevraagdProduct")
            b.add(node, "ReferentieAanbieder", p.get("reference"))
            b.product(node, p)
            b.add(node, "ToewijzingIngangsdatum", p.get("start"))
            b.add(node, "ToewijzingEinddatum", p.get("end"))
            b.omvang(node, p)
            referrer = b.group(node, "Verwijzer")
            b.add(referrer, "Type", (fields.get("verwijzer") or {}).get("type"), basis=True)
            b.add(referrer, "Naam", (fields.get("verwijzer") or {}).get("naam"), basis=True)
            b.add(node, "Commentaar", p.get("comment"))
    elif bericht == "WMO317":
        client = b.client(fields["client"], full=False)
        verzoek_fields = fields["verzoek"]
        verzoek = b.group(client, "Verzoek")
        b.add(verzoek, "ReferentieAanbieder", verzoek_fields.get("reference"))
        b.add(verzoek, "RedenVerzoek", verzoek_fields.get("reden"))
        for group_name, item_name, items in (("OngewijzigdeProducten", "OngewijzigdProduct", verzoek_fields.get("unchanged")),
                                              ("TeWijzigenProducten", "TeWijzigenProduct", verzoek_fields.get("changes")),
                                              ("NieuweProducten", "NieuwProduct", verzoek_fields.get("new"))):
            if not items:
                continue
            group = b.group(verzoek, group_name)
            for p in items:
                node = b.group(group, item_name)
                if item_name == "NieuwProduct":  # a new product has no allocation yet
                    b.product(node, p)
                else:
                    b.add(node, "ToewijzingNummer", p.get("allocation_number"))
                if item_name != "OngewijzigdProduct":
                    b.add(node, "GewensteIngangsdatum", p.get("start"))
                    b.add(node, "Einddatum", p.get("end"))
                    b.omvang(node, p)
    else:
        raise Problem("message-invalid", f"{bericht} is not a message the provider sends.")
    errors = iwmo.validate(bericht, b.root)
    if errors:
        # The worker's request (or the ECD's data) cannot make a valid message: say where, not what.
        raise Problem("message-invalid", f"The {bericht} built from this request does not validate against the official "
                      "iWmo 3.2 schema, so it was not queued.", extensions={"errors": errors})
    return etree.tostring(b.root, xml_declaration=True, encoding="UTF-8")
