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
import weakref
from collections.abc import Callable
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

    async def post(self, client: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str],
                   timeout: httpx.Timeout) -> httpx.Response:
        """A POST straight to aiohttp, for the delivery path (see :func:`post`): the client's default
        headers and the given ones, the same timeouts and errors as through the client."""
        return await self._send("POST", url, content, [*client.headers.items(), *headers.items()],
                                _timeout(timeout.as_dict()), lambda: httpx.Request("POST", url))

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
        return httpx.Response(status, headers=raw, content=content,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": (reason or "").encode("latin-1")})

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


async def post(client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str],
               timeout: httpx.Timeout) -> httpx.Response:
    """``client.post(url, content=..., headers=..., timeout=...)`` — on a client made by
    :func:`new_client`, straight through its aiohttp pool. httpx's client layer (URL parsing,
    header merging, cookies, auth and redirect hooks, none of which a delivery uses) costs about
    as much CPU per request as sending it; the delivery path sends one request per attempt and
    takes the shortcut. Any other client (a test's) gets the ordinary call."""
    transport = _TRANSPORTS.get(client)
    if transport is None:
        return await client.post(url, content=content, headers=headers, timeout=timeout)
    return await transport.post(client, url, content, headers, timeout)

