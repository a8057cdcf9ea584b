"""Generated WMO301 batches for load and import tests: ``python -m schakel_wmo.generate 10000 out.zip``.

Every message is for one of the Care4 simulator's fictional clients (BSNs that pass the elfproef),
from its municipality, with a unique identification; each is checked against the official XSD
before it is written, so a batch never measures the rejection path by accident.
"""

from __future__ import annotations

import io
import sys
import zipfile
from datetime import date
from pathlib import Path

from gateway.core.xml import parse_xml
from schakel_care4.fixtures import build
from schakel_wmo import iwmo, outbound

TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<wmo301:Bericht xmlns:iwmo="{basis}" xmlns:wmo301="{ns}">
  <wmo301:Header>
    <wmo301:BerichtCode>414</wmo301:BerichtCode><wmo301:BerichtVersie>3</wmo301:BerichtVersie>
    <wmo301:BerichtSubversie>2</wmo301:BerichtSubversie>
    <wmo301:Afzender>{gemeente}</wmo301:Afzender><wmo301:Ontvanger>{agb}</wmo301:Ontvanger>
    <wmo301:BerichtIdentificatie><iwmo:Identificatie>{ident}</iwmo:Identificatie><iwmo:Dagtekening>{today}</iwmo:Dagtekening></wmo301:BerichtIdentificatie>
    <wmo301:XsdVersie><iwmo:BasisschemaXsdVersie>1.0.0</iwmo:BasisschemaXsdVersie><iwmo:BerichtXsdVersie>1.0.0</iwmo:BerichtXsdVersie></wmo301:XsdVersie>
  </wmo301:Header>
  <wmo301:Client>
    <wmo301:Bsn>{bsn}</wmo301:Bsn>
    <wmo301:Geboortedatum><iwmo:Datum>{birth}</iwmo:Datum></wmo301:Geboortedatum>
    <wmo301:Geslacht>{gender}</wmo301:Geslacht>
    <wmo301:Naam><iwmo:Geslachtsnaam><iwmo:Achternaam>{surname}</iwmo:Achternaam></iwmo:Geslachtsnaam><iwmo:NaamGebruik>1</iwmo:NaamGebruik></wmo301:Naam>
    <wmo301:Contactgegevens><wmo301:Contact><wmo301:Soort>01</wmo301:Soort></wmo301:Contact></wmo301:Contactgegevens>
    <wmo301:ToegewezenProducten>
      <wmo301:ToegewezenProduct>
        <wmo301:ToewijzingNummer>{allocation}</wmo301:ToewijzingNummer>
        <wmo301:Product><iwmo:Categorie>08</iwmo:Categorie><iwmo:Code>08A01</iwmo:Code></wmo301:Product>
        <wmo301:Toewijzingsdatum>{today}</wmo301:Toewijzingsdatum><wmo301:Toewijzingstijd>09:00:00</wmo301:Toewijzingstijd>
        <wmo301:Ingangsdatum>{today}</wmo301:Ingangsdatum>
        <wmo301:Omvang><iwmo:Volume>1</iwmo:Volume><iwmo:Eenheid>14</iwmo:Eenheid><iwmo:Frequentie>2</iwmo:Frequentie></wmo301:Omvang>
      </wmo301:ToegewezenProduct>
    </wmo301:ToegewezenProducten>
  </wmo301:Client>
</wmo301:Bericht>
"""


def messages(count: int, agb: str = "42420001", gemeente: str = "0384") -> list[tuple[str, bytes]]:
    clients = [c for c in build()["clients"].values() if c.get("bsn")]
    today = date.today().isoformat()
    found = []
    for n in range(count):
        client = clients[n % len(clients)]
        fields = outbound.client_fields(client)
        xml = TEMPLATE.format(basis=iwmo.BASIS, ns=iwmo.namespace("WMO301"), gemeente=gemeente, agb=agb,
                              ident=f"G{n:011d}", today=today, bsn=client["bsn"], birth=client["date_of_birth"],
                              gender=fields["geslacht"], surname=fields["achternaam"], allocation=f"{900000 + n}")
        found.append((f"wmo301-{n:06d}.xml", xml.encode()))
    errors = iwmo.validate("WMO301", parse_xml(found[0][1]))
    if errors:
        raise SystemExit(f"the generated WMO301 does not validate: {errors}")
    return found


def archive(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in messages(count):
            zf.writestr(name, body)
    return buffer.getvalue()


if __name__ == "__main__":
    Path(sys.argv[2]).write_bytes(archive(int(sys.argv[1])))
