"""Opt-in capture of request and response bodies (``capture:``), for debugging agent sessions.

A sampled share of requests (``capture.sample``) keeps the caller's body and what the caller
got back (the answer, every stream event, or the error), each cut at ``capture.max_body``
bytes. Before anything is stored, every secret the gateway knows (channel keys and header
values, the admin key, the caller's own key) and common credential shapes in the text
(`scrub.scrub_credentials`) are replaced. Rows go to their own SQLite file (``capture.path``,
by default ``coderouter-capture.sqlite`` beside the usage database), written in the background
once a second; rows older than ``capture.keep`` are deleted then, and never answered.
The dashboard's request view reads them by request id (``GET /admin/captures/{id}``).

Off (``sample: 0``, the default) a request pays one comparison.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite

from .config import Config
from .config.model import Capture as Settings
from .scrub import Scrubber, scrub_credentials
from .usage import Record

log = logging.getLogger("coderouter.capture")

_SCHEMA = ("CREATE TABLE IF NOT EXISTS captures (request_id TEXT PRIMARY KEY, ts REAL NOT NULL, "
           "token TEXT, request TEXT NOT NULL, response TEXT NOT NULL, "
           "request_truncated INTEGER NOT NULL, response_truncated INTEGER NOT NULL)")
#: Captures waiting for the writer at most; more are dropped (and counted), so memory stays
#: bounded by about ``MAX_QUEUED * 2 * capture.max_body`` whatever the traffic.
MAX_QUEUED = 1000
_INDEX = "CREATE INDEX IF NOT EXISTS captures_ts ON captures (ts)"
_FIELDS = ("request_id", "ts", "token", "request", "response", "request_truncated",
           "response_truncated")


def capture_path(config: Config) -> str:
    """Where captured bodies are kept: ``capture.path``, else beside the usage database."""
    if config.capture.path is not None:
        return config.capture.path
    return str(Path(config.database.path).parent / "coderouter-capture.sqlite")


class Capture:
    """One sampled request's bodies, each kept up to *limit* bytes."""

    __slots__ = ("key", "limit", "request", "request_truncated", "response",
                 "response_truncated")

    def __init__(self, body: bytes, limit: int, key: str | None) -> None:
        self.limit, self.key = limit, key
        self.request = body[:limit]
        self.request_truncated = len(body) > limit
        self.response = bytearray()
        self.response_truncated = False

    def add(self, data: bytes) -> None:
        """Keep *data*, what the caller got next, while there is room."""
        room = self.limit - len(self.response)
        if len(data) > room:
            self.response_truncated = True
        if room > 0:
            self.response += data[:room]


class Captures:
    """Samples requests, scrubs and queues their bodies, writes and reads them."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self.path: str | None = None
        self._queue: list[tuple[Any, ...]] = []
        self._db: aiosqlite.Connection | None = None
        self._keep = 0.0
        #: Captures not kept because `MAX_QUEUED` were already waiting for the writer.
        self.dropped = 0

    def start(self, settings: Settings, body: bytes, key: str | None) -> Capture | None:
        """A `Capture` of this request when it is sampled, else None."""
        if settings.sample <= 0 or self.rng.random() >= settings.sample:
            return None
        return Capture(body, settings.max_body, key)

    def finish(self, capture: Capture, record: Record, config: Config) -> None:
        """Scrub *capture* and queue it for the next write."""
        extra = Scrubber([s for s in (capture.key, config.admin.key) if s])

        def clean(data: bytes) -> str:
            return scrub_credentials(extra.clean(config.scrubber.clean(data)).decode(
                "utf-8", "replace"))
        self._keep = config.capture.keep
        self.path = self.path or capture_path(config)
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queue.append((record.request_id, record.ts, record.token,
                            clean(capture.request), clean(bytes(capture.response)),
                            int(capture.request_truncated), int(capture.response_truncated)))

    async def flush(self) -> None:
        """Write what is queued and forget what is older than ``capture.keep``."""
        if self.dropped:
            log.warning("capture: %d requests' bodies not kept, %d were already waiting to be "
                        "written", self.dropped, MAX_QUEUED)
            self.dropped = 0
        if not self._queue:
            return
        rows, self._queue = self._queue, []
        try:
            db = await self._open()
            await db.executemany(
                f"INSERT OR REPLACE INTO captures ({', '.join(_FIELDS)}) "
                f"VALUES ({', '.join('?' * len(_FIELDS))})", rows)
            await db.execute("DELETE FROM captures WHERE ts < ?", (self.clock() - self._keep,))
            await db.commit()
        except (sqlite3.Error, OSError) as exc:
            log.error("could not write %d captured bodies to %s: %s", len(rows), self.path, exc)

    async def get(self, request_id: str, config: Config) -> dict[str, Any] | None:
        """The captured bodies of *request_id*, unless older than ``capture.keep``."""
        await self.flush()
        self.path = self.path or capture_path(config)
        if not Path(self.path).exists():
            return None
        db = await self._open()
        async with db.execute(f"SELECT {', '.join(_FIELDS)} FROM captures "
                              "WHERE request_id = ? AND ts >= ?",
                              (request_id, self.clock() - config.capture.keep)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else dict(zip(_FIELDS, row, strict=True))

    async def _open(self) -> aiosqlite.Connection:
        if self._db is None:
            assert self.path is not None
            db = await aiosqlite.connect(self.path)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute(_SCHEMA)
            await db.execute(_INDEX)
            self._db = db
        return self._db

    async def close(self) -> None:
        await self.flush()
        if self._db is not None:
            await self._db.close()
            self._db = None
