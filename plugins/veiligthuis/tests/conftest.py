"""A gateway wired to the Care4 and Veilig Thuis simulators over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from schakel_care4.fixtures import REGIONS
from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET
from schakel_care4.simulator import create_app as create_care4
from schakel_veiligthuis.simulator import create_app as create_vt
from tests.servers import ThreadServer


@dataclass
class VtWorld:
    live: Any
    care4: ThreadServer
    vt: ThreadServer

    def control_vt(self, **settings: Any) -> None:
        httpx.post(self.vt.url + "/_control", json=settings, timeout=10).raise_for_status()

    def control_care4(self, **settings: Any) -> None:
        httpx.post(self.care4.url + "/_control", json=settings, timeout=10).raise_for_status()

    def vt_received(self) -> dict[str, Any]:
        return httpx.get(self.vt.url + "/_received", timeout=10).json()

    @property
    def ecd(self) -> Any:
        return self.care4.app.state.ecd


@pytest.fixture
def vt_world(live_gateway) -> Any:
    with ThreadServer(create_care4(), ready_path="/docs") as care4, ThreadServer(create_vt(), ready_path="/_received") as vt:
        live_gateway.add_partner("care4-ecd", care4.url, connector_type="care4", consenting_clients=(),
                                 config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        tokens = {}
        for region, codes in REGIONS.items():
            live_gateway.add_partner(f"vt-{region}", f"{vt.url}/{region}/meldingen", connector_type="veiligthuis",
                                     consenting_clients=(), routing={"gemeentecode": codes})
            tokens[region] = live_gateway.token("partner", f"vt-{region}")
        world = VtWorld(live_gateway, care4, vt)
        world.control_vt(callback_url=live_gateway.url, tokens=tokens, ack_delay=0.05)
        yield world


def answers(basis: str = "meldrecht", informed: bool = False, **extra: Any) -> dict[str, Any]:
    body = {
        "meldcode_steps": [1, 2, 3, 4, 5],
        "weighing": {"vermoeden": True, "onveiligheid": True, "hulp_mogelijk": False, "hulp_aanvaard": False,
                     "hulp_leidt_tot_veiligheid": False, "toelichting": "Acute onveiligheid, hulp alleen niet voldoende."},
        "decision": "melden bij Veilig Thuis",
        "client_informed": informed,
        "legal_basis": basis,
        "remarks": "Eigen opmerking van de hulpverlener.",
    }
    if not informed:
        body["exception"] = "gevaar_kind_of_gezin"
    return {**body, **extra}
