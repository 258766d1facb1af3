"""The batching writer both stores share: the request path appends a row to a list; one task
writes batches, retrying a failed write with backoff, and a clean stop flushes everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .record import Record, row_of

log = logging.getLogger("coderouter.usage")
T = TypeVar("T")
#: The longest wait between two tries of a failing write, in seconds.
_MAX_DELAY = 5.0


class BatchingWriter:
    """Queues rows; `_write_queued` (the store's) writes them under one lock."""

    #: The errors a failed write raises (the store's driver's); the rows stay queued.
    errors: tuple[type[BaseException], ...] = (OSError,)
    #: How many times `close` tries a failing flush.
    close_attempts = 3

    def __init__(self, *, batch: int, interval: float) -> None:
        self.batch = batch
        self.interval = interval
        self.written = 0
        self.failures = 0
        self.failures_in_a_row = 0
        #: Why the last write failed, None once a write succeeds again.
        self.problem: str | None = None
        self._queue: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    def add(self, record: Record) -> None:
        """Queue *record*; never blocks, never raises."""
        self._queue.append(row_of(record))
        if len(self._queue) >= self.batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now; raise the database error when the write fails."""
        async with self._lock:
            await self._flush_locked()

    async def read_flushed(self, read: Callable[[], Awaitable[T]]) -> T:
        """Write what is queued, then run *read* before any row added later is written.

        *read* starts in the same step as the last check of the queue, so the rows it reads
        are exactly those added before it started (a failed write leaves its rows out).
        """
        async with self._lock:
            with contextlib.suppress(*self.errors):
                await self._flush_locked()
            return await read()

    async def _flush_locked(self) -> None:
        try:
            await self._write_queued()
        except self.errors as exc:
            self.problem = self._describe(exc)
            self._write_failed(exc)
            raise
        self.problem = None

    async def _write_queued(self) -> None:
        raise NotImplementedError

    def _describe(self, exc: BaseException) -> str:
        """What `problem` says of a failed write."""
        return f"{type(exc).__name__}: {exc}"

    def _write_failed(self, exc: BaseException) -> None:
        """A write failed (the store may reopen before the next one)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def _run(self) -> None:
        delay = self.interval
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                await self.flush()
            except self.errors as exc:
                self.failures += 1
                self.failures_in_a_row += 1
                delay = min(self.interval * 2 ** self.failures_in_a_row, _MAX_DELAY)
                await self._kept(exc, delay)
                continue
            if self.failures_in_a_row:
                log.warning("usage database is back: every kept row is written")
            self.failures_in_a_row = 0
            delay = self.interval

    async def _kept(self, exc: BaseException, delay: float) -> None:
        """After a failed batch: the rows are kept and retried in *delay* seconds."""
        log.error("usage write failed (%s); %d rows kept, retrying in %.1fs",
                  self.problem or exc, len(self._queue), delay)

    async def close(self) -> None:
        """Stop the task and flush what is left, retrying a failing write a few times."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for attempt in range(self.close_attempts):
            try:
                await self.flush()
                break
            except self.errors as exc:
                log.error("usage flush at shutdown failed (%s), attempt %d", exc, attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        await self._closed()

    async def _closed(self) -> None:
        """After the last flush: keep what could not be written, disconnect."""
        raise NotImplementedError
