"""The XML attack corpus against every endpoint that accepts XML, found from the OpenAPI document:
each attack is refused with a stable problem type, quickly, without reading a file or opening a
connection — checked with a named pipe that records being opened and a listener that counts
connections."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.core.test_xml import ATTACKS

REFUSED = {"xml-malformed", "xml-forbidden-construct", "xml-limits-exceeded", "payload-too-large", "message-invalid",
           "unsupported-media-type", "bad-request", "validation-failed"}
XML_TYPES = ("application/xml", "text/xml")


class Tripwires:
    """A named pipe that notices being opened for reading, and a TCP listener that counts connections."""

    def __init__(self, folder: Path) -> None:
        self.pipe = folder / "secret-pipe"
        os.mkfifo(self.pipe)
        self.pipe_opened = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._watch_pipe, daemon=True).start()
        threading.Thread(target=self._accept, daemon=True).start()

    def _watch_pipe(self) -> None:
        # Opening a FIFO for writing blocks until somebody opens it for reading.
        fd = os.open(self.pipe, os.O_WRONLY)
        if not self._stop.is_set():
            self.pipe_opened.set()
        os.close(fd)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        fd = os.open(self.pipe, os.O_RDONLY | os.O_NONBLOCK)  # releases the watcher
        time.sleep(0.05)
        os.close(fd)
        self.listener.close()


def corpus(trip: Tripwires) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{trip.port}"
    found = dict(ATTACKS)
    found |= {
        "entity reading a named pipe": (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{trip.pipe}">]>'
                                        "<r>&x;</r>").encode(),
        "external DTD on a listening port": f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{url}/evil.dtd"><r/>'.encode(),
        "parameter entity on a listening port": (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd">'
                                                 " %p;]><r/>").encode(),
        "XInclude of the pipe": (f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file://{trip.pipe}"'
                                 ' parse="text"/></r>').encode(),
        "schemaLocation on a listening port": (f'<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                                               f'xsi:schemaLocation="urn:x {url}/x.xsd"/>').encode(),
        "invalid UTF-8": b'<?xml version="1.0" encoding="UTF-8"?><a>\xff\xfe\xfd</a>',
        "declared UTF-16, sent UTF-8": b'<?xml version="1.0" encoding="UTF-16"?><a/>',
        "unknown encoding": b'<?xml version="1.0" encoding="X-SCHAKEL-7"?><a/>',
        "byte-order mark before a foreign document": b"\xef\xbb\xbf<a xmlns='urn:other'/>",
        "UTF-16 byte-order mark before garbage": b"\xff\xfe<\x00a\x00",
        "wrong namespace": b'<Bericht xmlns="http://www.istandaarden.nl/iwmo/2_4/wmo301/schema"/>',
        "no namespace": b"<Bericht><Header/></Bericht>",
        "not XML at all": b"%PDF-1.7 binary",
        "empty": b"",
    }
    return found


def xml_operations(app_url: str) -> list[tuple[str, str, set[str]]]:
    spec = httpx.get(app_url + "/openapi.json", timeout=30).json()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if any(kind in content for kind in XML_TYPES):
                found.append((method.upper(), path, set(content)))
    return found


@pytest.fixture
def xml_world(live_gateway, tmp_path):
    from tests.api.test_roles import api_routes, declared_roles

    live_gateway.add_partner("gemeente-diemen", "http://127.0.0.1:9/berichten", connector_type="wmo",
                             consenting_clients=(), identifiers={"gemeentecode": "0384"},
                             config={"aanbieder_agb": "42420001"})
    live_gateway.add_partner("care4-ecd", "http://127.0.0.1:9", connector_type="care4", consenting_clients=())
    partners = {"wmo": "gemeente-diemen"}
    trip = Tripwires(tmp_path)
    yield live_gateway, trip, api_routes(live_gateway.server.app), declared_roles, partners
    trip.close()


def test_every_xml_endpoint_refuses_every_attack_quickly_and_touches_no_file_and_no_network(xml_world):
    live, trip, routes, declared_roles, partners = xml_world
    operations = xml_operations(live.url)
    assert {path for _, path, _ in operations} >= {"/partners/wmo/berichten", "/partners/wmo/ondersteuningsplannen",
                                                   "/api/v1/wmo/batches"}, "the XML endpoints are found"
    failures, slowest = [], 0.0
    for method, path, _ in operations:
        roles = declared_roles(routes[(method, path)])
        role = sorted(roles - {"public"})[0]
        partner = partners.get(path.split("/")[2]) if role == "partner" else None
        if role == "partner" and partner is None:
            failures.append(f"{path}: no partner of its kind in this test")
            continue
        with httpx.Client(base_url=live.url, timeout=30,
                          headers={"Authorization": f"Bearer {live.token(role, partner)}"}) as client:
            for name, body in corpus(trip).items():
                types = []
                for _ in range(2):  # the same attack twice: the same problem type (stable)
                    started = time.monotonic()
                    response = client.request(method, path.replace("{route_id}", "webhook.notice"), content=body, headers={"Content-Type": "application/xml"})
                    slowest = max(slowest, time.monotonic() - started)
                    if response.headers.get("content-type") != "application/problem+json":
                        # A batch answers per message: the attack is refused inside it.
                        outcomes = response.json().get("outcomes") if response.status_code == 200 else None
                        types.append(outcomes[0]["problem"] if outcomes else f"HTTP {response.status_code}")
                    else:
                        types.append(response.json()["type"].rsplit("/", 1)[-1])
                if types[0] != types[1] or types[0] not in REFUSED:
                    failures.append(f"{method} {path} [{name}]: {types}")
    assert not failures, "\n".join(failures)
    assert slowest < 3.0, f"an attack took {slowest:.2f} s"
    time.sleep(0.3)
    assert not trip.pipe_opened.is_set(), "a file named in a document was opened"
    assert trip.connections == 0, "a network connection was attempted"


def test_the_tripwires_do_notice_a_file_read_and_a_connection(tmp_path):
    from lxml import etree

    trip = Tripwires(tmp_path)
    try:
        # What an unsafe parser would do with the same documents.
        writer = threading.Thread(target=lambda: etree.fromstring(
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{trip.pipe}">]><r>&x;</r>'.encode(),
            etree.XMLParser(resolve_entities=True, no_network=False, load_dtd=True)), daemon=True)
        writer.start()
        assert trip.pipe_opened.wait(5), "the pipe tripwire saw the read"
        with socket.create_connection(("127.0.0.1", trip.port), timeout=5):
            pass
        deadline = time.monotonic() + 5
        while trip.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trip.connections == 1
    finally:
        trip.close()
