"""Named retry policies. Routes pick one by name; plugins never invent their own.

The back-off of an outbox message is persisted (its ``due_at``) rather than slept, so these
policies are evaluated with tenacity's wait and stop strategies outside a retry loop. For calls
that are retried in-process (reading from an ECD), :meth:`RetryPolicy.retrying` gives the same
policy as a tenacity ``AsyncRetrying``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base


@dataclass(frozen=True)
class RetryPolicy:
    name: str
    description: str
    wait: wait_base
    stop: stop_base
    in_process_attempts: int = 3

    def next_delay(self, attempts_made: int, seconds_since_first: float, scale: float = 1.0) -> float | None:
        """Seconds until the next attempt, or ``None`` when the policy gives up (dead letter)."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempts_made
        state.start_time = 0.0
        state.outcome_timestamp = seconds_since_first / scale if scale else seconds_since_first
        if self.stop(state):
            return None
        return float(self.wait(state)) * scale

    def retrying(self, scale: float = 1.0) -> AsyncRetrying:
        return AsyncRetrying(
            wait=lambda state: float(self.wait(state)) * scale,
            stop=stop_after_attempt(self.in_process_attempts),
            retry=retry_if_exception(is_transient),
            reraise=True,
            sleep=_sleep,
        )


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the network failed, or the partner said it is busy or broken."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUS
    return isinstance(exc, TimeoutError)


RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

POLICIES: dict[str, RetryPolicy] = {
    policy.name: policy
    for policy in (
        RetryPolicy(
            "standard",
            "Partner messages: 1 s doubling to 5 min, with jitter; dead after 12 attempts or 24 hours.",
            wait_exponential_jitter(multiplier=1, max=300, jitter=1),
            stop_after_attempt(12) | stop_after_delay(24 * 3600),
        ),
        RetryPolicy(
            "urgent",
            "Safety reports (Veilig Thuis): 0.5 s doubling to 1 min; dead after 40 attempts or 12 hours.",
            wait_exponential_jitter(multiplier=0.5, max=60, jitter=0.5),
            stop_after_attempt(40) | stop_after_delay(12 * 3600),
        ),
        RetryPolicy(
            "patient",
            "Writes to the ECD: 2 s doubling to 15 min; dead after 60 attempts or 72 hours.",
            wait_exponential_jitter(multiplier=2, max=900, jitter=2),
            stop_after_attempt(60) | stop_after_delay(72 * 3600),
        ),
    )
}


def get_policy(name: str) -> RetryPolicy:
    try:
        return POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown retry policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
