"""WMO301 (toewijzing): from a valid message to the arrangements it allocates."""

from __future__ import annotations

from typing import Any

from lxml import etree

from schakel_wmo import iwmo


def allocations(root: etree._Element) -> tuple[str, list[dict[str, Any]]]:
    """The client's BSN and every allocation (ToegewezenProduct) in a 301."""
    ns = {"m": iwmo.namespace("WMO301"), "b": iwmo.BASIS}
    client = root.find("m:Client", namespaces=ns)
    assert client is not None  # schema-valid 301s have one Client
    bsn = client.findtext("m:Bsn", namespaces=ns) or ""
    found = []
    for product in client.iterfind("m:ToegewezenProducten/m:ToegewezenProduct", namespaces=ns):
        def text(path: str) -> str | None:
            value = product.findtext(path, namespaces=ns)
            return value.strip() if value else None

        volume = text("m:Omvang/b:Volume")
        found.append({
            "allocation_number": text("m:ToewijzingNummer"),
            "reference": text("m:ReferentieAanbieder"),
            "product_category": text("m:Product/b:Categorie"),
            "product_code": text("m:Product/b:Code"),
            "start": text("m:Ingangsdatum"),
            "end": text("m:Einddatum"),
            "volume": int(volume) if volume else None,
            "unit": text("m:Omvang/b:Eenheid"),
            "frequency": text("m:Omvang/b:Frequentie"),
        })
    return bsn, found
