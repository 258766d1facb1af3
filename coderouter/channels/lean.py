"""The upstream HTTP/1.1 client: asyncio protocols and the httptools parser, no more.

Measured against aiohttp's client, pyreqwest and aiosonic (README, performance notes), it
costs half of aiohttp's CPU per request. Per channel one `Pool` of kept-alive connections to
each origin, the last used first, at most *limit* connections open; one pre-built write per
request; a request on a kept-alive connection found closed before any byte of its answer is
sent once more on a new connection. An answer's body is handed over as it arrives and
reading pauses while more than `HIGH_WATER` bytes wait; gzip and deflate bodies are inflated
as they are read. TLS for https, the environment's proxy as aiohttp did: absolute-form
requests for http, a CONNECT tunnel for https.

Failures are aiohttp's exception types, which the relay already tells apart: a connection
that cannot be made is `ClientConnectorError`, one lost before the answer's head
`ServerDisconnectedError`, one lost mid-body `ClientPayloadError`. First-byte and idle
timeouts are the relay's (cancelling a read closes the connection).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import aiohttp
import httptools
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy

HIGH_WATER = 256 * 1024
INFLATE_STEP = 256 * 1024
KEEP_IDLE = 60.0  # seconds an unused connection is kept
_SKIPPED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TLS: list[ssl.SSLContext] = []


def _tls() -> ssl.SSLContext:
    if not _TLS:
        _TLS.append(ssl.create_default_context())
    return _TLS[0]


class Origin:
    """Where a URL's requests go: the socket to open and the request line's target."""

    __slots__ = ("host", "key", "port", "proxy_auth", "proxy_host", "proxy_port", "target",
                 "tls", "tunnel")

    def __init__(self, url: str, proxy: str | None) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.proxy_host: str | None = None
        self.proxy_port = 0
        self.proxy_auth: str | None = None
        self.tunnel = False
        self.target = path
        if proxy is not None:
            via = urlsplit(proxy)
            self.proxy_host, self.proxy_port = via.hostname or "", via.port or 80
            if via.username is not None:
                secret = f"{unquote(via.username)}:{unquote(via.password or '')}"
                self.proxy_auth = "Basic " + base64.b64encode(secret.encode()).decode()
            self.tunnel = self.tls
            if not self.tls:  # a plain proxy takes the whole URL
                self.target = f"http://{self.host_header}{path}"
        self.key = (self.host, self.port, self.tls, self.proxy_host, self.proxy_port)

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def connector_error(self, error: OSError) -> aiohttp.ClientConnectorError:
        key = ConnectionKey(self.host, self.port, self.tls, True, None, None, None, None)
        return aiohttp.ClientConnectorError(key, error)


class _Inflate:
    """A gzip or deflate body, inflated piece by piece, at most `INFLATE_STEP` bytes a time
    (a small bomb must not inflate to gigabytes in one call)."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding == "gzip"
        self.z = zlib.decompressobj(16 + zlib.MAX_WBITS if self.gzip else zlib.MAX_WBITS)
        self.first = not self.gzip

    def feed(self, data: bytes) -> bytes:
        if self.first:  # deflate may come raw, without the zlib header (aiohttp takes both)
            self.first = False
            try:
                return self.z.decompress(data, INFLATE_STEP)
            except zlib.error:
                self.z = zlib.decompressobj(-zlib.MAX_WBITS)
        return self.z.decompress(data, INFLATE_STEP)

    def more(self) -> bytes:
        """What is left of the last piece fed."""
        tail = self.z.unconsumed_tail
        return self.z.decompress(tail, INFLATE_STEP) if tail else b""


class Body:
    """An answer's body as it arrives (the `content` of `LeanResponse`)."""

    __slots__ = ("_conn", "_waiter", "chunks", "complete", "error", "inflate", "pending")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.chunks: collections.deque[bytes] = collections.deque()
        self.pending = 0
        self.complete = False
        self.error: BaseException | None = None
        self.inflate: _Inflate | None = None
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def is_eof(self) -> bool:
        return self.complete and not self.chunks and (
            self.inflate is None or not self.inflate.z.unconsumed_tail)

    async def readany(self) -> bytes:
        """What of the body has come since the last call (inflated); b"" at its end."""
        inflate = self.inflate
        while True:
            if inflate is not None:
                try:
                    data = inflate.more()
                except zlib.error as exc:
                    raise aiohttp.ClientPayloadError(f"cannot inflate the answer: {exc}") \
                        from None
                if data:
                    return data
            while not self.chunks:
                if self.error is not None:
                    raise self.error
                if self.complete:
                    return b""
                await self.wait()
            chunks = self.chunks  # all that waits, in one piece: one relay step, one write
            data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self.pending = 0
            self._conn.resume()
            if inflate is not None:
                try:
                    data = inflate.feed(data)
                except zlib.error as exc:
                    raise aiohttp.ClientPayloadError(f"cannot inflate the answer: {exc}") \
                        from None
            if data:
                return data

    async def iter_any(self) -> AsyncIterator[bytes]:
        while data := await self.readany():
            yield data


class LeanResponse:
    """The part of an upstream answer the relay uses (`pool.Response`)."""

    __slots__ = ("_conn", "content", "content_length", "content_type", "headers", "status")

    def __init__(self, conn: Connection, status: int, headers: CIMultiDict[str]) -> None:
        self._conn = conn
        self.status = status
        self.headers = CIMultiDictProxy(headers)
        self.content = conn.body
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self.content_type = (headers.get("Content-Type") or "application/octet-stream") \
            .split(";", 1)[0].strip().lower()
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("gzip", "deflate"):
            conn.body.inflate = _Inflate(encoding)

    async def read(self) -> bytes:
        return b"".join([data async for data in self.content.iter_any()])

    def close(self) -> None:
        """Back to the pool when read to the end on a kept-alive connection, else closed."""
        self._conn.finish()


class Connection(asyncio.Protocol):
    """One socket to an origin, one request at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool, self.origin = pool, origin
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.body = Body(self)
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.head: asyncio.Future[None] | None = None
        self.closed = False
        self.paused = False
        self.seen = False
        self.keep_alive = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.seen = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientPayloadError(f"the upstream's answer is malformed: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        body = self.body
        if self.head is None or not self.head.done():
            self._fail(aiohttp.ServerDisconnectedError())
        elif not body.complete and self.parser.get_status_code() and self._until_close():
            body.complete = True  # a body without length or chunks ends with the connection
            body.wake()
        else:
            self._fail(aiohttp.ClientPayloadError("the upstream closed the connection "
                                                  "mid-answer"))
        self.pool.forget(self)

    def _until_close(self) -> bool:
        headers = self.headers
        return "Content-Length" not in headers and "chunked" not in \
            headers.get("Transfer-Encoding", "").lower()

    # httptools
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, data: bytes) -> None:
        body = self.body
        body.chunks.append(data)
        body.pending += len(data)
        if body.pending >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        body.wake()

    def on_message_complete(self) -> None:
        self.body.complete = True
        self.body.wake()

    # ours
    def _fail(self, error: BaseException) -> None:
        head, body = self.head, self.body
        if head is not None and not head.done():
            head.set_exception(error)
        elif not body.complete and body.error is None:
            body.error = error
            body.wake()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, data: bytes) -> LeanResponse:
        """Send one request and wait for its answer's head."""
        self.head = self.loop.create_future()
        self.seen = False
        self.body = Body(self)
        self.headers = CIMultiDict()
        assert self.transport is not None
        self.transport.write(data)
        try:
            await self.head
        except BaseException:
            self.close()
            self.pool.release(self, reuse=False)
            raise
        return LeanResponse(self, self.parser.get_status_code(), self.headers)

    def finish(self) -> None:
        """The answer is done with: keep the connection for the next request or close it."""
        reuse = self.body.is_eof() and self.keep_alive and not self.closed and not self.paused
        if not reuse:
            self.close()
        self.pool.release(self, reuse)


class _Tunnel(asyncio.Protocol):
    """A proxy connection until the proxy answered its CONNECT."""

    def __init__(self) -> None:
        self.head = b""
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.head += data
        if b"\r\n\r\n" in self.head and not self.answer.done():
            self.answer.set_result(self.head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(OSError("the proxy closed the connection"))


class Pool:
    """One channel's connections: kept alive per origin, at most *limit* open at once."""

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self.open = 0
        self.idle: dict[tuple[Any, ...], list[Connection]] = {}
        self.busy: set[Connection] = set()
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closed = False
        self._origins: dict[tuple[str, str | None], Origin] = {}

    def origin(self, url: str, proxy: str | None) -> Origin:
        key = (url, proxy)
        found = self._origins.get(key)
        if found is None:
            if len(self._origins) >= 1024:
                self._origins.clear()
            found = self._origins[key] = Origin(url, proxy)
        return found

    async def post(self, url: str, data: bytes, headers: CIMultiDict[str],
                   connect_timeout: float | None, proxy: str | None) -> LeanResponse:
        """POST *data* to *url*; the answer once its head arrived."""
        if self.closed:
            raise aiohttp.ClientConnectionError("the channel's connection pool is closed")
        origin = self.origin(url, proxy)
        request = self._request(origin, data, headers)
        conn = self._kept(origin)
        if conn is not None:
            try:
                return await conn.exchange(request)
            except aiohttp.ServerDisconnectedError:
                if conn.seen:
                    raise
                # a kept-alive connection the upstream had closed: once more on a new one
        conn = await self._connect(origin, connect_timeout)
        return await conn.exchange(request)

    @staticmethod
    def _request(origin: Origin, data: bytes, headers: CIMultiDict[str]) -> bytes:
        lines = [f"POST {origin.target} HTTP/1.1", f"Host: {origin.host_header}",
                 "Accept: */*", "Accept-Encoding: gzip, deflate",
                 f"Content-Length: {len(data)}"]
        if origin.proxy_auth is not None and not origin.tunnel:
            lines.append(f"Proxy-Authorization: {origin.proxy_auth}")
        for name, value in headers.items():
            if name.lower() in _SKIPPED or name.lower() in ("accept", "accept-encoding"):
                continue
            lines.append(f"{name}: {value}")
        for name in ("Accept", "Accept-Encoding"):
            if name in headers:
                lines[2 if name == "Accept" else 3] = f"{name}: {headers[name]}"
        head = "\r\n".join(lines)
        breaks = len(lines) - 1
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise ValueError("a header holds a line break")
        return head.encode("utf-8") + b"\r\n\r\n" + data

    def _kept(self, origin: Origin) -> Connection | None:
        idle = self.idle.get(origin.key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.closed or now - conn.idle_since > KEEP_IDLE:
                conn.close()
                self._gone()
                continue
            self.busy.add(conn)
            return conn
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        while self.open >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        self.open += 1
        try:
            async with asyncio.timeout(timeout):
                conn = await self._open(origin)
        except TimeoutError:
            self._gone()
            raise aiohttp.ConnectionTimeoutError(
                f"connecting to {origin.host}:{origin.port} timed out") from None
        except OSError as exc:
            self._gone()
            raise origin.connector_error(exc) from None
        except BaseException:
            self._gone()
            raise
        self.busy.add(conn)
        return conn

    async def _open(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        if origin.proxy_host is None:
            _, conn = await loop.create_connection(
                lambda: Connection(self, origin), origin.host, origin.port,
                ssl=_tls() if origin.tls else None,
                server_hostname=origin.host if origin.tls else None)
            return conn
        if not origin.tunnel:
            _, conn = await loop.create_connection(lambda: Connection(self, origin),
                                                   origin.proxy_host, origin.proxy_port)
            return conn
        return await self._tunnel(origin)

    async def _tunnel(self, origin: Origin) -> Connection:
        """An https origin through the proxy: CONNECT, then TLS inside the tunnel."""
        assert origin.proxy_host is not None
        loop = asyncio.get_running_loop()
        transport, tunnel = await loop.create_connection(_Tunnel, origin.proxy_host,
                                                         origin.proxy_port)
        authority = f"{origin.host}:{origin.port}"
        ask = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if origin.proxy_auth is not None:
            ask += f"Proxy-Authorization: {origin.proxy_auth}\r\n"
        transport.write((ask + "\r\n").encode())
        try:
            head = await tunnel.answer
        except BaseException:
            transport.close()
            raise
        line = head.split(b"\r\n", 1)[0]
        if line.split(b" ", 2)[1:2] != [b"200"]:
            transport.close()
            raise OSError(f"the proxy refused the tunnel ({line!r})")
        conn = Connection(self, origin)
        tls = await loop.start_tls(transport, conn, _tls(), server_hostname=origin.host)
        if tls is None:
            raise OSError("TLS through the proxy failed")
        conn.connection_made(tls)
        return conn

    def _gone(self) -> None:
        self.open -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def release(self, conn: Connection, reuse: bool) -> None:
        if conn not in self.busy:
            return
        self.busy.discard(conn)
        if reuse and not self.closed:
            conn.idle_since = time.monotonic()
            self.idle.setdefault(conn.origin.key, []).append(conn)
            return
        self._gone()

    def forget(self, conn: Connection) -> None:
        """A connection closed by the upstream: an idle one leaves the pool."""
        idle = self.idle.get(conn.origin.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._gone()

    async def close(self) -> None:
        self.closed = True
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
        self.idle.clear()
        for conn in list(self.busy):
            conn.close()
