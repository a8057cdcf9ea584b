"""Figures behind the administrator's charts: exchanges per day by outcome, delivery latency.

Read-only aggregates over exchange metadata; no client, no body. Queue depth comes from the
same function the connectors API uses.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core.models import Exchange, utcnow

# What became of an exchange, as the chart groups it.
OUTCOME_OF = {"delivered": "afgeleverd", "acknowledged": "afgeleverd", "refused": "geweigerd", "dead": "onbestelbaar"}
OUTCOMES = ("afgeleverd", "onderweg", "geweigerd", "onbestelbaar")
# Latency is computed from individual rows; beyond this many in the period, the newest are used.
LATENCY_SAMPLE = 20_000


def _days(days: int, today: date) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def exchanges_per_day(session: Session, days: int = 14, today: date | None = None) -> dict[str, Any]:
    today = today or utcnow().date()
    start = _days(days, today)[0]
    day = func.date(Exchange.created_at)
    rows = session.execute(select(day, Exchange.state, func.count()).where(
        Exchange.created_at >= utcnow() - timedelta(days=days + 1)).group_by(day, Exchange.state)).all()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for when, state, count in rows:
        key = str(when)[:10]
        if key >= start.isoformat():
            counts[key][OUTCOME_OF.get(state, "onderweg")] += count
    labels = [d.isoformat() for d in _days(days, today)]
    return {"days": labels, "series": {name: [counts[d][name] if d in counts else 0 for d in labels] for name in OUTCOMES}}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def latency_per_day(session: Session, days: int = 14, today: date | None = None) -> dict[str, Any]:
    """Seconds from acceptance to delivery (waiting, retries and pauses included): median and p95 per day."""
    today = today or utcnow().date()
    labels = [d.isoformat() for d in _days(days, today)]
    rows = session.execute(select(Exchange.created_at, Exchange.delivered_at).where(
        Exchange.delivered_at.is_not(None), Exchange.delivered_at >= utcnow() - timedelta(days=days + 1))
        .order_by(Exchange.delivered_at.desc()).limit(LATENCY_SAMPLE)).all()
    per_day: dict[str, list[float]] = defaultdict(list)
    for created, delivered in rows:
        per_day[delivered.date().isoformat()].append(max(0.0, (delivered - created).total_seconds()))
    series: dict[str, list[float | None]] = {"mediaan": [], "95e percentiel": []}
    for label in labels:
        values = per_day.get(label)
        series["mediaan"].append(median(values) if values else None)
        series["95e percentiel"].append(_percentile(values, 0.95) if values else None)
    return {"days": labels, "series": series, "counts": [len(per_day.get(label, [])) for label in labels],
            "sampled": len(rows) >= LATENCY_SAMPLE}
