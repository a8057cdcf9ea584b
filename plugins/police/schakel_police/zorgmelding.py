"""A police zorgmelding: a referral for the ambulant team, with its source and dates.

The ECD links it to the household one of the people involved belongs to, if any; otherwise it
is a referral of its own, for the team to open a case. The police send it under their own legal
task; recording it in the organisation's ECD is the route's ``wettelijke_plicht``.
"""

from __future__ import annotations

import json

from gateway.core.auth import Principal
from gateway.core.pipeline import Answer
from gateway.core.problems import Problem
from gateway.core.runtime import Gateway
from schakel_police.clock import today
from schakel_police.connector import Contact
from schakel_police.messages import Zorgmelding

ROUTE = "police.zorgmelding"


def receive(gw: Gateway, contact: Contact, principal: Principal, melding: Zorgmelding) -> Answer:
    if contact.soort != "politie":
        raise Problem("forbidden", "Only a police unit sends zorgmeldingen.")
    if melding.gemeentecode not in contact.codes:
        raise Problem("partner-mismatch", "Your registration does not cover the municipality this zorgmelding is for.")
    victim = next((p.bsn for p in melding.betrokkenen if p.rol == "slachtoffer" and p.bsn), None)
    data = {
        **melding.model_dump(mode="json", exclude={"versie"}),
        "referentie": f"ZM {contact.partner_id}/{melding.kenmerk}",
        "bron": f"{contact.name}: zorgmelding {melding.kenmerk}",
        "ontvangen_op": today().isoformat(),
        "koppel_bsns": [p.bsn for p in melding.betrokkenen if p.bsn],
    }
    envelope = {"data": data, "subject": victim or next((p.bsn for p in melding.betrokkenen if p.bsn), None),
                "partner_message_id": melding.kenmerk, "context": {"kenmerk": melding.kenmerk}}
    return gw.pipeline.submit(ROUTE, json.dumps(envelope).encode(), "application/json", principal,
                              f"zorgmelding:{melding.kenmerk}", "wettelijke_plicht", None, internal=True,
                              request_body=melding.model_dump_json().encode())
