"""Fictional households for the Care4 simulator. Every person here is invented; every BSN passes
the elfproef but was generated, not taken from anyone.

The first four households are the cases the gateway must get right:

- H-0001: a mother with three children at a secret shelter address;
- H-0002: a male victim;
- H-0003: a client without a BSN, registered under an alias;
- H-0004: a household where the other party is also a client (C-0005, with his own dossier D-0005):
  the two dossiers must never leak into each other.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from gateway.core.pseudonyms import elfproef

REGIONS = {
    "amsterdam-amstelland": ["0363", "0362", "0358", "0384", "0437", "0451"],
    "utrecht": ["0344", "0356", "0355", "0321", "0353"],
}
CITIES = {"0363": "Amsterdam", "0362": "Amstelveen", "0358": "Aalsmeer", "0384": "Diemen", "0437": "Ouder-Amstel",
          "0451": "Uithoorn", "0344": "Utrecht", "0356": "Nieuwegein", "0355": "Zeist", "0321": "Houten",
          "0353": "IJsselstein"}
FIRST_F = ["Sanne", "Fatima", "Lotte", "Noor", "Esra", "Iris", "Mila", "Yara", "Femke", "Anouk", "Samira", "Julia"]
FIRST_M = ["Daan", "Mohamed", "Bram", "Thijs", "Youssef", "Ruben", "Milan", "Sem", "Kevin", "Jesse", "Omar", "Lars"]
SURNAMES = ["Kanariebos", "Merelhof", "Vinkenveld", "Zwaluwdijk", "Reigersmaat", "Spreeuwhorst", "Uilenkamp",
            "Mussenberg", "Kievitsweide", "Roodborst", "Valkenhorst", "Lijsterbes", "Meeuwenduin", "Ekstervelde"]
STREETS = ["Fictieflaan", "Verzinstraat", "Denkbeeldweg", "Proefpad", "Oefenkade", "Schijnhof", "Kunstmatigplein"]
SCHOOLS = ["Basisschool De Regenboog (fictief)", "OBS Het Kompas (fictief)", "Montessorischool De Linde (fictief)",
           "CBS De Wegwijzer (fictief)"]
VIOLENCE = ["fysiek", "psychisch", "seksueel", "financieel", "getuige_van_geweld", "verwaarlozing", "stalking"]
# Results agreed with the client, per ZRM 2017 domain (names only: the criteria are copyrighted).
GOALS = [
    ("Huisvesting", "Cliënt heeft een eigen, veilige woonplek gevonden."),
    ("Financiën", "Cliënt beheert het eigen inkomen en heeft een afbetalingsregeling voor schulden."),
    ("Sociaal netwerk", "Cliënt heeft twee vaste steunfiguren buiten de opvang."),
    ("Geestelijke gezondheid", "Cliënt is aangemeld bij traumabehandeling."),
]
RISKS = [
    ("De andere partij zoekt mogelijk opnieuw contact na het vertrek uit de opvang.", "hoog"),
    ("Terugval in isolement zonder dagbesteding.", "midden"),
]
SAFETY_AGREEMENTS = [
    "Geen contact met de andere partij; bij contactzoeken belt cliënt direct 112.",
    "Kinderen worden alleen door cliënt of de vaste oppas van school gehaald.",
    "Cliënt deelt het nieuwe adres niet op sociale media.",
]
SIGNALS = [
    ("observed", "Blauwe plekken op de bovenarm gezien tijdens huisbezoek."),
    ("told", "Cliënt vertelt dat partner haar telefoon controleert en geld afneemt."),
    ("observed", "Kind schrikt bij harde geluiden en trekt zich terug."),
    ("told", "Oudste kind vertelt over ruzies waarbij met spullen wordt gegooid."),
    ("observed", "Cliënt komt met ingehouden verwondingen aan het gezicht op afspraak."),
    ("told", "Buren hebben de politie gebeld na geschreeuw in de nacht."),
]


class _Bsns:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()

    def next(self) -> str:
        while True:
            candidate = f"{self.rng.randint(100_000_000, 699_999_999)}"
            if elfproef(candidate) and candidate not in self.used:
                self.used.add(candidate)
                return candidate


def _address(rng: random.Random, gemeentecode: str) -> dict[str, str]:
    return {"street": rng.choice(STREETS), "house_number": str(rng.randint(1, 199)),
            "postcode": f"{rng.randint(1000, 3999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}",
            "city": CITIES[gemeentecode], "gemeentecode": gemeentecode}


def build(seed: int = 2026) -> dict[str, dict[str, Any]]:
    """Clients, households, dossiers and consents, keyed by id."""
    rng = random.Random(seed)
    bsns = _Bsns(seed)
    clients: dict[str, Any] = {}
    households: dict[str, Any] = {}
    dossiers: dict[str, Any] = {}
    today = date(2026, 11, 20)
    all_codes = [code for codes in REGIONS.values() for code in codes]

    def person(first: str, last: str, gender: str, born: date) -> dict[str, Any]:
        return {"first_name": first, "last_name": last, "gender": gender, "date_of_birth": born.isoformat()}

    def worker(n: int) -> dict[str, str]:
        first = FIRST_F[n % len(FIRST_F)]
        return {"name": f"{first} Hulpverlener-{n:02d}", "organisation": "Stichting Veilig Onderdak (fictief)",
                "role": "maatschappelijk werker", "phone": f"020-555{n:04d}", "email": f"hulpverlener{n:02d}@example.org"}

    def add_client(cid: str, hid: str, first: str, last: str, gender: str, born: date, code: str, *,
                   bsn: bool = True, alias: bool = False, secret_address: bool = False) -> dict[str, Any]:
        client = {"id": cid, "bsn": bsns.next() if bsn else None, "alias": alias, "household_id": hid,
                  **person(first, last, gender, born), "address": _address(rng, code),
                  "phone": f"06-{rng.randint(10_000_000, 99_999_999)}", "email": f"{first.lower()}.{cid.lower()}@example.org",
                  "confidential": ["address", "phone"] if secret_address else [], "updated_at": f"{today}T09:00:00Z"}
        clients[cid] = client
        return client

    def add_household(hid: str, adults: list[str], children: int, code: str, *, secret: bool = False,
                      mother: str | None = None) -> dict[str, Any]:
        kids = []
        for k in range(children):
            gender = rng.choice("FM")
            born = today - timedelta(days=rng.randint(365, 15 * 365))
            first = rng.choice(FIRST_F if gender == "F" else FIRST_M)
            kids.append({"id": f"{hid}-K{k + 1}", "bsn": bsns.next(), **person(first, clients[adults[0]]["last_name"],
                         gender, born), "school": rng.choice(SCHOOLS) if born < today - timedelta(days=4 * 365) else None,
                         "parental_authority": [mother or adults[0], "other_party"], "confidential": ["school"]})
        households[hid] = {"id": hid, "adults": adults, "children": kids, "gemeentecode": code,
                           "address": dict(clients[adults[0]]["address"]), "confidential": ["address"] if secret else [],
                           "updated_at": f"{today}T09:00:00Z"}
        return households[hid]

    def add_dossier(did: str, cid: str, n: int, other: dict[str, Any], violence: list[str], *, acute: bool,
                    structural: bool) -> dict[str, Any]:
        picks = rng.sample(SIGNALS, 3)
        dossiers[did] = {
            "id": did, "client_id": cid, "household_id": clients[cid]["household_id"], "status": "actief",
            "opened_at": f"{today - timedelta(days=rng.randint(20, 200))}", "worker": worker(n),
            "other_party": other, "violence": violence, "unsafety": {"acute": acute, "structural": structural},
            "signals": [{"date": str(today - timedelta(days=rng.randint(1, 60))), "kind": kind, "description": text,
                         "recorded_by": worker(n)["name"]} for kind, text in picks],
            "help_given": ["Veiligheidsplan opgesteld met cliënt", "Opvang in de vrouwenopvang geregeld"][: 1 + n % 2],
            "network": [{"name": f"{rng.choice(FIRST_F)} (zus, fictief)", "relation": "zus", "supportive": True}],
            "care_providers": [{"name": "Huisartsenpraktijk Denkbeeld (fictief)", "role": "huisarts"},
                               {"name": "Wijkteam Oost (fictief)", "role": "wijkteam"}],
            # Derived from n, not drawn from rng: adding them left every other fixture as it was.
            "goals": [{"domain": domain, "description": text, "reached": k <= n % 3,
                       "reached_on": str(today - timedelta(days=10 * (k + 1))) if k <= n % 3 else None}
                      for k, (domain, text) in enumerate(GOALS)],
            "risks": [{"description": text, "level": level} for text, level in RISKS[: 1 + n % 2]],
            "safety_agreements": [{"description": text, "since": str(today - timedelta(days=30 + k))}
                                  for k, text in enumerate(SAFETY_AGREEMENTS[: 2 + n % 2])],
            "updated_at": f"{today}T09:00:00Z",
        }
        return dossiers[did]

    def other_party(first: str, last: str, gender: str, born: date, relation: str, code: str,
                    client_id: str | None = None) -> dict[str, Any]:
        return {**person(first, last, gender, born), "relation": relation, "address": _address(rng, code),
                "phone": f"06-{rng.randint(10_000_000, 99_999_999)}", "client_id": client_id,
                "confidential": ["address", "phone"]}

    # H-0001: a mother with three children at a secret shelter address (Amsterdam).
    add_client("C-0001", "H-0001", "Sanne", "Kanariebos", "F", date(1991, 3, 14), "0363", secret_address=True)
    add_household("H-0001", ["C-0001"], 3, "0363", secret=True)
    add_dossier("D-0001", "C-0001", 1, other_party("Daan", "Kanariebos", "M", date(1988, 7, 2), "ex-partner", "0344"),
                ["fysiek", "psychisch", "getuige_van_geweld"], acute=True, structural=True)
    # H-0002: a male victim (Utrecht).
    add_client("C-0002", "H-0002", "Bram", "Merelhof", "M", date(1985, 11, 30), "0344")
    add_household("H-0002", ["C-0002"], 1, "0344")
    add_dossier("D-0002", "C-0002", 2, other_party("Iris", "Merelhof", "F", date(1987, 1, 9), "partner", "0344"),
                ["fysiek", "psychisch"], acute=False, structural=True)
    # H-0003: no BSN, registered under an alias (Amstelveen).
    add_client("C-0003", "H-0003", "Roos (alias)", "Onbekend", "F", date(1998, 5, 5), "0362", bsn=False, alias=True,
               secret_address=True)
    add_household("H-0003", ["C-0003"], 0, "0362", secret=True)
    add_dossier("D-0003", "C-0003", 3, other_party("Onbekend", "Onbekend", "M", date(1990, 1, 1), "ex-partner", "0363"),
                ["psychisch", "stalking"], acute=True, structural=False)
    # H-0004: the other party is also a client, with a dossier of his own (Nieuwegein).
    add_client("C-0004", "H-0004", "Fatima", "Zwaluwdijk", "F", date(1993, 9, 21), "0356")
    add_client("C-0005", "H-0004", "Youssef", "Zwaluwdijk", "M", date(1990, 4, 17), "0356")
    clients["C-0005"]["address"] = _address(rng, "0355")  # he lives elsewhere now
    add_household("H-0004", ["C-0004", "C-0005"], 2, "0356", mother="C-0004")
    add_dossier("D-0004", "C-0004", 4, other_party("Youssef", "Zwaluwdijk", "M", date(1990, 4, 17), "partner", "0355",
                                                   client_id="C-0005"), ["fysiek", "financieel"], acute=False, structural=True)
    dossiers["D-0004"]["other_party"]["address"] = None  # the victim's dossier does not know where he lives now
    add_dossier("D-0005", "C-0005", 5, other_party("Fatima", "Zwaluwdijk", "F", date(1993, 9, 21), "partner", "0356",
                                                   client_id="C-0004"), ["psychisch"], acute=False, structural=False)
    dossiers["D-0005"]["help_given"] = ["Plegerhulp: agressieregulatietraining (fictief)"]
    # H-0005 .. H-0022: more households in both regions.
    for n in range(5, 23):
        hid, cid, did = f"H-{n:04d}", f"C-{n + 1:04d}", f"D-{n + 1:04d}"
        code = all_codes[n % len(all_codes)]
        female = n % 5 != 0
        add_client(cid, hid, rng.choice(FIRST_F if female else FIRST_M), rng.choice(SURNAMES), "F" if female else "M",
                   today - timedelta(days=rng.randint(20 * 365, 50 * 365)), code, secret_address=n % 3 == 0)
        add_household(hid, [cid], rng.randint(0, 4), code, secret=n % 3 == 0)
        add_dossier(did, cid, n, other_party(rng.choice(FIRST_M if female else FIRST_F), rng.choice(SURNAMES),
                                             "M" if female else "F", today - timedelta(days=rng.randint(20 * 365, 50 * 365)),
                                             rng.choice(["partner", "ex-partner", "vader", "broer"]), rng.choice(all_codes)),
                    rng.sample(VIOLENCE, 2), acute=n % 4 == 0, structural=True)
    # The client of the official iWmo 3.2 example messages (BSN 999900006 is the standard's test number).
    add_client("C-0024", "H-0023", "Tim", "de Wit", "M", date(1967, 8, 13), "0384")
    clients["C-0024"]["bsn"] = "999900006"
    add_household("H-0023", ["C-0024"], 0, "0384")
    add_dossier("D-0024", "C-0024", 24, other_party("Onbekend", "Onbekend", "F", date(1970, 1, 1), "ex-partner", "0384"),
                ["psychisch"], acute=False, structural=True)
    consents = {
        "CS-0001": {"id": "CS-0001", "client_id": "C-0002", "partner_kind": "veiligthuis", "purpose": "melding_huiselijk_geweld",
                    "given_on": "2026-11-01", "evidence": "ondertekend formulier in dossier (fictief)"},
    }
    return {"clients": clients, "households": households, "dossiers": dossiers, "consents": consents}
