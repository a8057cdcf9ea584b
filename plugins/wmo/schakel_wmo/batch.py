"""Batch import: many iWmo messages at once (a municipality's export, a backlog after an outage).

A batch is a ZIP archive of message files, or one XML message. Each message goes through exactly
the checks and processing of the inbox (``api.process``), as if its municipality had sent it, so a
message imported twice — or once by batch and once by the API — is processed once. Every message
gets its own outcome; one broken message never stops the others. The archive is read in memory
with limits on entries and sizes, and nothing from it is ever written to disk by name.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from fastapi.responses import Response
from lxml import etree
from sqlalchemy import select

from gateway.core.auth import Principal
from gateway.core.models import Partner
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from gateway.core.xml import XmlLimits
from schakel_wmo import iwmo

MAX_MESSAGES = 50_000
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_MESSAGE_BYTES = XmlLimits().max_bytes


@dataclass
class Outcome:
    name: str
    outcome: str  # "geaccepteerd" | "afgekeurd" (a retour with rejection codes) | "fout" (a problem)
    bericht: str | None = None
    retourcodes: list[str] = field(default_factory=list)
    problem: str | None = None
    detail: str | None = None
    exchange: str | None = None
    replayed: bool = False
    retour: bytes | None = field(default=None, repr=False)

    def public(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("retour")
        return data


def messages(data: bytes) -> Iterator[tuple[str, bytes | Problem]]:
    """The messages of a batch, by name; an entry too large to read is a problem, not a crash."""
    if not data.startswith(b"PK"):  # every ZIP, even an empty one, starts so
        if not data.strip():
            raise Problem("validation-failed", "The batch is empty: it holds no messages.")
        yield "bericht.xml", data
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [info for info in archive.infolist()
                   if not info.is_dir() and not info.filename.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, ValueError):
        raise Problem("bad-request", "The batch is not a readable ZIP archive.") from None
    if not entries:
        raise Problem("validation-failed", "The batch is empty: it holds no messages.")
    if len(entries) > MAX_MESSAGES:
        raise Problem("payload-too-large", f"A batch holds at most {MAX_MESSAGES} messages.")
    total = 0
    for info in sorted(entries, key=lambda i: i.filename):
        # The declared size can lie (a zip bomb): read at most one byte more than allowed.
        try:
            with archive.open(info) as handle:
                body = handle.read(MAX_MESSAGE_BYTES + 1)
        except (zipfile.BadZipFile, RuntimeError, ValueError, NotImplementedError, EOFError):
            yield info.filename, Problem("bad-request", "This archive entry cannot be read.")
            continue
        total += len(body)
        if total > MAX_TOTAL_BYTES:
            raise Problem("payload-too-large", "The batch unpacks to more than the gateway reads in one import.")
        if len(body) > MAX_MESSAGE_BYTES:
            yield info.filename, Problem("payload-too-large", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.")
            continue
        yield info.filename, body


def _municipalities(gw: Gateway) -> dict[str, Partner]:
    with gw.store.reading() as session:
        rows = session.scalars(select(Partner).where(Partner.connector_type == "wmo")).all()
    return {str(p.identifiers.get("gemeentecode")): p for p in rows if p.identifiers.get("gemeentecode")}


def _sender(body: bytes, municipalities: dict[str, Partner]) -> Partner:
    bericht, root = iwmo.parse(body)
    header = iwmo.header(bericht, root)
    code = header.ontvanger if bericht == "WMO316" else header.afzender
    partner = municipalities.get(code)
    if partner is None:
        raise Problem("no-partner", "The message's municipality is not a registered wmo partner.")
    return partner


def _outcome(name: str, response: Response) -> Outcome:
    body = bytes(response.body)
    replayed = response.headers.get("Idempotent-Replayed") == "true"
    if response.media_type == "application/xml":
        root = etree.fromstring(body)  # our own retour, just built
        bericht = root.tag.split("}")[0].rsplit("/", 2)[-2].upper()
        codes = [c.text or "" for c in root.iter(f"{{{iwmo.namespace(bericht)}}}RetourCode")]
        accepted = all(code == iwmo.ACCEPTED for code in codes)
        return Outcome(name, "geaccepteerd" if accepted else "afgekeurd", bericht, sorted(set(codes)),
                       replayed=replayed, retour=body)
    data = json.loads(body)
    if response.status_code >= 400:
        return Outcome(name, "fout", problem=str(data.get("type", "")).rsplit("/", 1)[-1], detail=data.get("detail"))
    return Outcome(name, "geaccepteerd", data.get("received"), data.get("retourcodes") or [],
                   exchange=data.get("exchange_id"))


async def run(gw: Gateway, importer: Principal, data: bytes,
              progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Import every message of ``data``, one after the other, each as its municipality's own."""
    from schakel_wmo.api import process

    municipalities = _municipalities(gw)
    outcomes: list[Outcome] = []
    for name, body in messages(data):
        try:
            if isinstance(body, Problem):
                raise body
            partner = _sender(body, municipalities)
            acting = Principal(token_id=importer.token_id, name=importer.name, role=importer.role,
                               partner_id=partner.id, access_point=importer.access_point or "batch-import")
            outcome = _outcome(name, await process(gw, acting, partner, body))
        except Problem as problem:
            outcome = Outcome(name, "fout", problem=problem.slug, detail=problem.detail)
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts = {"total": len(outcomes), "geaccepteerd": 0, "afgekeurd": 0, "fout": 0}
    for outcome in outcomes:
        counts[outcome.outcome] += 1
    return counts
