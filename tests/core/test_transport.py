"""The shared client's transport: httpx's API over aiohttp, and failures that say whether the
partner may have had the request. Every test talks to a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from gateway.core.connectors import OUTCOME_UNKNOWN, transport_failure
from gateway.core.transport import new_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in head[1:] if ":" in line}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


def answer(status: int, body: bytes, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    http = new_client(httpx.Limits(max_connections=10), httpx.Timeout(2.0, connect=1.0))
    yield http
    await http.aclose()


async def test_a_post_arrives_with_its_body_and_headers_and_the_answer_comes_back(client):
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader, writer):
        while True:
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(answer(201, b'{"id":"r-1"}', "Content-Type: application/json", "Location: /r/1"))
            await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        first = await client.post(base + "/inbox?x=1", content=b'{"a":1}',
                                  headers={"Content-Type": "application/json", "Idempotency-Key": "k-1"})
        second = await client.post(base + "/inbox", data={"grant_type": "client_credentials"})
    assert first.status_code == 201 and first.json() == {"id": "r-1"} and first.headers["location"] == "/r/1"
    line, headers, body = seen[0]
    assert line == "POST /inbox?x=1 HTTP/1.1" and body == b'{"a":1}'
    assert headers["idempotency-key"] == "k-1" and headers["content-type"] == "application/json"
    assert headers["host"] == base.removeprefix("http://")
    assert second.status_code == 201
    assert seen[1][2] == b"grant_type=client_credentials"
    assert seen[1][1]["content-type"] == "application/x-www-form-urlencoded"
    assert len(seen) == 2  # both went over one kept-alive connection


async def test_a_compressed_answer_is_decoded_once(client):
    payload = json.dumps({"received": True}).encode()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(answer(200, gzip.compress(payload), "Content-Encoding: gzip", "Content-Type: application/json"))
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        response = await client.get(base + "/x")
    assert response.json() == {"received": True}


async def test_nobody_listening_is_a_connect_error_so_nothing_was_sent(client):
    server, base = await serve(lambda reader, writer: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError) as caught:
        await client.post(base + "/inbox", content=b"{}")
    assert OUTCOME_UNKNOWN not in transport_failure(caught.value).reason


async def test_waiting_too_long_for_a_free_connection_is_a_connect_timeout():
    held = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        await held.wait()
        writer.close()

    http = new_client(httpx.Limits(max_connections=1), httpx.Timeout(5.0, connect=0.2, pool=0.1))
    server, base = await serve(handler)
    async with server:
        first = asyncio.create_task(http.post(base + "/slow", content=b"1"))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.ConnectTimeout) as caught:
            await http.post(base + "/next", content=b"2")
        held.set()
        with pytest.raises(httpx.TransportError):
            await first
    await http.aclose()
    assert OUTCOME_UNKNOWN not in transport_failure(caught.value).reason


async def test_a_partner_that_hangs_up_after_reading_the_request_leaves_the_outcome_unknown(client):
    async def handler(reader, writer):
        await read_request(reader)  # it has the whole request, and may have acted on it
        writer.transport.abort()

    server, base = await serve(handler)
    async with server:
        with pytest.raises(httpx.TransportError) as caught:
            await client.post(base + "/inbox", content=b'{"a":1}')
    assert not isinstance(caught.value, (httpx.ConnectError, httpx.ConnectTimeout))
    assert OUTCOME_UNKNOWN in transport_failure(caught.value).reason


async def test_an_answer_cut_off_mid_body_is_a_read_error_with_the_outcome_unknown(client):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        with pytest.raises(httpx.TransportError) as caught:
            await client.post(base + "/inbox", content=b"{}")
    assert OUTCOME_UNKNOWN in transport_failure(caught.value).reason


async def test_a_partner_that_stops_answering_is_a_read_timeout():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(5)

    http = new_client(httpx.Limits(max_connections=2), httpx.Timeout(0.3, connect=1.0))
    server, base = await serve(handler)
    async with server:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await http.post(base + "/inbox", content=b"{}")
        server.close()
    await http.aclose()
    assert "timed out" in transport_failure(caught.value).reason
    assert OUTCOME_UNKNOWN in transport_failure(caught.value).reason


async def test_garbage_instead_of_an_answer_is_a_protocol_error(client):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"this is not http\r\n\r\n")
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(base + "/inbox", content=b"{}")


async def test_a_redirect_is_handed_back_not_followed(client):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(answer(307, b"", "Location: http://127.0.0.1:9/elsewhere"))
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        response = await client.post(base + "/inbox", content=b"{}")
    assert response.status_code == 307


async def test_a_url_that_is_not_http_is_refused_before_anything_is_sent(client):
    with pytest.raises(httpx.UnsupportedProtocol):
        await client.post("ftp://127.0.0.1/inbox", content=b"{}")


async def test_the_delivery_shortcut_sends_what_the_client_would_and_fails_the_same_way(client):
    from gateway.core.transport import post

    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.write(answer(202, b'{"id":"r-2"}', "Content-Type: application/json", "X-Receipt-Id: r-2",
                            "Connection: close"))
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        response = await post(client, base + "/inbox", content=b'{"a":1}',
                              headers={"Content-Type": "application/json", "Idempotency-Key": "k-9"},
                              timeout=httpx.Timeout(2.0))
    assert response.status_code == 202 and response.json() == {"id": "r-2"}
    assert response.raise_for_status() is response and response.request.url == base + "/inbox"
    assert response.headers["x-receipt-id"] == "r-2"
    line, headers, body = seen[0]
    assert line == "POST /inbox HTTP/1.1" and body == b'{"a":1}' and headers["idempotency-key"] == "k-9"
    assert headers["user-agent"] == client.headers["user-agent"]  # the client's own defaults go along

    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError) as caught:
        await post(client, base + "/inbox", content=b"{}", headers={}, timeout=httpx.Timeout(1.0))
    assert OUTCOME_UNKNOWN not in transport_failure(caught.value).reason


async def test_the_delivery_shortcut_falls_back_to_the_client_for_a_client_of_another_kind():
    from gateway.core.transport import post

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as other:
        response = await post(other, "http://partner.invalid/inbox", content=b"x", headers={},
                              timeout=httpx.Timeout(1.0))
    assert response.json() == {"ok": True} and seen == [b"x"]


async def test_the_shortcut_sends_json_and_query_parameters_as_httpx_would_and_says_what_failed(client):
    from gateway.core.transport import request

    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.write(answer(404, b'{"detail":"no"}', "Content-Type: application/json", "Connection: close"))
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server:
        response = await request(client, "PUT", base + "/clients/C-1/arrangements/7", json={"naam": "Zoë", "n": [1]},
                                 params={"bsn": "123", "x": "a b"}, headers={"Idempotency-Key": "k"})
    line, headers, body = seen[0]
    assert line == "PUT /clients/C-1/arrangements/7?bsn=123&x=a+b HTTP/1.1"
    assert body == '{"naam":"Zoë","n":[1]}'.encode() and headers["content-type"] == "application/json"
    with pytest.raises(httpx.HTTPStatusError) as caught:
        response.raise_for_status()
    assert caught.value.response.status_code == 404 and caught.value.request.method == "PUT"
