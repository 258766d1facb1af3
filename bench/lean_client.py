"""A lean HTTP/1.1 client on asyncio and httptools: the candidate measured by `bench.clients`.

Per connection one `asyncio.Protocol` with an httptools response parser; per origin a LIFO
keep-alive pool; one pre-built bytes write per request; one timer per connection, armed for
the first byte and re-armed lazily for each idle gap; a request on a kept-alive connection
that is found closed before any byte of its answer is sent once more on a new connection;
a body read as it arrives, reading paused while more than `HIGH_WATER` bytes wait.
No TLS and no proxy here: this is the measured shape, not a product.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import cast

import httptools

HIGH_WATER = 256 * 1024


class UpstreamClosed(ConnectionError):
    """The connection closed before the answer was complete."""


class Answer:
    """One response: status and headers once its head arrived, then its body as read."""

    __slots__ = ("_conn", "_waiter", "chunks", "complete", "error", "headers", "keep_alive",
                 "pending", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.pending = 0
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def header(self, name: bytes) -> bytes | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def chunk(self) -> bytes:
        """The next piece of the body as it came; b"" at its end."""
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._wait()
        data = self.chunks.popleft()
        self.pending -= len(data)
        if self.pending < HIGH_WATER:
            self._conn.resume()
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while data := await self.chunk():
            yield data

    async def read(self) -> bytes:
        parts = [data async for data in self.iter_chunks()]
        return b"".join(parts)

    def release(self) -> None:
        """Back to the pool when read to the end on a kept-alive connection, else closed."""
        self._conn.done(self)


class Connection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: Answer | None = None
        self.closed = False
        self.paused = False
        self.seen = False  # a byte of the current answer arrived
        self.deadline = 0.0
        self.timeout = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.seen = True
        if self.timer is not None:
            self.deadline = self.loop.time() + self.timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"bad answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamClosed("upstream closed the connection"))
        self.pool.forget(self)

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.answer is not None:
            self.answer.headers.append((name, value))

    def on_headers_complete(self) -> None:
        answer = self.answer
        if answer is not None:
            answer.status = self.parser.get_status_code()
            answer.keep_alive = self.parser.should_keep_alive()
            answer._wake()

    def on_body(self, body: bytes) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.chunks.append(body)
        answer.pending += len(body)
        if answer.pending >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        answer._wake()

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is not None:
            answer.complete = True
            self._disarm()
            answer._wake()

    # -- ours
    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _fail(self, error: BaseException) -> None:
        answer = self.answer
        self._disarm()
        if answer is not None and not answer.complete and answer.error is None:
            answer.error = error
            answer._wake()

    def arm(self, timeout: float) -> None:
        """One timer for the whole answer: each byte moves the deadline, the timer re-arms
        itself only when it fires early."""
        self.timeout = timeout
        self.deadline = self.loop.time() + timeout
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._expire)

    def _expire(self) -> None:
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._expire)
            return
        self.timer = None
        self._fail(TimeoutError("upstream stayed silent"))
        if self.transport is not None:
            self.transport.abort()

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def done(self, answer: Answer) -> None:
        self.answer = None
        self._disarm()
        if answer.complete and answer.keep_alive and not self.closed and not self.paused:
            self.pool.put(self)
        elif self.transport is not None:
            self.transport.close()


class Pool:
    """Kept-alive connections to one origin (host, port), the last used first."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.idle: list[Connection] = []
        self.host_header = f"{host}:{port}".encode()

    def put(self, conn: Connection) -> None:
        self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: Connection(self), self.host, self.port)
        return conn

    async def request(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> Answer:
        head = [method, b" ", path, b" HTTP/1.1\r\nHost: ", self.host_header,
                b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"\r\n", body]
        data = b"".join(head)
        for reused in (True, False):
            conn = self.idle.pop() if reused and self.idle else None
            if conn is None:
                reused = False
                conn = await self._connect()
            answer = Answer(conn)
            conn.answer, conn.seen = answer, False
            assert conn.transport is not None
            conn.transport.write(data)
            conn.arm(self.timeout)
            try:
                while not answer.status:
                    if answer.error is not None:
                        raise answer.error
                    await answer._wait()
            except UpstreamClosed:
                if reused and not conn.seen:
                    continue  # a stale kept-alive connection: once more on a new one
                raise
            return answer
        raise UpstreamClosed("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()
