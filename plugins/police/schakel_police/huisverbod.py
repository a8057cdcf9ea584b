"""Tijdelijk huisverbod: from the mayor's order to two referrals in the ECD.

An order imposed becomes two referrals for the ambulant team — one for those who stay, one for
the person removed — each its own exchange about its own person, so each shows in that person's
access report. Neither carries the other side's whereabouts: each part's data never holds them,
and its own side's whereabouts are marked confidential, so they leave only because the part's
mapping names them for the basis ``huisverbod``.

Deadlines. Help must start within the ten days of the order: the first deadline is the end of
the order, and never later than ten days after the decision. The mayor may extend the order to at
most 28 days after the decision (art. 9); help is then due within the extended order, so an
extension moves both deadlines to its new end. The first deadline stays in the referral's details,
so a start that came too late stays visible. A withdrawal closes both referrals. Where the person
removed can be reached — he states it within 24 hours, often after the order was notified — is
written into his referral only.

The gateway remembers an order only through its exchanges (their encrypted context): which parts
were opened, for whom, and until when the order runs.
"""

from __future__ import annotations

import json
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.auth import Principal
from gateway.core.models import Exchange
from gateway.core.problems import Problem
from gateway.core.store import pending_inserts
from gateway.core.runtime import Gateway
from schakel_police.connector import Contact
from schakel_police.messages import (
    TEN_DAYS, HuisverbodBereikbaar, HuisverbodIngetrokken, HuisverbodOpgelegd, HuisverbodVerlengd,
)
from schakel_police.plugin import HUISVERBOD_CHANGE, HUISVERBOD_REACH, HUISVERBOD_ROUTES
from schakel_police.clock import today

MAX_TOTAL = timedelta(days=28)  # art. 9: an extension runs to at most four weeks after the decision
_NAMESPACE = uuid.UUID("6f1d7c1e-3b9a-4c55-9a63-6e0d2f1a7b21")
Notice = HuisverbodOpgelegd | HuisverbodVerlengd | HuisverbodBereikbaar | HuisverbodIngetrokken
Change = HuisverbodVerlengd | HuisverbodBereikbaar | HuisverbodIngetrokken


def correlation_id(gemeentecode: str, kenmerk: str) -> str:
    """Every exchange about one order shares this id."""
    return str(uuid.uuid5(_NAMESPACE, f"thv:{gemeentecode}:{kenmerk}"))


def reference(gemeentecode: str, kenmerk: str, part: str) -> str:
    return f"THV {gemeentecode}/{kenmerk} {part}"


def message_id(notice: Notice) -> str:
    base = f"thv:{notice.gemeentecode}:{notice.kenmerk}:{notice.soort}"
    if isinstance(notice, HuisverbodVerlengd):
        return f"{base}:{notice.verlengd_tot.isoformat()}"
    if isinstance(notice, HuisverbodBereikbaar):
        return f"{base}:{notice.gemeld_op.isoformat()}"
    return base


def first_deadline(notice: HuisverbodOpgelegd) -> datetime:
    return min(notice.einde, notice.beslist_op + TEN_DAYS)


@dataclass
class Order:
    """One order as the gateway knows it, folded from its exchanges."""

    sources: set[str] = field(default_factory=set)
    beslist_op: datetime | None = None
    einde: datetime | None = None
    withdrawn: bool = False
    parts: dict[str, str | None] = field(default_factory=dict)  # part -> the pseudonym it is about
    persons: set[str] = field(default_factory=set)  # pseudonyms of everyone the order names


def known(gw: Gateway, gemeentecode: str, kenmerk: str, *, ignoring: tuple[str, str] | None = None,
          session: Session | None = None) -> Order | None:
    """The order, or None if it was never notified. ``ignoring`` (source, message id) leaves out
    one message's own exchanges, so a partner re-sending it is judged as the first time.
    ``session``: read in that transaction (a delivery's, deciding whether the order still holds)
    instead of a read of its own, counting the notices its shared batch has queued but not yet
    written: a withdrawal accepted earlier in the same group commit must stop the delivery."""
    about = correlation_id(gemeentecode, kenmerk)
    routes = [*HUISVERBOD_ROUTES.values(), HUISVERBOD_CHANGE, HUISVERBOD_REACH]
    query = select(Exchange.source, Exchange.subject, Exchange.partner_message_id, Exchange.context_encrypted,
                   Exchange.created_at).where(
        Exchange.correlation_id == about, Exchange.route_id.in_(routes), Exchange.state != "refused")
    with nullcontext(session) if session is not None else gw.store.reading() as reading:
        found = [dict(row._mapping) for row in reading.execute(query)]
    if session is not None:
        found += [row for row in pending_inserts(session, Exchange)
                  if row["correlation_id"] == about and row["route_id"] in routes and row["state"] != "refused"]
    rows = [(row["source"], row["subject"], row["partner_message_id"] or "",
             gw.box.decrypt_json(row["context_encrypted"]) if row["context_encrypted"] else {})
            for row in sorted(found, key=lambda row: row["created_at"])]
    order = None
    for source, subject, partner_message_id, context in rows:
        if ignoring and source == ignoring[0] and partner_message_id.startswith(ignoring[1] + ":"):
            continue
        order = order or Order()
        if context.get("soort") == "opgelegd":
            order.sources.add(source)
            order.parts[context["deel"]] = subject
            order.persons.update(context.get("persons", []))
            order.beslist_op = datetime.fromisoformat(context["beslist_op"])
            order.einde = max(filter(None, (order.einde, datetime.fromisoformat(context["einde"]))))
        elif context.get("soort") == "verlengd":
            order.einde = max(filter(None, (order.einde, datetime.fromisoformat(context["einde"]))))
        elif context.get("soort") == "ingetrokken":
            order.withdrawn = True
    return order if order and order.parts else None


def _envelope(data: dict[str, Any], *, subject: str | None, pseudonym: bool, kenmerk: str, message: str, part: str,
              context: dict[str, Any], confidential: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"data": data, "subject": subject, "subject_is_pseudonym": pseudonym, "confidential": list(confidential),
            "evidence": {"huisverbod": {"decision_reference": kenmerk}}, "context": {**context, "deel": part},
            "partner_message_id": f"{message}:{part}"}


def opening(notice: HuisverbodOpgelegd, contact: Contact, pseudonymise: Callable[[str], str]) -> list[tuple[str, dict[str, Any]]]:
    """The two referrals an order imposed becomes, each without the other side's whereabouts."""
    deadline = first_deadline(notice).isoformat()
    removed = notice.uithuisgeplaatste
    common = {
        "bron": f"{contact.name}: tijdelijk huisverbod {notice.kenmerk}",
        "ontvangen_op": today().isoformat(),
        "termijn": deadline,
        "aanleiding": notice.aanleiding,
        "huisverbod": {"kenmerk": notice.kenmerk, "gemeentecode": notice.gemeentecode,
                       "beslist_op": notice.beslist_op.isoformat(), "opgelegd_door": notice.opgelegd_door,
                       "start": notice.start.isoformat(), "einde": notice.einde.isoformat(), "eerste_termijn": deadline},
        "contactverbod": [p.model_dump(mode="json") for p in notice.contactverbod],
    }
    stay = [a.model_dump(mode="json") for a in notice.achterblijvers]
    adult = next((a.bsn for a in notice.achterblijvers if a.rol != "kind" and a.bsn), None)
    context = {"soort": "opgelegd", "beslist_op": notice.beslist_op.isoformat(), "einde": notice.einde.isoformat(),
               "kenmerk": notice.kenmerk, "gemeentecode": notice.gemeentecode}
    message = message_id(notice)
    for_those_who_stay = _envelope(
        {**common, "referentie": reference(notice.gemeentecode, notice.kenmerk, "achterblijvers"),
         "koppel_bsns": [a.bsn for a in notice.achterblijvers if a.bsn], "achterblijvers": stay,
         "woning": notice.woning.model_dump(mode="json"),
         # who was removed, never where he is
         "uithuisgeplaatste": removed.model_dump(mode="json", include={"voornamen", "achternaam", "geboortedatum"})},
        subject=adult or next((a.bsn for a in notice.achterblijvers if a.bsn), None), pseudonym=False,
        kenmerk=notice.kenmerk, message=message, part="achterblijvers",
        context={**context, "persons": sorted({pseudonymise(p.bsn) for p in (removed, *notice.achterblijvers) if p.bsn})},
        confidential=("woning", "achterblijvers.telefoon"))
    for_the_person_removed = _envelope(
        {**common, "referentie": reference(notice.gemeentecode, notice.kenmerk, "uithuisgeplaatste"),
         "koppel_bsns": [removed.bsn] if removed.bsn else [],
         # himself and how he is reached; of those who stay, nothing (the contact ban names who, not where)
         "uithuisgeplaatste": removed.model_dump(mode="json")},
        subject=removed.bsn, pseudonym=False, kenmerk=notice.kenmerk, message=message, part="uithuisgeplaatste",
        context={**context, "persons": [pseudonymise(removed.bsn)] if removed.bsn else []},
        confidential=("uithuisgeplaatste.bereikbaar",))
    return [("achterblijvers", for_those_who_stay), ("uithuisgeplaatste", for_the_person_removed)]


def changes(notice: Change, order: Order) -> list[tuple[str, str, dict[str, Any]]]:
    """An extension, withdrawal or the removed person's reachability, as (route, part, envelope)
    changes to the referrals the order opened: his reachability to his referral only."""
    envelopes = []
    confidential: tuple[str, ...]
    for part, subject in sorted(order.parts.items()):
        data: dict[str, Any] = {"referentie": reference(notice.gemeentecode, notice.kenmerk, part)}
        route, confidential = HUISVERBOD_CHANGE, ()
        if isinstance(notice, HuisverbodVerlengd):
            end = notice.verlengd_tot.isoformat()
            data |= {"termijn": end, "huisverbod": {"einde": end, "verlengd_op": notice.beslist_op.isoformat()}}
            context = {"soort": "verlengd", "einde": end}
        elif isinstance(notice, HuisverbodBereikbaar):
            if part != "uithuisgeplaatste":
                continue
            data |= {"bereikbaar": notice.bereikbaar.model_dump(mode="json"), "gemeld_op": notice.gemeld_op.isoformat()}
            route, confidential, context = HUISVERBOD_REACH, ("bereikbaar",), {"soort": "bereikbaar"}
        else:
            data |= {"status": "gesloten", "huisverbod": {"ingetrokken_op": notice.beslist_op.isoformat(),
                                                          "reden_intrekking": notice.reden}}
            context = {"soort": "ingetrokken"}
        envelopes.append((route, part, _envelope(data, subject=subject, pseudonym=True, kenmerk=notice.kenmerk,
                                                 message=message_id(notice), part=part, context=context,
                                                 confidential=confidential)))
    return envelopes


def check(notice: Notice, contact: Contact, order: Order | None, source: str) -> None:
    """Who may send what, and whether it fits the order as known. Raises a problem otherwise."""
    imposed = isinstance(notice, HuisverbodOpgelegd)
    by_mayor = isinstance(notice, (HuisverbodVerlengd, HuisverbodIngetrokken))
    if not by_mayor and contact.soort not in ("gemeente", "politie"):
        raise Problem("forbidden", "Only a municipality or a police unit notifies a huisverbod.")
    if by_mayor and contact.soort != "gemeente":
        raise Problem("forbidden", "Only the mayor extends or withdraws a huisverbod (Wet tijdelijk huisverbod art. 9); "
                                   "a police officer may impose one under mandate, not extend it.")
    if notice.gemeentecode not in contact.codes:
        raise Problem("partner-mismatch", "Your registration does not cover the municipality this notice is for.")
    if imposed:
        if order is not None and source not in order.sources:
            raise Problem("already-exists", "This huisverbod was already notified by another partner.")
        return
    if order is None:
        raise Problem("message-invalid", "No huisverbod with this kenmerk was notified for this municipality.")
    if order.withdrawn:
        raise Problem("state-conflict", "This huisverbod was withdrawn.")
    if isinstance(notice, HuisverbodBereikbaar) and "uithuisgeplaatste" not in order.parts:
        raise Problem("state-conflict", "This huisverbod has no referral for the person removed.")
    if isinstance(notice, HuisverbodVerlengd):
        assert order.einde is not None and order.beslist_op is not None
        if notice.verlengd_tot <= order.einde:
            raise Problem("message-invalid", "verlengd_tot must lie after the current end of the huisverbod.")
        if notice.verlengd_tot > order.beslist_op + MAX_TOTAL:
            raise Problem("message-invalid", "A huisverbod runs at most 28 days after the decision "
                                             "(Wet tijdelijk huisverbod art. 9); verlengd_tot lies beyond that.")


def receive(gw: Gateway, contact: Contact, principal: Principal, notice: Notice) -> tuple[int, dict[str, Any], bool]:
    """Check a notice and submit its parts; answers (status, body, replayed)."""
    message = message_id(notice)
    order = known(gw, notice.gemeentecode, notice.kenmerk, ignoring=(principal.source, message))
    check(notice, contact, order, principal.source)
    if isinstance(notice, HuisverbodOpgelegd):
        envelopes = [(HUISVERBOD_ROUTES[part], part, envelope) for part, envelope in opening(notice, contact, gw.pseudonymise)]
    else:
        assert order is not None
        envelopes = changes(notice, order)
    # The idempotency key holds the partner to the notice as it validated, whatever its formatting.
    sent = notice.model_dump_json().encode()
    referrals, replayed = [], True
    for route_id, part, envelope in envelopes:
        # Each part is its own exchange, keyed by the notice and the part: a partner re-sending a
        # notice whose second part failed gets the first part's answer and the second part done.
        answer = gw.pipeline.submit(route_id, json.dumps(envelope).encode(), "application/json", principal,
                                    f"{message}:{part}", "huisverbod", correlation_id(notice.gemeentecode, notice.kenmerk),
                                    internal=True, request_body=sent)
        if answer.status >= 400:
            return answer.status, answer.body, answer.replayed
        replayed = replayed and answer.replayed
        referrals.append({"voor": part, "exchange_id": answer.body["exchange_id"], "state": answer.body["state"],
                          **({"termijn": envelope["data"]["termijn"]} if "termijn" in envelope["data"] else {})})
    return 202, {"kenmerk": notice.kenmerk, "soort": notice.soort, "referrals": referrals}, replayed


def referrals(gw: Gateway, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every referral a huisverbod opened, with the deadline by which help must start (moved by an
    extension) and whether the order still runs — for the worker's list, most urgent first."""
    with gw.store.reading() as session:
        rows = [(row.id, row.state, row.correlation_id, row.created_at,
                 gw.box.decrypt_json(row.context_encrypted) if row.context_encrypted else {})
                for row in session.scalars(select(Exchange).where(
                    Exchange.route_id.in_([*HUISVERBOD_ROUTES.values(), HUISVERBOD_CHANGE]),
                    Exchange.state != "refused").order_by(Exchange.created_at))]
    orders: dict[str, dict[str, Any]] = {}
    for exchange_id, state, correlation, _, context in rows:
        order = orders.setdefault(correlation, {"parts": {}, "einde": None, "verlengd_tot": None, "withdrawn": False,
                                                "beslist_op": None})
        if context.get("soort") == "opgelegd":
            order["beslist_op"], order["einde"] = context["beslist_op"], context["einde"]
            order["parts"][context["deel"]] = {"exchange_id": exchange_id, "exchange_state": state,
                                               "kenmerk": context.get("kenmerk"), "gemeentecode": context.get("gemeentecode")}
        elif context.get("soort") == "verlengd":
            order["verlengd_tot"] = max(filter(None, (order["verlengd_tot"], context["einde"])))
        elif context.get("soort") == "ingetrokken":
            order["withdrawn"] = True
    now = now or datetime.now().astimezone()
    found = []
    for order in orders.values():
        if not order["beslist_op"]:
            continue
        first = min(datetime.fromisoformat(order["einde"]), datetime.fromisoformat(order["beslist_op"]) + TEN_DAYS)
        # As when the notices were turned into referrals: an extension moves the deadline to its end.
        deadline = datetime.fromisoformat(order["verlengd_tot"]) if order["verlengd_tot"] else first
        for part, info in order["parts"].items():
            status = "gesloten" if order["withdrawn"] else ("te_laat" if now > deadline else "open")
            found.append({**info, "deel": part, "beslist_op": order["beslist_op"], "termijn": deadline.isoformat(),
                          "eerste_termijn": first.isoformat(), "verlengd": deadline > first, "status": status,
                          "dagen_over": (deadline - now).days})
    return sorted(found, key=lambda r: (r["status"] != "te_laat", r["termijn"]))
