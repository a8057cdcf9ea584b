"""What police units and municipalities send: the published, versioned message schemas.

The models are the schema: ``python -m schakel_police.messages`` writes them as JSON Schema into
``schemas/`` (a test keeps the files current), and ``docs/flows/police.md`` documents them with a
worked example. Every model refuses unknown fields, so a misspelt field is an error, not a field
silently dropped; a BSN must pass the elfproef.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from gateway.core.pseudonyms import elfproef

SCHEMAS = Path(__file__).with_name("schemas")
VERSION = "1.0"
TEN_DAYS = timedelta(days=10)  # Wet tijdelijk huisverbod art. 2: the order runs ten days
Kenmerk = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9./_-]{2,63}$", description="The sender's reference")]
Gemeentecode = Annotated[str, Field(pattern=r"^\d{4}$", description="CBS municipality code")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 ()-]{5,29}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Adres(Strict):
    straat: Name
    huisnummer: str = Field(min_length=1, max_length=20)
    postcode: str = Field(pattern=r"^\d{4} ?[A-Z]{2}$")
    plaats: Name


class Persoon(Strict):
    voornamen: Name
    achternaam: Name
    geboortedatum: date
    bsn: str | None = Field(default=None, pattern=r"^\d{9}$", description="Passes the elfproef")

    @field_validator("bsn")
    @classmethod
    def _elfproef(cls, value: str | None) -> str | None:
        if value is not None and not elfproef(value):
            raise ValueError("does not pass the elfproef")
        return value


class Bereikbaarheid(Strict):
    """Where and how the person removed can be reached (he states it within 24 hours)."""

    adres: Adres | None = None
    telefoon: Phone | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200)


class Uithuisgeplaatste(Persoon):
    bereikbaar: Bereikbaarheid | None = Field(default=None, description="Confidential to those who stay")


class Achterblijver(Persoon):
    rol: Literal["partner", "kind", "ouder", "overig"] = Field(description="Relation to the person removed")
    telefoon: Phone | None = Field(default=None, description="Confidential to the person removed")


class Beschermde(Strict):
    """A person the contact ban protects: who, never where."""

    voornamen: Name
    achternaam: Name
    geboortedatum: date | None = None
    relatie: str = Field(min_length=1, max_length=50, description="Relation to the person removed")


class HuisverbodOpgelegd(Strict):
    """A tijdelijk huisverbod imposed: by the mayor, or by a hulpofficier van justitie under mandate."""

    versie: Literal["1.0"]
    soort: Literal["opgelegd"]
    kenmerk: Kenmerk
    gemeentecode: Gemeentecode
    beslist_op: AwareDatetime = Field(description="Date and time of the decision (dagtekening)")
    opgelegd_door: Literal["burgemeester", "hulpofficier_van_justitie"]
    start: AwareDatetime
    einde: AwareDatetime = Field(description="At most ten days after start")
    aanleiding: str | None = Field(default=None, max_length=4000,
                                   description="Facts and circumstances; names no one's whereabouts")
    uithuisgeplaatste: Uithuisgeplaatste
    woning: Adres = Field(description="The home those who stay live in; confidential to the person removed")
    achterblijvers: list[Achterblijver] = Field(min_length=1, max_length=20)
    contactverbod: list[Beschermde] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _period(self) -> "HuisverbodOpgelegd":
        if self.start < self.beslist_op:
            raise ValueError("start lies before the decision")
        if not self.start < self.einde <= self.start + TEN_DAYS:
            raise ValueError("einde must lie after start and at most ten days after it")
        return self


class HuisverbodVerlengd(Strict):
    """The mayor extends the order (art. 9): to at most 28 days after the decision."""

    versie: Literal["1.0"]
    soort: Literal["verlengd"]
    kenmerk: Kenmerk = Field(description="The kenmerk of the order being extended")
    gemeentecode: Gemeentecode
    beslist_op: AwareDatetime = Field(description="Date and time of the decision to extend")
    verlengd_tot: AwareDatetime


class HuisverbodBereikbaar(Strict):
    """Where the person removed can be reached, as he stated it (within 24 hours of the order)."""

    versie: Literal["1.0"]
    soort: Literal["bereikbaar"]
    kenmerk: Kenmerk
    gemeentecode: Gemeentecode
    gemeld_op: AwareDatetime = Field(description="When he stated it")
    bereikbaar: Bereikbaarheid = Field(description="Confidential to those who stay")


class HuisverbodIngetrokken(Strict):
    """The order is withdrawn (or annulled by a court): the help it started is no longer due."""

    versie: Literal["1.0"]
    soort: Literal["ingetrokken"]
    kenmerk: Kenmerk
    gemeentecode: Gemeentecode
    beslist_op: AwareDatetime
    reden: str | None = Field(default=None, max_length=500)


class HuisverbodBericht(RootModel[Annotated[Union[HuisverbodOpgelegd, HuisverbodVerlengd, HuisverbodBereikbaar,
                                                  HuisverbodIngetrokken], Field(discriminator="soort")]]):
    """One message about a tijdelijk huisverbod: imposed, extended, where the person removed can be
    reached, or withdrawn."""


class Betrokkene(Persoon):
    rol: Literal["slachtoffer", "pleger", "kind", "overig"]


class Zorgmelding(Strict):
    """A police notice of concern about a household after a domestic-violence incident."""

    versie: Literal["1.0"]
    kenmerk: Kenmerk = Field(description="The police registration number")
    gemeentecode: Gemeentecode
    datum: date = Field(description="Date of the incident")
    omschrijving: str = Field(min_length=1, max_length=4000)
    kinderen_aanwezig: bool
    adres: Adres | None = Field(default=None, description="The household's address")
    betrokkenen: list[Betrokkene] = Field(min_length=1, max_length=20)


class HuisverbodReferentie(Strict):
    gemeentecode: Gemeentecode
    kenmerk: Kenmerk


class Informatieverzoek(Strict):
    """A question about one client. Answered only where a basis holds, always audited."""

    versie: Literal["1.0"]
    kenmerk: Kenmerk
    bsn: str = Field(pattern=r"^\d{9}$", description="The client's BSN; passes the elfproef")
    doel: str = Field(min_length=10, max_length=500, description="Why the information is needed")
    grondslag: Literal["huisverbod", "toestemming"] | None = Field(
        default=None, description="The basis the requester relies on; without it each basis is tried")
    huisverbod: HuisverbodReferentie | None = Field(default=None, description="The running huisverbod naming the client")
    gevraagd: list[Literal["hulpverlening", "contactpersoon"]] = Field(
        default_factory=list, max_length=2, description="What is asked beyond whether the client is known")

    @field_validator("bsn")
    @classmethod
    def _elfproef(cls, value: str) -> str:
        if not elfproef(value):
            raise ValueError("does not pass the elfproef")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> "Informatieverzoek":
        if self.grondslag == "huisverbod" and self.huisverbod is None:
            raise ValueError("the basis huisverbod needs the huisverbod it relies on")
        return self


class Ontvangstbevestiging(Strict):
    """The receiving organisation confirms it has the handover; kept as evidence."""

    ontvangen_op: AwareDatetime
    ontvangen_door: str = Field(min_length=1, max_length=200, description="The team or role that took it on")
    zaaknummer: str | None = Field(default=None, max_length=64, description="The receiver's own case number")


PUBLISHED: dict[str, type[BaseModel]] = {
    "huisverbod": HuisverbodBericht,
    "zorgmelding": Zorgmelding,
    "informatieverzoek": Informatieverzoek,
    "ontvangstbevestiging": Ontvangstbevestiging,
}


def json_schema(name: str) -> dict[str, Any]:
    schema = PUBLISHED[name].model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:schakel:police:{name}:{VERSION}", **schema}


def schema_path(name: str) -> Path:
    return SCHEMAS / f"{name}-{VERSION}.schema.json"


def render(name: str) -> str:
    return json.dumps(json_schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # writes schemas/*.schema.json
    SCHEMAS.mkdir(exist_ok=True)
    for published in PUBLISHED:
        schema_path(published).write_text(render(published), encoding="utf-8")
        print(f"wrote {schema_path(published)}")
