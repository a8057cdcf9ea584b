"""From sent, answered and arrived to rates and latencies, defined the same way for every system.

Per message (by the bench's own id) there is: when wrk sent it, when and how it was answered,
when it reached the partner and how long the partner took. Then:

end-to-end rate            messages that reached the partner, per second from the first request sent
                           to the last arrival: a gateway that queues is timed until its queue is empty
arrival rate under load    messages that reached the partner while the load ran (after a warm-up),
                           per second of that window
submission rate            answers 2xx in the same window, per second
added latency              relay or Node-RED: round trip minus the partner's own time;
                           Schakel: arrival at the partner minus its accepting answer (the message
                           is sent on after the answer, from the outbox)
send to partner            arrival at the partner minus the moment wrk sent it (every system)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from loadgen import Load


@dataclass(frozen=True)
class Arrival:
    at: float
    partner_seconds: float


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 (linear interpolation between closest ranks), in milliseconds."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        rank = q * (len(ordered) - 1)
        low, high = math.floor(rank), math.ceil(rank)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    return {"p50": round(at(0.50) * 1000, 2), "p95": round(at(0.95) * 1000, 2), "p99": round(at(0.99) * 1000, 2),
            "n": len(ordered)}


def summarise(load: Load, arrivals: dict[str, Arrival], *, answer_to_id: dict[str, str] | None, asynchronous: bool,
              warmup: float, duplicates: int) -> dict[str, Any]:
    """``arrivals`` is keyed by message id; ``answer_to_id`` maps the key in an answer (Schakel's
    exchange id) to the message id, or is None when answers carry the message id itself."""
    start = min(load.sent.values()) if load.sent else load.started
    window = (start + warmup, load.ended)
    seconds = max(window[1] - window[0], 1e-9)
    answered: dict[str, tuple[int, float]] = {}
    accepted_keys = 0
    refused = 0
    for key, status, at in load.answers:
        ok = 200 <= status < 300
        accepted_keys += ok
        refused += not ok
        message = answer_to_id.get(key) if answer_to_id is not None else key
        if message:
            answered[message] = (status, at)
    in_window = lambda t: window[0] <= t <= window[1]  # noqa: E731
    submitted = sum(1 for _, status, at in load.answers if 200 <= status < 300 and in_window(at))
    arrived = sum(1 for a in arrivals.values() if in_window(a.at))
    added, to_partner, round_trip = [], [], []
    for message, sent in load.sent.items():
        if sent < window[0]:
            continue
        answer, arrival = answered.get(message), arrivals.get(message)
        if answer is not None and 200 <= answer[0] < 300:
            round_trip.append(answer[1] - sent)
        if arrival is None:
            continue
        to_partner.append(arrival.at - sent)
        if answer is not None and 200 <= answer[0] < 300:
            added.append(arrival.at - answer[1] if asynchronous else (answer[1] - sent) - arrival.partner_seconds)
    last = max((a.at for a in arrivals.values()), default=load.ended)
    backlog = sum(1 for _, status, at in load.answers if 200 <= status < 300 and at <= load.ended) - sum(
        1 for a in arrivals.values() if a.at <= load.ended)
    per_second: dict[int, int] = {}
    for a in arrivals.values():
        if start <= a.at <= load.ended:
            second = int(a.at - start)
            per_second[second] = per_second.get(second, 0) + 1
    return {
        "seconds": round(load.ended - start, 2),
        "window_seconds": round(seconds, 2),
        "sent": len(load.sent),
        "accepted": accepted_keys,
        "not_accepted": refused,
        "socket_errors": load.socket_errors,
        "delivered": len(arrivals),
        "duplicates_at_partner": duplicates,
        "end_to_end_rate": round(len(arrivals) / max(last - start, 1e-9), 1),
        "arrival_rate_under_load": round(arrived / seconds, 1),
        "submission_rate": round(submitted / seconds, 1),
        "backlog_at_end_of_load": backlog if asynchronous else None,
        "drain_seconds": round(max(0.0, last - load.ended), 2),
        "arrivals_per_second": [per_second.get(s, 0) for s in range(int(load.ended - start) + 1)],
        "added_latency_ms": percentiles(added),
        "send_to_partner_ms": percentiles(to_partner),
        "answer_round_trip_ms": percentiles(round_trip),
        "partner_ms": percentiles([a.partner_seconds for a in arrivals.values()]),
    }
