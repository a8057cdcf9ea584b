"""Keyed pseudonyms for clients.

A plain hash of a BSN is no pseudonym: there are only about 91 million valid BSNs and all of
them hash in about a minute. An HMAC with a secret key cannot be reversed that way.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr


class Pseudonymiser:
    def __init__(self, key: SecretStr) -> None:
        self._key = key.get_secret_value().encode()

    def __call__(self, identifier: str, namespace: str = "client") -> str:
        mac = hmac.new(self._key, f"{namespace}:{identifier.strip()}".encode(), hashlib.sha256)
        return "psn:" + mac.hexdigest()[:40]


def elfproef(bsn: str) -> bool:
    """The BSN 11-check: 9 digits, weights 9..2 and -1, sum divisible by 11, not all zero."""
    if len(bsn) != 9 or not bsn.isdigit() or bsn == "000000000":
        return False
    total = sum(int(digit) * weight for digit, weight in zip(bsn[:8], range(9, 1, -1))) - int(bsn[8])
    return total % 11 == 0
