"""Pseudonyms, encryption at rest, retention and key rotation."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, update

from gateway.core import audit, retention
from gateway.core.crypto import Box, DecryptionError
from gateway.core.models import AuditEntry, Exchange, Partner, utcnow
from gateway.core.pseudonyms import Pseudonymiser, elfproef
from tests.helpers import eventually, exchange_state, notice, submit

BSN = "111222333"  # fictional, passes the elfproef


def test_a_pseudonym_is_keyed_stable_and_not_a_plain_hash():
    assert elfproef(BSN) and not elfproef("123456789")
    one = Pseudonymiser(SecretStr("key-one"))
    two = Pseudonymiser(SecretStr("key-two"))
    assert one(BSN) == one(BSN) and one(BSN) != two(BSN)
    assert hashlib.sha256(BSN.encode()).hexdigest()[:40] not in one(BSN)
    assert BSN not in one(BSN)


def test_bodies_are_encrypted_at_rest(live_gateway, sink):
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as worker:
        exchange_id = submit(worker, notice("r-enc", text="Vertrouwelijke tekst 42")).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
    with live_gateway.gw.store.reading() as session:
        stored = session.get(Exchange, exchange_id).payload_encrypted
    assert stored and b"Vertrouwelijke" not in stored
    assert b"Vertrouwelijke tekst 42" in live_gateway.gw.box.decrypt(stored)


def test_retention_purges_old_bodies_and_keeps_the_audit_trail(live_gateway, sink):
    gw = live_gateway.gw
    live_gateway.add_partner("partner-a", sink.url + "/inbox")
    with live_gateway.client("hulpverlener") as worker:
        old, recent = (submit(worker, notice(f"r-ret-{i}")).json()["exchange_id"] for i in range(2))
        eventually(lambda: exchange_state(worker, old) == "delivered" and exchange_state(worker, recent) == "delivered")
    with gw.store.transaction() as session:
        session.execute(update(Exchange).where(Exchange.id == old).values(updated_at=utcnow() - timedelta(days=100)))
    with gw.store.reading() as session:
        audit_before = len(list(session.scalars(select(AuditEntry.seq))))
    assert retention.purge_bodies(gw.store, 90, audit.Actor.system("test")) == 1
    with gw.store.reading() as session:
        purged, kept = session.get(Exchange, old), session.get(Exchange, recent)
        assert purged.payload_encrypted is None and purged.body_purged_at is not None
        assert purged.fields_out == ["category", "reference", "text"]
        assert kept.payload_encrypted is not None
        assert len(list(session.scalars(select(AuditEntry.seq)))) == audit_before + 1
    with live_gateway.client("privacy") as officer:
        gone = officer.post(f"/api/v1/exchanges/{old}/break-glass", json={"reason": "inhoud na bewaartermijn opvragen"})
    assert gone.status_code == 409


def test_rotating_keys_re_encrypts_everything_under_the_new_key(live_gateway, sink):
    gw = live_gateway.gw
    live_gateway.add_partner("partner-a", sink.url + "/inbox", config={"token": "partner-token-xyz"})
    with live_gateway.client("hulpverlener") as worker:
        exchange_id = submit(worker, notice("r-rot")).json()["exchange_id"]
        eventually(lambda: exchange_state(worker, exchange_id) == "delivered")
    old_key = gw.settings.encryption_keys[0]
    new_key = SecretStr(Fernet.generate_key().decode())
    both = Box([new_key, old_key])
    assert retention.rotate_keys(gw.store, both, audit.Actor.system("test")) == 2
    only_new = Box([new_key])
    with gw.store.reading() as session:
        exchange, partner = session.get(Exchange, exchange_id), session.get(Partner, "partner-a")
        assert b"r-rot" in only_new.decrypt(exchange.payload_encrypted)
        assert only_new.decrypt_json(partner.credentials_encrypted) == {"token": "partner-token-xyz"}
        try:
            Box([old_key]).decrypt(exchange.payload_encrypted)
            raise AssertionError("the old key still decrypts")
        except DecryptionError:
            pass
