"""Encryption at rest for message bodies and partner credentials.

MultiFernet: the first key encrypts, every key decrypts, and :meth:`Box.rotate` re-encrypts
a token under the first key — so a key is rotated by prepending the new one, re-encrypting,
then dropping the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr


class DecryptionError(Exception):
    """Stored ciphertext could not be decrypted with any configured key."""


class Box:
    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key.get_secret_value().encode()) for key in keys])

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise DecryptionError("stored data cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self.decrypt(token))


def digest(data: bytes) -> str:
    """The digest the audit log keeps instead of a payload: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def keyed_digest(key: SecretStr, value: str) -> str:
    return hmac.new(key.get_secret_value().encode(), value.encode(), hashlib.sha256).hexdigest()
