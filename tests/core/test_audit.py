"""The audit trail: append-only, hash-chained, verifiable to the exact entry, checkpointed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from gateway.core import audit, audit_chain, audit_export
from gateway.core.models import AuditEntry
from gateway.core.runtime import Gateway
from gateway.core.store import upgrade
from tests.servers import ROOT


@pytest.fixture
def gw(settings):
    gateway = Gateway(settings)
    upgrade(gateway.store.url)
    yield gateway
    gateway.store.dispose()


def write_entries(gw: Gateway, count: int) -> None:
    actor = audit.Actor("test-user", "hulpverlener")
    for i in range(count):
        with gw.store.transaction() as session:
            audit.record(session, "test.event", actor=actor, client=f"psn:{i:040x}", detail=f"entry {i}",
                         fields=["a", "b"], payload_digest=f"sha256:{i:064x}")


def seqs(gw: Gateway) -> list[int]:
    with gw.store.reading() as session:
        return list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))


def tamper(gw: Gateway, statement: str, **params: object) -> None:
    """Change the log the way someone with the database owner's rights could: past the triggers."""
    with gw.store.engine.connect() as conn:
        if gw.store.is_postgres:
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text(statement), params)
            conn.execute(text("SET session_replication_role = origin"))
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
            conn.execute(text(statement), params)
        conn.commit()


def verify(gw: Gateway, exported=None) -> audit_chain.Verification:
    with gw.store.reading() as session:
        return audit_chain.verify(session, exported)


def test_a_clean_log_verifies(gw):
    write_entries(gw, 25)
    result = verify(gw)
    assert result.ok and result.entries == 25 and result.first_broken_seq is None


def test_the_database_refuses_to_update_or_delete_audit_entries(gw):
    write_entries(gw, 3)
    for statement in ("UPDATE audit_log SET detail = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with gw.store.transaction() as session:
                session.execute(text(statement))
    assert len(seqs(gw)) == 3


def test_an_edited_entry_is_named_exactly(gw):
    write_entries(gw, 20)
    target = seqs(gw)[11]
    tamper(gw, "UPDATE audit_log SET detail = 'rewritten' WHERE seq = :seq", seq=target)
    result = verify(gw)
    assert not result.ok and result.first_broken_seq == target
    assert result.problem == f"entry {target} was altered after it was written"


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(gw):
    write_entries(gw, 20)
    all_seqs = seqs(gw)
    target = all_seqs[5]
    with gw.store.reading() as session:
        entry = session.get(AuditEntry, target)
        session.expunge(entry)
        entry.detail = "rewritten"
        forged = audit.entry_hash(entry.prev_hash, entry)
    tamper(gw, "UPDATE audit_log SET detail = 'rewritten', hash = :h WHERE seq = :seq", h=forged, seq=target)
    result = verify(gw)
    assert result.first_broken_seq == all_seqs[6]


def test_a_deleted_entry_is_named_by_the_entry_after_the_gap(gw):
    write_entries(gw, 20)
    all_seqs = seqs(gw)
    tamper(gw, "DELETE FROM audit_log WHERE seq = :seq", seq=all_seqs[7])
    result = verify(gw)
    assert not result.ok and result.first_broken_seq == all_seqs[8]
    assert f"after seq {all_seqs[6]}" in result.problem


def test_cutting_off_the_newest_entries_is_caught_by_a_checkpoint(gw):
    write_entries(gw, 10)
    with gw.store.transaction() as session:
        exported = audit_chain.export_checkpoint(audit_chain.checkpoint(session, gw.settings.audit_signing_key))
    write_entries(gw, 5)
    assert verify(gw).ok and verify(gw).checkpoints_checked == 1
    all_seqs = seqs(gw)
    tamper(gw, "DELETE FROM audit_log WHERE seq >= :seq", seq=all_seqs[8])
    tamper(gw, "DELETE FROM audit_checkpoints")
    # The stored checkpoint is gone with the tampering; the exported copy still tells.
    assert verify(gw).ok
    result = verify(gw, [exported])
    assert not result.ok and result.first_broken_seq == exported["seq"]
    assert "newest entries were cut off" in result.problem


def test_a_forged_checkpoint_is_rejected(gw):
    write_entries(gw, 3)
    with gw.store.transaction() as session:
        exported = audit_chain.export_checkpoint(audit_chain.checkpoint(session, gw.settings.audit_signing_key))
    forged = {**exported, "entries": exported["entries"] + 1}
    assert audit_chain.signature_valid(exported) and not audit_chain.signature_valid(forged)
    assert not verify(gw, [forged]).ok


def test_gateway_audit_verify_names_the_entry_from_the_command_line(gw, tmp_path):
    write_entries(gw, 12)
    env = {"GATEWAY_DATABASE_URL": gw.settings.database_url, "GATEWAY_DATA_DIR": str(tmp_path),
           "GATEWAY_ENCRYPTION_KEYS": gw.settings.encryption_keys[0].get_secret_value(),
           "GATEWAY_PSEUDONYM_KEY": gw.settings.pseudonym_key.get_secret_value(),
           "GATEWAY_AUDIT_SIGNING_KEY": gw.settings.audit_signing_key.get_secret_value(),
           "GATEWAY_ENVIRONMENT": "test", "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "gateway.cli", "audit", *args], env=env, cwd=ROOT,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    clean = run("verify")
    assert clean.returncode == 0 and "audit chain intact: 12 entries" in clean.stdout
    target = seqs(gw)[4]
    tamper(gw, "UPDATE audit_log SET user_id = 'someone-else' WHERE seq = :seq", seq=target)
    broken = run("verify")
    assert broken.returncode == 1 and f"BROKEN at entry seq {target}" in broken.stdout


def test_exports_as_json_lines_and_fhir_audit_events(gw):
    write_entries(gw, 3)
    with gw.store.reading() as session:
        plain = [json.loads(line) for line in audit_export.lines(session, "jsonl")]
        fhir = [json.loads(line) for line in audit_export.lines(session, "fhir")]
    assert [e["detail"] for e in plain] == ["entry 0", "entry 1", "entry 2"]
    assert plain[1]["prev_hash"] == plain[0]["hash"]
    event = fhir[0]
    assert event["resourceType"] == "AuditEvent" and event["action"] == "E" and event["outcome"] == "0"
    assert event["agent"][0]["who"]["identifier"]["value"] == "test-user"
    assert event["entity"][0]["what"]["identifier"]["value"].startswith("psn:")


def test_the_chain_has_one_head_when_many_threads_write_at_once(gw):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: write_entries(gw, 5), range(8)))
    result = verify(gw)
    assert result.ok and result.entries == 40


def test_sending_the_chain_head_closes_the_lock_it_sent_if_the_head_cannot_be_sent(monkeypatch):
    # In a pipeline (store._finish_in_one_pipeline) the caller only closes what it was handed back.
    closed: list[str] = []

    class SentLock:
        def close(self) -> None:
            closed.append("lock")

    class Lock:
        def send(self, session, **params):
            return SentLock()

    class Head:
        def send(self, session, **params):
            raise ConnectionError("the server went away")

    monkeypatch.setattr(audit, "_CHAIN_LOCK", Lock())
    monkeypatch.setattr(audit, "_HEAD", Head())
    with pytest.raises(ConnectionError):
        audit.send_lock_and_head(object())
    assert closed == ["lock"]


def an_entry(occurred_at: datetime) -> SimpleNamespace:
    return SimpleNamespace(
        event_id="7c3a2f0e-0000-4000-8000-000000000001", event_type="exchange.queued", action_code="C",
        occurred_at=occurred_at, outcome=0, user_id="hulpverlener-1", role="hulpverlener", on_behalf_of=None,
        purpose_of_use="signalering", access_point="127.0.0.1", client="pseudo-1", exchange_id="x-1",
        message_type="notice", partner_message_id=None, partner_id="webhook", legal_basis="consent", consent_id="c-1",
        fields=["a.b", "c"], payload_digest="ab12", detail="één reden")


@pytest.mark.parametrize(("occurred_at", "expected"), [
    (datetime(2026, 12, 5, 20, 1, 2, 345678, tzinfo=timezone.utc),
     "a2ad220174c60b5710ab8a3af7fbc7b20af4aef550f9b3e2597d63f64647f382"),
    (datetime(2026, 1, 1, tzinfo=timezone.utc), "c28c95324ac1ee4cb2331e8ea1b5a60803f746a993939e0b491a7eb420dc53cd"),
])
def test_an_entry_hashes_as_it_always_has_so_chains_written_by_earlier_versions_still_verify(occurred_at, expected):
    # The hashes were computed by the serialisation the chain started with (strftime for the time);
    # a faster one must give the same bytes, or every stored chain would fail verification.
    assert audit.entry_hash(audit.GENESIS, an_entry(occurred_at)) == expected


def rewrite_and_resign(gw: Gateway, delete_seq: int, secret: str) -> None:
    """What someone who can write to the database, but does not hold the gateway's signing key,
    would do: delete an entry, re-chain every entry after it, re-sign the stored checkpoints."""
    from pydantic import SecretStr

    tamper(gw, "DELETE FROM audit_log WHERE seq = :seq", seq=delete_seq)
    with gw.store.reading() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        for entry in entries:
            session.expunge(entry)
    head = audit.GENESIS
    for entry in entries:
        entry.prev_hash, entry.hash = head, audit.entry_hash(head, entry)
        head = entry.hash
        tamper(gw, "UPDATE audit_log SET prev_hash = :p, hash = :h WHERE seq = :seq", p=entry.prev_hash, h=entry.hash,
               seq=entry.seq)
    tamper(gw, "DELETE FROM audit_checkpoints")
    with gw.store.transaction() as session:
        audit_chain.checkpoint(session, SecretStr(secret))


def test_a_log_rewritten_and_re_signed_with_another_key_is_caught(gw):
    write_entries(gw, 12)
    with gw.store.transaction() as session:
        audit_chain.checkpoint(session, gw.settings.audit_signing_key)
    rewrite_and_resign(gw, seqs(gw)[4], "not-the-gateways-secret")
    with gw.store.reading() as session:
        # Held only to the key stored beside it, the rewritten log would pass.
        assert audit_chain.verify(session).ok
        result = audit_chain.verify(session, trusted=audit_chain.trusted_keys(gw.settings))
    assert not result.ok
    assert "signed with a key this gateway does not hold" in result.problem


def test_checkpoints_of_a_retired_signing_key_still_verify_once_it_is_named(gw):
    from pydantic import SecretStr

    write_entries(gw, 5)
    retired = SecretStr("the-previous-signing-key")
    with gw.store.transaction() as session:
        retired_public = audit_chain.export_checkpoint(audit_chain.checkpoint(session, retired))["public_key"]
    with gw.store.reading() as session:
        assert not audit_chain.verify(session, trusted=audit_chain.trusted_keys(gw.settings)).ok
        gw.settings.audit_retired_public_keys = [retired_public.upper()]
        assert audit_chain.verify(session, trusted=audit_chain.trusted_keys(gw.settings)).ok


def test_a_checkpoint_must_sign_as_many_entries_as_the_log_holds_up_to_it(gw):
    write_entries(gw, 6)
    with gw.store.transaction() as session:
        good = audit_chain.export_checkpoint(audit_chain.checkpoint(session, gw.settings.audit_signing_key))
    key = audit_chain._signing_key(gw.settings.audit_signing_key)
    created = datetime.fromisoformat(good["created_at"])
    miscounted = {**good, "entries": good["entries"] - 1}
    miscounted["signature"] = key.sign(audit_chain._message(good["seq"], good["hash"], miscounted["entries"],
                                                            created)).hex()
    assert audit_chain.signature_valid(miscounted)
    with gw.store.reading() as session:
        result = audit_chain.verify(session, [miscounted], trusted=audit_chain.trusted_keys(gw.settings))
    assert not result.ok and f"the checkpoint at {good['created_at']} signed {good['entries'] - 1}" in result.problem
