"""The client access report (AVG art. 15): everything shared about one client.

Built from the exchanges about her and the audit trail, never from anyone else's: the query is
by her pseudonym alone. Field names and partners are listed; field values are not — the client
asks what was shared, and with whom, on which ground; a copy of the data itself is a separate,
deliberate act.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core import legal
from gateway.core.models import AuditEntry, Consent, Exchange, Partner, utcnow

SHARED_STATES = ("delivered", "acknowledged")


def build(session: Session, subject: str) -> dict[str, Any]:
    partners = {p.id: p.name for p in session.scalars(select(Partner))}
    exchanges = list(session.scalars(select(Exchange).where(Exchange.subject == subject).order_by(Exchange.created_at)))
    rows = []
    for exchange in exchanges:
        basis = legal.BASES.get(exchange.legal_basis or "")
        rows.append({
            "exchange_id": exchange.id,
            "when": (exchange.delivered_at or exchange.created_at).isoformat(),
            "shared": exchange.state in SHARED_STATES,
            "state": exchange.state,
            "with": partners.get(exchange.partner_id or "", exchange.partner_id),
            "partner_id": exchange.partner_id,
            "message_type": exchange.message_type,
            "fields": exchange.fields_out if exchange.state in SHARED_STATES else [],
            "purpose": exchange.purpose,
            "legal_basis": exchange.legal_basis,
            "legal_basis_title": basis.title if basis else None,
            "law": basis.law if basis else None,
            "consent_id": exchange.consent_id,
            "by": exchange.created_by,
            "reason_not_shared": exchange.state_reason if exchange.state not in SHARED_STATES else None,
        })
    consents = [{"id": c.id, "partner": c.partner_id or c.partner_kind, "purpose": c.purpose, "status": c.status,
                 "valid_from": c.valid_from.isoformat(), "valid_to": c.valid_to.isoformat() if c.valid_to else None,
                 "withdrawn_at": c.withdrawn_at.isoformat() if c.withdrawn_at else None}
                for c in session.scalars(select(Consent).where(Consent.client == subject).order_by(Consent.recorded_at))]
    # Every read of her data by a person or system that recorded one (NEN 7513 action R): a worker
    # drafting a melding from her dossier, a body viewed (break-the-glass, with its reason), an
    # earlier access report.
    read_entries = list(session.scalars(select(AuditEntry).where(AuditEntry.client == subject,
                                                                 AuditEntry.action_code == "R").order_by(AuditEntry.seq)))
    viewed = [{"when": e.occurred_at.isoformat(), "by": e.user_id, "role": e.role, "reason": e.detail,
               "exchange_id": e.exchange_id}
              for e in read_entries if e.event_type == "body.viewed"]
    reads = [{"when": e.occurred_at.isoformat(), "by": e.user_id, "role": e.role, "what": e.event_type,
              "purpose": e.purpose_of_use, "fields": e.fields}
             for e in read_entries]
    return {"subject": subject, "generated_at": utcnow().isoformat(), "exchanges": rows, "consents": consents,
            "break_the_glass": viewed, "reads": reads}


def render_html(report: dict[str, Any]) -> str:
    e = html.escape

    def cell(value: Any) -> str:
        return e("" if value is None else (", ".join(value) if isinstance(value, list) else str(value)))

    shared = "".join(
        f"<tr><td>{cell(r['when'][:16].replace('T', ' '))}</td><td>{cell(r['with'])}</td><td>{cell(r['message_type'])}</td>"
        f"<td>{cell(r['fields'])}</td><td>{cell(r['purpose'])}</td><td>{cell(r['legal_basis_title'])}"
        f"<br><small>{cell(r['law'])}</small></td><td>{cell(r['by'])}</td>"
        f"<td>{'gedeeld' if r['shared'] else 'niet gedeeld: ' + cell(r['reason_not_shared'])}</td></tr>"
        for r in report["exchanges"]) or "<tr><td colspan='8'>Er is niets over deze cliënt gedeeld.</td></tr>"
    consents = "".join(
        f"<tr><td>{cell(c['partner'])}</td><td>{cell(c['purpose'])}</td><td>{cell(c['status'])}</td>"
        f"<td>{cell(c['valid_from'][:10])}</td><td>{cell((c['valid_to'] or '')[:10])}</td>"
        f"<td>{cell((c['withdrawn_at'] or '')[:10])}</td></tr>" for c in report["consents"]
    ) or "<tr><td colspan='6'>Geen toestemmingen vastgelegd.</td></tr>"
    glass = "".join(f"<li>{cell(v['when'][:16])} door {cell(v['by'])} ({cell(v['role'])}): {cell(v['reason'])}</li>"
                    for v in report["break_the_glass"]) or "<li>Geen.</li>"
    reads = "".join(f"<tr><td>{cell(r['when'][:16].replace('T', ' '))}</td><td>{cell(r['by'])} ({cell(r['role'])})</td>"
                    f"<td>{cell(r['what'])}</td><td>{cell(r['purpose'])}</td><td>{cell(r['fields'])}</td></tr>"
                    for r in report["reads"]) or "<tr><td colspan='5'>Geen.</td></tr>"
    return f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Inzageverslag</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}
th,td{{border:1px solid #999;padding:4px;text-align:left;vertical-align:top}}@media print{{a{{display:none}}}}</style></head>
<body><main>
<h1>Inzageverslag (AVG artikel 15)</h1>
<p>Cliënt (pseudoniem): <code>{e(report['subject'])}</code>. Opgesteld op {e(report['generated_at'][:16].replace('T', ' '))} UTC.</p>
<h2>Wat is gedeeld, met wie, waarom en op welke grond</h2>
<table><thead><tr><th scope="col">Wanneer</th><th scope="col">Met wie</th><th scope="col">Bericht</th>
<th scope="col">Gegevens (velden)</th><th scope="col">Doel</th><th scope="col">Grondslag</th><th scope="col">Door</th>
<th scope="col">Uitkomst</th></tr></thead><tbody>{shared}</tbody></table>
<h2>Toestemmingen</h2>
<table><thead><tr><th scope="col">Partner</th><th scope="col">Doel</th><th scope="col">Status</th>
<th scope="col">Vanaf</th><th scope="col">Tot</th><th scope="col">Ingetrokken</th></tr></thead><tbody>{consents}</tbody></table>
<h2>Inzage in berichtinhoud (break-the-glass)</h2><ul>{glass}</ul>
<h2>Wie de gegevens van de cliënt las</h2>
<table><thead><tr><th scope="col">Wanneer</th><th scope="col">Door</th><th scope="col">Wat</th><th scope="col">Doel</th>
<th scope="col">Gegevens (velden)</th></tr></thead><tbody>{reads}</tbody></table>
</main></body></html>"""
