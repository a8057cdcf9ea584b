"""The log's safety net: what slips into a log line is scrubbed before it is written. The code
never logs personal data (tests/test_no_personal_data.py sweeps for it); this checks the net."""

from __future__ import annotations

from gateway.logging import redact

BSN = "111222333"  # fictional, passes the elfproef
NOT_A_BSN = "111222334"  # nine digits that fail it: an order number, say


def scrubbed(**fields: object) -> dict[str, object]:
    return redact(None, "info", {"event": "test", **fields})


def test_values_under_sensitive_keys_are_redacted_whatever_they_hold():
    line = scrubbed(bsn=BSN, Naam="Fictief", body=b"{}", Authorization="Bearer x", payload={"a": 1})
    assert {key: line[key] for key in ("bsn", "Naam", "body", "Authorization", "payload")} == dict.fromkeys(
        ("bsn", "Naam", "body", "Authorization", "payload"), "[redacted]")


def test_a_bsn_e_mail_address_or_phone_number_anywhere_in_a_string_is_replaced():
    line = scrubbed(detail=f"cliënt {BSN}, mail f.fictief@example.nl of bel 06-12345678 of +31 30 123 4567",
                    reasons=[f"bsn {BSN}", 7, "geen"])
    assert line["detail"] == "cliënt [bsn], mail [e-mail] of bel [telefoon] of [telefoon]"
    assert line["reasons"] == ["bsn [bsn]", 7, "geen"]


def test_nine_digits_that_fail_the_elfproef_and_the_gateways_own_ids_are_left_as_they_are():
    ids = ["1234567a-1234-4123-8123-123456789012", "3f2a1b4c-9d8e-4f70-a1b2-c3d4e5f60718"]
    line = scrubbed(reference=f"order {NOT_A_BSN}", exchange_id=ids[0], correlation_id=ids[1], state="queued",
                    partner="partner-a", attempt=3)
    assert line == {"event": "test", "reference": f"order {NOT_A_BSN}", "exchange_id": ids[0],
                    "correlation_id": ids[1], "state": "queued", "partner": "partner-a", "attempt": 3}


def test_a_value_as_long_as_an_id_but_not_one_is_still_scrubbed():
    not_an_id = f"bsn {BSN} in een tekst van 36 tekens!!"[:36]
    assert len(not_an_id) == 36
    assert scrubbed(detail=not_an_id)["detail"].startswith("bsn [bsn]")
