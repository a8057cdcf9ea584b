"""Knowing when a partner that was down is back, so its waiting messages need not sit out their back-off.

A partner that fails ``threshold`` attempts in a row counts as down. Its messages go on as their
retry policy says (each failed attempt moves its own ``due_at``; nothing is held back, so no
message spends its retry budget on attempts that were never made), but the first answer after
that — delivered, or a rejection, which is an answer too — makes the worker release the partner's
waiting messages: due at once, instead of up to the policy's longest back-off later
(:func:`gateway.core.outbox.release_waiting`). What keeps a partner that is down from slowing the
others is elsewhere: fair claims and a share of the slots per partner (gateway/core/delivery.py).

State is per process and in memory: a restarted process learns again within ``threshold`` attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PartnerHealth:
    threshold: int = 5
    failures: dict[str, int] = field(default_factory=dict)

    def is_down(self, partner_id: str) -> bool:
        return self.failures.get(partner_id, 0) >= self.threshold

    def observe(self, partner_id: str, outcome: str) -> bool:
        """Count an attempt's outcome; True when it is the first answer of a partner that was down."""
        if outcome == "retry":
            self.failures[partner_id] = self.failures.get(partner_id, 0) + 1
            return False
        was_down = self.is_down(partner_id)
        self.failures.pop(partner_id, None)
        return was_down
