"""The shared HTTP client's transport: httpx's API over aiohttp's connection pool.

Every connector talks to partners through one ``httpx.AsyncClient`` (``Gateway.http``). httpx's
own transport (httpcore) walks every pooled connection, and polls each idle one's socket, for
every request it sends; with a few dozen attempts in flight that cost more CPU per delivery than
the rest of the request (docs/benchmarks.md). aiohttp keeps its pool per host and parses answers
in C, so the client keeps httpx's API and aiohttp moves the bytes.

What a connector needs to know about a failure is whether the partner may have received the
request (:mod:`gateway.core.connectors`); aiohttp's errors are mapped onto httpx's with that in
mind: a failure to connect (or to get a connection in time) is ``ConnectError``/``ConnectTimeout``
— nothing was sent — and anything after that (a reset, a server that hangs up, a read timeout, a
malformed answer) is a read or protocol error, whose outcome is unknown.

Answers are read whole before they are handed to httpx (the gateway never streams one), under the
same per-read timeout.
"""

from __future__ import annotations

import asyncio
import json as _json
import weakref
from collections.abc import Callable
from typing import Any
import aiohttp
import httpx

# Hop-by-hop and framing headers: aiohttp writes its own from the body and the URL.
_DROP = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})


def _timeout(timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's four timeouts as aiohttp's: ``pool`` bounds waiting for a connection (aiohttp's
    ``connect``, which includes making one), ``connect`` the TCP connect, ``read`` each read."""
    pool, connect, read = timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read")
    acquire = None if pool is None and connect is None else (pool or 0.0) + (connect or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=read)


def _mapped(exc: Exception, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error for an aiohttp one; ``None`` for an error that is not the transport's."""
    message = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, TLS handshake, DNS
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError)):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, (aiohttp.ClientOSError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
        return httpx.ReadError(message, request=request)
    if isinstance(exc, OSError):
        return httpx.ReadError(message, request=request)
    return None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one ``aiohttp.ClientSession``, made in the event loop that first
    uses it. No environment proxy, no redirects, no decompression (httpx decodes the body)."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        self._limit = limits.max_connections or 0  # 0: no limit, as in httpx
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, keepalive_timeout=self._keepalive,
                                         enable_cleanup_closed=True)
        return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                     skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                                     cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=None))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [(name.decode("latin-1"), value.decode("latin-1"))
                   for name, value in request.headers.raw if name.lower() not in _DROP]
        body = request.content if isinstance(request.stream, httpx.ByteStream) else await request.aread()
        response = await self._send(request.method, str(request.url), body, headers,
                                    _timeout(request.extensions.get("timeout", {})), lambda: request)
        response.request = request
        return response

    async def direct(self, client: httpx.AsyncClient, method: str, url: str, content: bytes,
                     headers: dict[str, str], timeout: httpx.Timeout) -> httpx.Response:
        """A request straight to aiohttp, for the delivery path (see :func:`request`): the client's
        default headers and the given ones, the same timeouts and errors as through the client."""
        return await self._send(method, url, content, [*client.headers.items(), *headers.items()],
                                _timeout(timeout.as_dict()), lambda: httpx.Request(method, url))

    async def _send(self, method: str, url: str, body: bytes, headers: list[tuple[str, str]],
                    timeout: aiohttp.ClientTimeout, request: "Callable[[], httpx.Request]") -> httpx.Response:
        if self._session is None or self._session.closed:
            self._session = self._open()
        try:
            async with self._session.request(method, url, data=body or None, headers=headers,
                                             allow_redirects=False, timeout=timeout, compress=None) as answer:
                content = await answer.read()
                status, raw, reason = answer.status, list(answer.raw_headers), answer.reason
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = _mapped(exc, request())
            if mapped is None:
                raise
            raise mapped from exc
        answered = _Answer(status, headers=raw, content=content,
                           extensions={"http_version": b"HTTP/1.1", "reason_phrase": (reason or "").encode("latin-1")})
        answered.asked = request
        return answered

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# The transport under each client made by new_client(), for post().
_TRANSPORTS: "weakref.WeakKeyDictionary[httpx.AsyncClient, AiohttpTransport]" = weakref.WeakKeyDictionary()


def new_client(limits: httpx.Limits, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The gateway's one shared client. Partner traffic never goes through an environment proxy
    and never follows a redirect (a partner's endpoint is what an administrator registered)."""
    transport = AiohttpTransport(limits)
    client = httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False)
    _TRANSPORTS[client] = transport
    return client


async def request(client: httpx.AsyncClient, method: str, url: str, *, content: bytes = b"",
                  json: Any = None, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                  timeout: httpx.Timeout | float | None = None) -> httpx.Response:
    """``client.request(...)`` for the delivery path — on a client made by :func:`new_client`,
    straight through its aiohttp pool. httpx's client layer (URL parsing, header merging, cookies,
    auth and redirect hooks, none of which a delivery uses) costs about as much CPU per request as
    sending it, and an attempt may send several. Any other client (a test's) gets the ordinary call.
    ``json`` is sent as httpx would send it (compact, UTF-8, ``application/json``)."""
    transport = _TRANSPORTS.get(client)
    if timeout is None or isinstance(timeout, int | float):
        timeout = client.timeout if timeout is None else httpx.Timeout(timeout)
    if transport is None:
        return await client.request(method, url, content=content or None, json=json, params=params, headers=headers,
                                    timeout=timeout)
    headers = dict(headers or {})
    if json is not None:
        content = _json.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        headers.setdefault("Content-Type", "application/json")
    if params:
        url = str(httpx.URL(url, params=params))
    return await transport.direct(client, method, url, content, headers, timeout)


async def post(client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str],
               timeout: httpx.Timeout) -> httpx.Response:
    """:func:`request` for a POST of bytes."""
    return await request(client, "POST", url, content=content, headers=headers, timeout=timeout)


class _Answer(httpx.Response):
    """An answer from :func:`request`: its ``request`` is made only if someone asks for it
    (``raise_for_status`` does), since making one costs as much as the rest of the answer."""

    asked: Callable[[], httpx.Request]

    @property  # type: ignore[override]
    def request(self) -> httpx.Request:
        if self._request is None:
            self._request = self.asked()
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value

    def raise_for_status(self) -> "_Answer":
        if self.is_success:  # nothing to raise, and no request to make for it (a Care4 delivery asks thrice)
            return self
        self.request  # noqa: B018 - httpx reads the private field, so make it first
        super().raise_for_status()
        return self
