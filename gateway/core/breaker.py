"""Circuit breakers, one per partner, so that a partner that is down costs the others nothing.

Without one, every due message for a dead partner takes a worker slot until its connection is
refused or its deadline passes, and near capacity the healthy partners wait behind them. After
``threshold`` failed attempts in a row the breaker opens: when the partner's messages come due they
are not sent but recorded as failed at once ("not sent: partner unavailable (circuit open)", an
audit entry that names no fields, for nothing left), so they keep their own back-off and retry
budget as if they had been tried, without holding a slot — except a message's last attempt, which
is always made. After a cool-down one message goes out as a probe; when the partner answers, the
breaker closes, and the worker makes the partner's waiting messages due at once instead of letting
each sit out its back-off (:func:`gateway.core.outbox.take` does the holding back).

State is per process and in memory: a restarted process starts closed and learns again within
``threshold`` attempts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Breaker:
    threshold: int
    base_cooldown: float
    max_cooldown: float
    failures: int = 0
    cooldown: float = 0.0
    open_until: float = 0.0
    probing: bool = False

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    def allow(self, now: float) -> bool:
        """May an attempt go out now? While open, only one probe per cool-down."""
        if not self.is_open:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True
        return True

    def observe(self, outcome: str, now: float) -> bool:
        """Count a real attempt's outcome; True when it closed an open breaker (the partner is back)."""
        was_open = self.is_open
        if outcome == "retry":
            self.failures += 1
            if self.is_open and (self.probing or not was_open):
                self.cooldown = min(self.max_cooldown, self.cooldown * 2 if self.cooldown else self.base_cooldown)
                self.open_until = now + self.cooldown
            self.probing = False
            return False
        # The partner answered (delivered, or rejected this one message): it is there.
        self.failures, self.cooldown, self.probing = 0, 0.0, False
        return was_open


@dataclass
class Breakers:
    threshold: int = 5
    base_cooldown: float = 2.0
    max_cooldown: float = 60.0
    _by_partner: dict[str, Breaker] = field(default_factory=dict)

    def __getitem__(self, partner_id: str) -> Breaker:
        breaker = self._by_partner.get(partner_id)
        if breaker is None:
            breaker = self._by_partner[partner_id] = Breaker(self.threshold, self.base_cooldown, self.max_cooldown)
        return breaker

    def allow(self, partner_id: str) -> bool:
        return self[partner_id].allow(time.monotonic())

    def observe(self, partner_id: str, outcome: str) -> bool:
        return self[partner_id].observe(outcome, time.monotonic())

    def open_partners(self) -> list[str]:
        return sorted(partner for partner, breaker in self._by_partner.items() if breaker.is_open)
