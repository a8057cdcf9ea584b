"""Verifying the audit chain, and signed checkpoints of its head.

:func:`verify` walks the log in order and names the first entry whose link or content does not
match. The chain alone cannot show that its newest entries were cut off, so the head is
checkpointed — signed with an Ed25519 key derived from ``GATEWAY_AUDIT_SIGNING_KEY`` — at least
daily; a checkpoint exported elsewhere proves what the log held at that moment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core import audit
from gateway.core.models import AuditCheckpoint, AuditEntry, utcnow


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    first_broken_seq: int | None = None
    first_broken_event_id: str | None = None
    problem: str | None = None
    checkpoints_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signing_key(secret: SecretStr) -> Ed25519PrivateKey:
    seed = hashlib.sha256(b"schakel-audit-checkpoint\n" + secret.get_secret_value().encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_hex(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _message(seq: int, head_hash: str, entries: int, created_at: datetime) -> bytes:
    return f"schakel-audit-checkpoint:v1:{seq}:{head_hash}:{entries}:{created_at.isoformat()}".encode()


def checkpoint(session: Session, secret: SecretStr) -> AuditCheckpoint | None:
    """Sign the current head. ``None`` while the log is empty."""
    head = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    if head is None:
        return None
    entries = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq <= head.seq)) or 0
    key = _signing_key(secret)
    created = utcnow().replace(microsecond=0)
    row = AuditCheckpoint(seq=head.seq, hash=head.hash, entries=entries, created_at=created, public_key=_public_hex(key),
                          signature=key.sign(_message(head.seq, head.hash, entries, created)).hex())
    session.add(row)
    session.flush()
    return row


def export_checkpoint(row: AuditCheckpoint) -> dict[str, Any]:
    return {"seq": row.seq, "hash": row.hash, "entries": row.entries, "created_at": row.created_at.isoformat(),
            "public_key": row.public_key, "signature": row.signature, "algorithm": "Ed25519"}


def signature_valid(data: dict[str, Any]) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(data["public_key"]))
        created = datetime.fromisoformat(data["created_at"])
        public.verify(bytes.fromhex(data["signature"]), _message(int(data["seq"]), data["hash"], int(data["entries"]), created))
        return True
    except (InvalidSignature, ValueError, KeyError):
        return False


def trusted_keys(settings: Any) -> frozenset[str] | None:
    """The public keys a checkpoint may be signed with: the one ``GATEWAY_AUDIT_SIGNING_KEY``
    derives, and those of retired signing keys (``GATEWAY_AUDIT_RETIRED_PUBLIC_KEYS``). ``None``
    where no signing key is configured (then a checkpoint's own key is all there is to go by)."""
    if settings.audit_signing_key is None:
        return None
    return frozenset({_public_hex(_signing_key(settings.audit_signing_key)),
                      *(key.strip().lower() for key in settings.audit_retired_public_keys)})


def verify(session: Session, exported: list[dict[str, Any]] | None = None, batch: int = 5000,
           trusted: frozenset[str] | None = None) -> Verification:
    """Walk the chain and name the first broken entry; then hold it to the stored checkpoints and
    to any ``exported`` ones (kept outside the database, so they survive its tampering).

    ``trusted`` (:func:`trusted_keys`): the keys a checkpoint must be signed with. A checkpoint
    stored in the database carries its own public key, so without this someone who can write to
    the database could rewrite the log, re-chain it and re-sign the checkpoints with a key of
    their own; with it they would need the gateway's secret."""
    expected_prev = audit.GENESIS
    count = 0
    last: AuditEntry | None = None
    hashes_at: dict[int, str] = {}
    counts_at: dict[int, int] = {}
    wanted = [export_checkpoint(row) for row in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))]
    wanted += exported or []
    wanted_seqs = {int(c["seq"]) for c in wanted}
    after = 0
    while True:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)))
        if not rows:
            break
        for entry in rows:
            if entry.prev_hash != expected_prev:
                gap = f" (the entry before it, after seq {last.seq}, is missing or altered)" if last else ""
                return Verification(False, count, last.seq if last else None, last.hash if last else None, entry.seq,
                                    entry.event_id, f"entry {entry.seq} does not link to the entry before it{gap}")
            if audit.entry_hash(entry.prev_hash, entry) != entry.hash:
                return Verification(False, count, last.seq if last else None, last.hash if last else None, entry.seq,
                                    entry.event_id, f"entry {entry.seq} was altered after it was written")
            expected_prev = entry.hash
            count += 1
            last = entry
            if entry.seq in wanted_seqs:
                hashes_at[entry.seq] = entry.hash
                counts_at[entry.seq] = count
            session.expunge(entry)
        after = rows[-1].seq
    head_seq, head_hash = (last.seq, last.hash) if last else (None, None)
    for data in wanted:
        seq = int(data["seq"])
        if not signature_valid(data):
            return Verification(False, count, head_seq, head_hash, seq, None,
                                f"the checkpoint at seq {seq} has an invalid signature")
        if trusted is not None and str(data["public_key"]).lower() not in trusted:
            return Verification(False, count, head_seq, head_hash, seq, None,
                                f"the checkpoint at seq {seq} is signed with a key this gateway does not hold "
                                "(neither GATEWAY_AUDIT_SIGNING_KEY's nor a retired one's)")
        if seq not in hashes_at:
            return Verification(False, count, head_seq, head_hash, seq, None,
                                f"entries up to seq {seq} were signed in a checkpoint at {data['created_at']}, "
                                f"but the log now ends at seq {head_seq}: its newest entries were cut off")
        if hashes_at[seq] != data["hash"]:
            return Verification(False, count, head_seq, head_hash, seq, None,
                                f"entry {seq} differs from the one signed in the checkpoint at {data['created_at']}")
        if counts_at[seq] != int(data["entries"]):
            return Verification(False, count, head_seq, head_hash, seq, None,
                                f"the log holds {counts_at[seq]} entries up to seq {seq}, the checkpoint at "
                                f"{data['created_at']} signed {data['entries']}")
    return Verification(True, count, head_seq, head_hash, checkpoints_checked=len(wanted))


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)
