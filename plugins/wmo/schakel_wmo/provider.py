"""What the provider tells the municipality: start and stop of care, and requests for an allocation
or a change — composed from the ECD, so nobody re-types a BSN, a name or an allocation number.

A worker names the dossier and what happened; this module reads the client and the arrangements
from Care4 and returns the envelope the route's mapping minimises and ``outbound.build`` renders.
The envelope fixes the ``BerichtIdentificatie`` (and the ``ReferentieAanbieder`` of a request)
once, so a retried exchange sends the same message.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.core import partners as partner_registry
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_wmo import iwmo, outbound

CORRELATION_PREFIX = "iwmo:"
ECD_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ALLOCATION = r"^[0-9]{1,9}$"  # iWmo LDT_Nummer: 0 to 999999999
REFERENCE = re.compile(r"^(?P<base>[0-9a-f]{32})(-\d{1,2})?$")


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dossier_id: str = Field(pattern=ECD_ID)
    allocation_numbers: list[Annotated[str, Field(pattern=ALLOCATION)]] = Field(min_length=1, max_length=20)
    begindatum: date


class StopIn(StartIn):
    einddatum: date
    reden: str = Field(description="RedenBeeindiging (iWmo code list, e.g. 19 = levering volgens plan beeindigd)")


class Requested(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_category: str = Field(pattern=r"^\d{2}$")
    product_code: str | None = Field(default=None, max_length=5)
    start: date
    end: date | None = None
    volume: int | None = Field(default=None, ge=1, le=99999999)
    unit: str | None = None
    frequency: str | None = None
    comment: str | None = Field(default=None, max_length=200)


class Verwijzer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="TypeVerwijzer (01 = gemeente, ...)")
    naam: str | None = Field(default=None, max_length=35)


class ToewijzingRequestIn(BaseModel):
    """A request for an allocation (WMO315)."""

    model_config = ConfigDict(extra="forbid")

    dossier_id: str = Field(pattern=ECD_ID)
    gemeentecode: str = Field(pattern=r"^\d{4}$")
    products: list[Requested] = Field(min_length=1, max_length=20)
    verwijzer: Verwijzer
    commentaar: str | None = Field(default=None, max_length=200)


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allocation_number: str = Field(pattern=ALLOCATION)
    start: date
    end: date | None = None
    volume: int | None = Field(default=None, ge=1, le=99999999)
    unit: str | None = None
    frequency: str | None = None


class WijzigingRequestIn(BaseModel):
    """A request to change allocations (WMO317): every current allocation of that municipality is
    either kept unchanged or changed, as the standard asks; new products may be added."""

    model_config = ConfigDict(extra="forbid")

    dossier_id: str = Field(pattern=ECD_ID)
    gemeentecode: str = Field(pattern=r"^\d{4}$")
    reden: str = Field(description="RedenVerzoek (1 = verandering clientsituatie)")
    changes: list[Change] = Field(default_factory=list, max_length=20)
    new: list[Requested] = Field(default_factory=list, max_length=20)


Kind = Literal["start", "stop", "toewijzing", "wijziging"]


def correlation_for(reference: str) -> str | None:
    """The correlation id of the request a ReferentieAanbieder belongs to, if it is one of ours."""
    match = REFERENCE.match(reference or "")
    return f"{CORRELATION_PREFIX}{match['base']}" if match else None


def _provider_code(gw: Gateway, gemeentecode: str) -> tuple[str, str]:
    """(partner id, our AGB code as that municipality knows us)."""
    with gw.store.reading() as session:
        partner = partner_registry.resolve(session, "wmo", "gemeentecode", gemeentecode)
        if partner is None:
            raise Problem("no-partner", "No wmo partner serves this gemeentecode.")
        agb = str((partner.config or {}).get("aanbieder_agb") or "")
    if not re.fullmatch(r"\d{8}", agb):
        raise Problem("validation-failed", "This municipality's partner has no aanbieder_agb (our 8-digit AGB code) "
                      "configured; a functional administrator sets it on the partner.")
    return partner.id, agb


def _header(agb: str, gemeentecode: str) -> dict[str, str]:
    return {"afzender": agb, "ontvanger": gemeentecode, "identificatie": iwmo.new_identificatie(),
            "dagtekening": date.today().isoformat()}


def _client(bundle: dict[str, Any]) -> dict[str, Any]:
    client = bundle["client"]
    if not client.get("bsn"):
        # Registered under an alias: iWmo cannot name this client, and we never invent a BSN.
        raise Problem("validation-failed", "This client is registered without a BSN; iWmo messages need one.")
    return outbound.client_fields(client)


def _envelope(kind: Kind, bundle: dict[str, Any], gemeentecode: str, agb: str, **rest: Any) -> dict[str, Any]:
    return {"bericht": outbound.KINDS[kind], "gemeentecode": gemeentecode, "dossier_id": bundle["dossier"]["id"],
            "client_id": bundle["client"]["id"], "header": _header(agb, gemeentecode), "client": _client(bundle), **rest}


def _allocations(arrangements: list[dict[str, Any]], numbers: list[str]) -> list[dict[str, Any]]:
    by_number = {a["allocation_number"]: a for a in arrangements}
    missing = [n for n in numbers if n not in by_number]
    if missing:
        raise Problem("validation-failed", "The ECD has no such allocation for this client.",
                      extensions={"unknown_allocations": missing})
    chosen = [by_number[n] for n in numbers]
    if len({a["municipality"] for a in chosen}) != 1:
        raise Problem("validation-failed", "Start and stop messages go to one municipality: name allocations of one.")
    return chosen


def start_or_stop(gw: Gateway, kind: Kind, body: StartIn | StopIn, bundle: dict[str, Any],
                  arrangements: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = _allocations(arrangements, body.allocation_numbers)
    gemeentecode = chosen[0]["municipality"]
    _, agb = _provider_code(gw, gemeentecode)
    products = []
    for a in chosen:
        product = {"allocation_number": a["allocation_number"], "product_category": a["product_category"],
                   "product_code": a.get("product_code"), "allocation_start": a["start"],
                   "begindatum": body.begindatum.isoformat()}
        if isinstance(body, StopIn):
            if body.reden not in iwmo.enumeration("LDT_RedenBeeindiging"):
                raise Problem("validation-failed", "reden is not an iWmo RedenBeeindiging code.",
                              extensions={"allowed": iwmo.enumeration("LDT_RedenBeeindiging")})
            product |= {"reden": body.reden, "einddatum": body.einddatum.isoformat()}
        products.append(product)
    return _envelope(kind, bundle, gemeentecode, agb, products=products)


def toewijzing_request(gw: Gateway, body: ToewijzingRequestIn, bundle: dict[str, Any]) -> dict[str, Any]:
    _, agb = _provider_code(gw, body.gemeentecode)
    base = uuid.uuid4().hex
    products = [{**p.model_dump(mode="json"), "reference": f"{base}-{n}"} for n, p in enumerate(body.products, 1)]
    return _envelope("toewijzing", bundle, body.gemeentecode, agb, products=products, reference=base,
                     verwijzer=body.verwijzer.model_dump(), commentaar=body.commentaar)


def wijziging_request(gw: Gateway, body: WijzigingRequestIn, bundle: dict[str, Any],
                      arrangements: list[dict[str, Any]]) -> dict[str, Any]:
    _, agb = _provider_code(gw, body.gemeentecode)
    current = {a["allocation_number"] for a in arrangements
               if a["municipality"] == body.gemeentecode and a.get("status") == "actief"}
    changed = {c.allocation_number for c in body.changes}
    if changed - current:
        raise Problem("validation-failed", "A change names an allocation that is not current for this client.",
                      extensions={"unknown_allocations": sorted(changed - current)})
    if not body.changes and not body.new:
        raise Problem("validation-failed", "A change request changes or adds at least one product.")
    base = uuid.uuid4().hex
    verzoek = {"reference": base, "reden": body.reden,
               "unchanged": [{"allocation_number": n} for n in sorted(current - changed)],
               "changes": [c.model_dump(mode="json") for c in body.changes],
               "new": [p.model_dump(mode="json") for p in body.new]}
    return _envelope("wijziging", bundle, body.gemeentecode, agb, verzoek=verzoek, reference=base)
