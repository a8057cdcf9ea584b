"""The Care4-style ECD API's resources. The simulator serves them and generates the plugin's
OpenAPI document (``openapi.json``) from them; the adapter reads them."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Address(BaseModel):
    street: str
    house_number: str
    postcode: str
    city: str
    gemeentecode: str = Field(pattern=r"^\d{4}$", description="CBS municipality code")


class Client(BaseModel):
    id: str
    bsn: str | None = Field(description="Absent for a client registered under an alias")
    alias: bool = False
    household_id: str
    first_name: str
    last_name: str
    gender: Literal["F", "M", "X"]
    date_of_birth: str
    address: Address
    phone: str | None = None
    email: str | None = None
    confidential: list[str] = Field(default_factory=list, description="Fields that must not leave without an explicit basis")
    updated_at: str


class Child(BaseModel):
    id: str
    bsn: str | None = None
    first_name: str
    last_name: str
    gender: Literal["F", "M", "X"]
    date_of_birth: str
    school: str | None = None
    parental_authority: list[str] = Field(description="Client ids, or 'other_party', holding parental authority")
    confidential: list[str] = Field(default_factory=list)


class Household(BaseModel):
    id: str
    adults: list[str]
    children: list[Child]
    gemeentecode: str
    address: Address
    confidential: list[str] = Field(default_factory=list)
    updated_at: str


class OtherParty(BaseModel):
    first_name: str
    last_name: str
    gender: Literal["F", "M", "X"]
    date_of_birth: str
    relation: str
    address: Address | None = None
    phone: str | None = None
    client_id: str | None = Field(default=None, description="Set when the other party is a client too")
    confidential: list[str] = Field(default_factory=list)


class Worker(BaseModel):
    name: str
    organisation: str
    role: str
    phone: str
    email: str


class Signal(BaseModel):
    date: str
    kind: Literal["observed", "told"]
    description: str
    recorded_by: str


class NetworkMember(BaseModel):
    name: str
    relation: str
    supportive: bool


class CareProvider(BaseModel):
    name: str
    role: str


class Unsafety(BaseModel):
    acute: bool
    structural: bool


class Goal(BaseModel):
    """A result agreed with the client, per ZRM domain (from the ondersteuningsplan)."""

    domain: str
    description: str
    reached: bool
    reached_on: str | None = None


class Risk(BaseModel):
    description: str
    level: Literal["laag", "midden", "hoog"]


class SafetyAgreement(BaseModel):
    """An agreement in the client's safety plan, e.g. no contact with the other party."""

    description: str
    since: str


class Dossier(BaseModel):
    id: str
    client_id: str
    household_id: str
    status: str
    opened_at: str
    worker: Worker
    other_party: OtherParty | None = None
    violence: list[str]
    unsafety: Unsafety
    signals: list[Signal]
    help_given: list[str]
    network: list[NetworkMember]
    care_providers: list[CareProvider]
    goals: list[Goal] = Field(default_factory=list)
    risks: list[Risk] = Field(default_factory=list)
    safety_agreements: list[SafetyAgreement] = Field(default_factory=list)
    updated_at: str


class ConsentRecord(BaseModel):
    id: str
    client_id: str
    partner_kind: str
    purpose: str
    given_on: str
    evidence: str


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)
    category: str = Field(default="algemeen", max_length=64)
    source: str = Field(default="schakel", max_length=200)
    reference: str | None = Field(default=None, max_length=200)


class Note(NoteIn):
    id: str
    dossier_id: str
    created_at: str


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=2000)


class DocumentIn(BaseModel):
    """A draft or plan kept in the dossier (a Veilig Thuis melding draft, a gezinsactieplan)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    status: Literal["draft", "final", "sent"] = "draft"
    title: str = Field(max_length=200)
    content: dict = Field(default_factory=dict)
    reference: str | None = Field(default=None, max_length=200)


class Document(DocumentIn):
    id: str
    dossier_id: str
    created_at: str
    updated_at: str


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    household_id: str | None = None
    dossier_id: str | None = None
    kind: str = Field(max_length=64)
    team: str = Field(max_length=100)
    source: str = Field(max_length=200)
    received_on: str
    deadline: str | None = None
    status: Literal["open", "gestart", "gesloten"] = "open"
    details: dict = Field(default_factory=dict)
    reference: str | None = Field(default=None, max_length=200)


class Referral(ReferralIn):
    id: str
    created_at: str
    updated_at: str


class ReferralPatch(BaseModel):
    """A change to a referral: a new deadline or status, and details merged key by key (nested
    objects too), so a change names only what changed."""

    model_config = ConfigDict(extra="forbid")

    deadline: str | None = None
    status: Literal["open", "gestart", "gesloten"] | None = None
    details: dict = Field(default_factory=dict)


class ArrangementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allocation_number: str
    product_category: str
    product_code: str | None = None
    start: str
    end: str | None = None
    volume: int | None = None
    unit: str | None = None
    frequency: str | None = None
    municipality: str
    status: Literal["actief", "beeindigd"] = "actief"
    reference: str | None = None
    as_of: str | None = Field(default=None, max_length=80,
                              description="The message the allocation is current as of (date, then arrival): older ones do not overwrite it")


class Arrangement(ArrangementIn):
    id: str
    client_id: str
    updated_at: str


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
