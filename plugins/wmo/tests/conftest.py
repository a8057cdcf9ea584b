"""A gateway wired to the Care4 ECD simulator and two municipalities over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET
from schakel_care4.simulator import create_app as create_care4
from schakel_wmo import iwmo
from schakel_wmo.simulator import create_app as create_municipality
from tests.servers import ThreadServer

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "iwmo-3.2" / "voorbeeldberichten"
AGB = "42420001"  # the Ontvanger of the official WMO301 example: the provider these tests play


@dataclass
class WmoWorld:
    live: Any
    care4: ThreadServer
    municipality: ThreadServer

    def post(self, xml: bytes, partner: str = "gemeente-diemen") -> httpx.Response:
        with self.live.client("partner", partner) as municipality:
            return municipality.post("/partners/wmo/berichten", content=xml, headers={"Content-Type": "application/xml"})

    def worker(self) -> httpx.Client:
        return self.live.client("hulpverlener")

    def arrangements(self) -> dict[str, Any]:
        return self.care4.app.state.ecd.arrangements

    def notes(self, dossier_id: str) -> list[dict[str, Any]]:
        return [n for n in self.care4.app.state.ecd.notes.values() if n["dossier_id"] == dossier_id]

    def received(self) -> dict[str, Any]:
        return httpx.get(self.municipality.url + "/_received", timeout=10).json()

    def control_municipality(self, **settings: Any) -> None:
        httpx.post(self.municipality.url + "/_control", json=settings, timeout=10).raise_for_status()


@pytest.fixture
def wmo_world(live_gateway):
    if not EXAMPLES.exists():
        pytest.skip(f"the official iWmo examples are not at {EXAMPLES}")
    with ThreadServer(create_care4(), ready_path="/docs") as care4, \
            ThreadServer(create_municipality(), ready_path="/_received") as municipality:
        live_gateway.add_partner("care4-ecd", care4.url, connector_type="care4", consenting_clients=(),
                                 config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        live_gateway.add_partner("gemeente-diemen", municipality.url, connector_type="wmo", consenting_clients=(),
                                 identifiers={"gemeentecode": "0384"}, routing={"gemeentecode": ["0384"]},
                                 config={"path": "/berichten", "aanbieder_agb": AGB})
        live_gateway.add_partner("gemeente-utrecht", "http://127.0.0.1:9/berichten", connector_type="wmo",
                                 consenting_clients=(), identifiers={"gemeentecode": "0344"},
                                 routing={"gemeentecode": ["0344"]})
        yield WmoWorld(live_gateway, care4, municipality)


def example(name: str) -> bytes:
    return (EXAMPLES / f"{name}.xml").read_bytes()


def addressed_to_us(xml: bytes) -> bytes:
    """The official WMO319 example is addressed to another provider (65656055); these tests play AGB."""
    return xml.replace(b"<wmo319:Ontvanger>65656055</wmo319:Ontvanger>", f"<wmo319:Ontvanger>{AGB}</wmo319:Ontvanger>".encode())


def retour_codes(content: bytes, bericht: str = "WMO302") -> list[str]:
    ns = {"r": iwmo.namespace(bericht)}
    return [c.text for c in etree.fromstring(content).iterfind(".//r:RetourCode", namespaces=ns)]


def header_codes(content: bytes, bericht: str = "WMO302") -> list[str]:
    ns = {"r": iwmo.namespace(bericht)}
    return [c.text for c in etree.fromstring(content).iterfind("r:Header/r:RetourCodes/r:RetourCode", namespaces=ns)]
