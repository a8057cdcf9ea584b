"""What travels through the pipeline between the plugin hooks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.core.problems import Problem, field_errors

if TYPE_CHECKING:
    from gateway.core.auth import Principal
    from gateway.core.runtime import Gateway
    from gateway.core.partners import PartnerView
    from gateway.core.routing import Route


@dataclass(frozen=True)
class InboundMessage:
    """A message as it arrived, before any plugin looked at it."""

    route: "Route"
    body: bytes
    media_type: str
    principal: "Principal"
    gateway: "Gateway"


@dataclass
class ParsedMessage:
    """A message a plugin parsed and validated.

    ``data`` holds the message's fields (the mapping picks from these); ``subject`` is the client
    identifier (a BSN or an ECD client number), which the core replaces by a keyed pseudonym
    before anything is stored; ``attributes`` are routing keys (``gemeentecode``, ``region``).
    """

    data: dict[str, Any]
    partner_message_id: str | None = None
    subject: str | None = None
    # True when ``subject`` is already a pseudonym (a follow-up to an earlier exchange about her).
    subject_is_pseudonym: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    partner_id: str | None = None
    confidential: frozenset[str] = frozenset()
    # Evidence for a non-consent legal basis, keyed by basis (e.g. the meldcode weighing for meldrecht).
    basis_evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the plugin needs to handle follow-ups (e.g. the dossier a melding came from); stored
    # encrypted with the exchange, never sent, read back with Gateway.exchange_context().
    context: dict[str, Any] = field(default_factory=dict)
    # Links this exchange to an earlier one (feedback to its melding): shares its correlation id.
    correlation_id: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    """The minimised fields of an exchange, ready to be serialised for its partner."""

    route: "Route"
    partner: "PartnerView"
    fields: dict[str, Any]
    exchange_id: str


M = TypeVar("M", bound=BaseModel)


def load_json(body: bytes) -> Any:
    """A JSON body, or a problem that does not quote it."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Problem("message-invalid", "The body is not valid JSON.") from None


def validate_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem("message-invalid", "The message does not match its schema.",
                      extensions={"errors": field_errors(exc.errors())}) from None


def parse_json(body: bytes, model: type[M]) -> M:
    """Parse a JSON body into a pydantic model; errors name fields, never values."""
    return validate_model(model, load_json(body))
