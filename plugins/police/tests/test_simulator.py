"""The police/municipality simulator keeps what the chaos run counts as effects, and nothing else."""

from __future__ import annotations

import json
import socket
import time

import httpx

from schakel_police.simulator import create_app
from tests.servers import ThreadServer


def test_an_answer_cut_off_mid_request_is_not_kept_and_its_retry_is_not_counted_as_a_repeat():
    answer = json.dumps({"verzoek_kenmerk": "IV-2026-0001", "bekend": False}).encode()
    with ThreadServer(create_app(), ready_path="/_received") as contacts:
        # The caller hangs up halfway through the body (its attempt deadline, say).
        with socket.create_connection(("127.0.0.1", contacts.port)) as sock:
            sock.sendall(b"POST /politie-utrecht/informatieverzoeken/antwoorden HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nIdempotency-Key: schakel-x-1\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(answer) + answer[:10])
            time.sleep(0.2)
        time.sleep(0.2)
        retried = httpx.post(f"{contacts.url}/politie-utrecht/informatieverzoeken/antwoorden", content=answer,
                             headers={"Content-Type": "application/json", "Idempotency-Key": "schakel-x-1"})
        received = httpx.get(f"{contacts.url}/_received").json()
    assert retried.status_code == 200
    assert [item["answer"]["verzoek_kenmerk"] for item in received["answers"]] == ["IV-2026-0001"]
    assert received["duplicates"] == 0
