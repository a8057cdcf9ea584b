"""A gateway wired to the Care4 simulator and the police/municipality simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from schakel_care4.fixtures import REGIONS, build
from schakel_care4.simulator import CLIENT_ID, CLIENT_SECRET
from schakel_care4.simulator import create_app as create_care4
from schakel_police.clock import NL
from schakel_police.simulator import create_app as create_contacts
from tests.servers import ThreadServer

FIXTURES = build()
CONTACTS = {
    # partner id -> identifiers: two municipalities, a police unit and a care organisation
    "gemeente-nieuwegein": {"soort": "gemeente", "gemeentecode": "0356"},
    "gemeente-amsterdam": {"soort": "gemeente", "gemeentecode": "0363"},
    "politie-utrecht": {"soort": "politie", "werkgebied": ",".join(REGIONS["utrecht"])},
    "stichting-nazorg": {"soort": "organisatie"},
}
# Where the person removed stays, as he told the police: invented, and found nowhere in the ECD.
REMOVED_STAYS = {"straat": "Logeerlaan", "huisnummer": "12", "postcode": "3705 KL", "plaats": "Zeist"}
REMOVED_PHONE = "06-41234567"
REMOVED_EMAIL = "y.logeeradres@example.org"


@dataclass
class PoliceWorld:
    live: Any
    care4: ThreadServer
    contacts: ThreadServer

    def partner(self, partner_id: str) -> httpx.Client:
        return self.live.client("partner", partner_id)

    def control(self, **settings: Any) -> None:
        httpx.post(self.contacts.url + "/_control", json=settings, timeout=10).raise_for_status()

    def received(self) -> dict[str, Any]:
        return httpx.get(self.contacts.url + "/_received", timeout=10).json()

    @property
    def referrals(self) -> list[dict[str, Any]]:
        return list(self.care4.app.state.ecd.referrals.values())

    def referral(self, kind: str) -> dict[str, Any] | None:
        return next((r for r in self.referrals if r["kind"] == kind), None)


@contextmanager
def wired(live_gateway: Any) -> Iterator[PoliceWorld]:
    """The Care4 and police simulators started beside a running gateway, and its partners registered."""
    with ThreadServer(create_care4(), ready_path="/docs") as care4, \
            ThreadServer(create_contacts(), ready_path="/_received") as contacts:
        # The address partners reach this gateway at (GATEWAY_PUBLIC_BASE_URL): the test server's.
        live_gateway.gw.settings.public_base_url = live_gateway.url
        live_gateway.add_partner("care4-ecd", care4.url, connector_type="care4", consenting_clients=(),
                                 config={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        for partner_id, identifiers in CONTACTS.items():
            live_gateway.add_partner(partner_id, f"{contacts.url}/{partner_id}", connector_type="police",
                                     consenting_clients=(), identifiers=identifiers, name=f"{partner_id} (fictief)")
        world = PoliceWorld(live_gateway, care4, contacts)
        world.control(gateway_url=live_gateway.url,
                      tokens={partner_id: live_gateway.token("partner", partner_id) for partner_id in CONTACTS})
        yield world


@pytest.fixture
def world(live_gateway) -> Iterator[PoliceWorld]:
    with wired(live_gateway) as wired_world:
        yield wired_world


def person(client: dict[str, Any]) -> dict[str, Any]:
    return {"voornamen": client["first_name"], "achternaam": client["last_name"],
            "geboortedatum": client["date_of_birth"], "bsn": client["bsn"]}


def huisverbod(kenmerk: str = "THV-0356-2026-0042", decided: datetime | None = None, **changes: Any) -> dict[str, Any]:
    """The mayor of Nieuwegein removes Youssef (C-0005) from the home of household H-0004, where
    Fatima (C-0004) and their two children stay."""
    decided = decided or datetime.now(NL).replace(microsecond=0) - timedelta(hours=2)
    clients, household = FIXTURES["clients"], FIXTURES["households"]["H-0004"]
    home = household["address"]
    children = [{**person(child), "rol": "kind"} for child in household["children"]]
    notice = {
        "versie": "1.0", "soort": "opgelegd", "kenmerk": kenmerk, "gemeentecode": "0356",
        "beslist_op": decided.isoformat(), "opgelegd_door": "burgemeester",
        "start": decided.isoformat(), "einde": (decided + timedelta(days=10)).isoformat(),
        "aanleiding": "Politie ter plaatse na melding van buren; ernstig en onmiddellijk gevaar (fictief).",
        "uithuisgeplaatste": {**person(clients["C-0005"]),
                              "bereikbaar": {"adres": REMOVED_STAYS, "telefoon": REMOVED_PHONE, "email": REMOVED_EMAIL}},
        "woning": {"straat": home["street"], "huisnummer": home["house_number"], "postcode": home["postcode"],
                   "plaats": home["city"]},
        "achterblijvers": [{**person(clients["C-0004"]), "rol": "partner", "telefoon": clients["C-0004"]["phone"]},
                           *children],
        "contactverbod": [{k: p[k] for k in ("voornamen", "achternaam", "geboortedatum")} | {"relatie": rel}
                          for p, rel in ((person(clients["C-0004"]), "partner"), *((c, "kind") for c in children))],
    }
    return {**notice, **changes}
