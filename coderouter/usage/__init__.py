"""The usage table: schema, one batched background writer, and the aggregate queries.

Rows are queued in memory by the request path (a list append) and written by one task in
batches, one transaction each. A failed write (full disk, locked file) keeps the rows queued
and is retried; a clean shutdown flushes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Literal, Protocol

import aiosqlite

from .schema import MIGRATIONS, VERSIONS_TABLE, Engine, Migration, pending

log = logging.getLogger("coderouter.usage")

@dataclass(slots=True)
class Record:
    """One request's row, filled in as the request goes; written whatever happens to it."""

    ts: float
    request_id: str
    endpoint: str
    token: str | None = None
    token_group: str | None = None
    model: str | None = None
    channel: str | None = None
    upstream_model: str | None = None
    status: int = 0
    stream: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    usage_source: Literal["upstream", "estimated", "none"] = "none"
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    attempts: int = 0
    error: str | None = None
    client_ip: str | None = None
    #: The conversation (`sessions.session_key`), the agent or SDK, the routing rule that fired.
    session: str | None = None
    client: str | None = None
    rule: str | None = None
    #: Prompt tokens written to the upstream's cache, kept 5 minutes and kept 1 hour.
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0


COLUMNS = tuple(f.name for f in fields(Record))
row_of = attrgetter(*COLUMNS)  # a flat tuple, without astuple's deep copy
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
#: SQLite's primary result code for a write to a database opened read-only.
_SQLITE_READONLY = 8


class DatabaseUnavailable(RuntimeError):
    """The usage database cannot be opened or written; the message says why and where."""


class UsageStore(Protocol):
    """Where finished requests' rows go and where usage is read back: SQLite or PostgreSQL."""

    written: int
    failures: int
    #: Why the last write failed, None while writes succeed.
    problem: str | None
    engine: Engine

    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

    @property
    def queued(self) -> int: ...

    @property
    def spooled(self) -> int: ...

    async def open(self) -> None: ...

    def add(self, record: Record) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    async def report(self, by: str, since: float | None,
                     until: float | None) -> list[dict[str, Any]]: ...


async def migrate(db: aiosqlite.Connection, migrations: tuple[Migration, ...] = MIGRATIONS,
                  ) -> list[int]:
    """Bring *db* to the newest schema in one transaction; return the versions applied.

    ``BEGIN IMMEDIATE`` takes the write lock first, so processes opening one file at once
    apply each migration exactly once.
    """
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute(VERSIONS_TABLE)
        async with db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        applied = []
        for version, migration in pending(current, migrations):
            for statement in migration.statements("sqlite"):
                await db.execute(statement)
            await db.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                             "VALUES (?, ?, ?)", (version, migration.name, time.time()))
            applied.append(version)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    if current > len(migrations):
        log.warning("usage database schema is at version %d, newer than this release's %d; "
                    "writing the columns this release knows", current, len(migrations))
    return applied


async def probe_writable(db: aiosqlite.Connection) -> None:
    """Raise the database's error unless a row can be written (nothing is kept)."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                         "VALUES (-1, 'write probe', 0)")
    finally:
        await db.rollback()


def _identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at *path*, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class UsageWriter:
    """Queues rows and writes them in batches from one background task.

    Before every batch the file at *path* is compared with the one opened: a database deleted
    or replaced while serving is recreated (from the open copy when it was deleted, so no row
    and no quota is lost) and logged as critical. A write refused as read-only reopens the
    file before the next try, so fixed permissions are picked up without a restart.
    """

    def __init__(self, path: str, *, batch: int = 512, interval: float = 0.25,
                 on_written: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.batch = batch
        self.interval = interval
        self.on_written = on_written
        self.written = 0
        self.failures = 0
        #: Why the last write failed, None once a write succeeds again.
        self.problem: str | None = None
        self.db: aiosqlite.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._reopen = False
        self._queue: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    #: Rows parked on disk: never for SQLite, whose rows wait in memory (see `PostgresWriter`).
    spooled = 0
    engine: Engine = "sqlite"

    async def open(self) -> None:
        """Open (creating and migrating) the database; `DatabaseUnavailable` unless writable."""
        try:
            await self._connect()
            assert self.db is not None
            await probe_writable(self.db)
        except (sqlite3.Error, OSError) as exc:
            if self.db is not None:
                await self.db.close()
                self.db = None
            raise DatabaseUnavailable(
                f"the usage database {self.path} is not writable ({exc}): the gateway must "
                f"write the file and create {self.path}-wal beside it") from None
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def _connect(self) -> None:
        db = await aiosqlite.connect(self.path)
        try:
            await db.executescript(_PRAGMAS)
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        self.db = db
        self._identity = _identity(self.path)

    def add(self, record: Record) -> None:
        """Queue *record*; never blocks, never raises."""
        self._queue.append(row_of(record))
        if len(self._queue) >= self.batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now; raises the database error when the write fails."""
        async with self._lock:
            try:
                await self._follow_file()
                await self._write()
            except sqlite3.Error as exc:
                self.problem = str(exc)
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_READONLY:
                    self._reopen = True
                raise
            self.problem = None

    async def _write(self) -> None:
        while self._queue:
            rows, self._queue = self._queue, []
            try:
                assert self.db is not None
                await self.db.executemany(_INSERT, rows)
                await self.db.commit()
            except BaseException:
                self._queue[:0] = rows
                if self.db is not None and self.db.in_transaction:
                    await self.db.rollback()
                raise
            self.written += len(rows)
            if self.on_written:
                self.on_written(len(rows))

    async def _follow_file(self) -> None:
        """Reopen after a read-only error; recreate a database deleted or replaced under us."""
        if self.path == ":memory:":
            return
        now = _identity(self.path)
        if self.db is not None and now == self._identity and not self._reopen:
            return
        if self.db is not None:
            old, self.db = self.db, None
            if now is None:
                log.critical("usage database %s was deleted while serving: recreating it "
                             "with the rows written so far", self.path)
                await self._rescue(old)
            elif now != self._identity:
                log.critical("usage database %s was replaced by another file while serving: "
                             "writing to the new file from now on", self.path)
            await old.close()
        self._reopen = False
        await self._connect()  # when this fails, the next batch tries again

    async def _rescue(self, old: aiosqlite.Connection) -> None:
        """Copy the deleted database, still open as *old*, back to its path."""
        copy = f"{self.path}.{os.getpid()}.rescue"
        try:
            await old.execute("VACUUM INTO ?", (copy,))
            os.replace(copy, self.path)
        except (sqlite3.Error, OSError) as exc:
            log.critical("could not copy the deleted usage database back (%s): starting an "
                         "empty one; quotas count from zero after a restart", exc)
            with contextlib.suppress(OSError):
                os.unlink(copy)

    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Every row of one read query."""
        assert self.db is not None
        async with self.db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def report(self, by: str, since: float | None,
                     until: float | None) -> list[dict[str, Any]]:
        """`aggregate` over every finished request (the queue is written first).

        Raise `DatabaseUnavailable` saying why when the database cannot be written or read.
        """
        try:
            await self.flush()
            assert self.db is not None
            return await aggregate(self.db, by, since, until)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(
                f"the usage database {self.path} is failing ({exc}); {self.queued} rows are "
                f"kept in memory and written when it recovers") from None

    async def _run(self) -> None:
        delay = self.interval
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                await self.flush()
                delay = self.interval
            except sqlite3.Error as exc:
                self.failures += 1
                delay = min(delay * 2, 5.0)
                log.error("usage write failed (%s); %d rows kept, retrying in %.1fs",
                          exc, len(self._queue), delay)

    async def close(self, attempts: int = 5) -> None:
        """Stop the task and flush what is left, retrying a failing write a few times."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for attempt in range(attempts):
            try:
                await self.flush()
                break
            except sqlite3.Error as exc:
                log.error("usage flush at shutdown failed (%s), attempt %d", exc, attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        if self._queue:
            log.critical("%d usage rows could not be written", len(self._queue))
        if self.db is not None:
            await self.db.close()


# -- reading --------------------------------------------------------------------------------

GROUPINGS = {
    "token": "token",
    "group": "token_group",
    "model": "model",
    "channel": "channel",
    "session": "session",
    "client": "client",
    "day": "",  # per engine, see _DAY
}
_DAY: dict[Engine, str] = {
    "sqlite": "strftime('%Y-%m-%d', ts, 'unixepoch')",
    "postgres": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

_AGGREGATES = ("count(*) AS requests, coalesce(sum(prompt_tokens), 0), "
               "coalesce(sum(completion_tokens), 0), coalesce(sum(total_tokens), 0), "
               "coalesce(sum(cost), 0.0), "
               "coalesce(sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0), "
               "coalesce(sum(cached_tokens), 0), coalesce(sum(cache_write_5m_tokens), 0), "
               "coalesce(sum(cache_write_1h_tokens), 0)")
REPORT_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
                 "errors", "cached_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens")


def placeholders(sql: str, engine: Engine) -> str:
    """*sql* written with ``?`` parameters, in *engine*'s style (``$1, $2`` for PostgreSQL)."""
    if engine == "sqlite":
        return sql
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "")
                   for i, part in enumerate(parts, start=1))


def aggregate_query(by: str, since: float | None, until: float | None,
                    engine: Engine = "sqlite") -> tuple[str, list[float]]:
    """SQL and parameters totalling usage per value of *by* (one of GROUPINGS)."""
    expr = GROUPINGS[by] or _DAY[engine]
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (f"SELECT {expr} AS key, {_AGGREGATES} FROM usage{clause} "
           f"GROUP BY key ORDER BY key NULLS FIRST")
    return placeholders(sql, engine), params


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
#: 9999-12-31T23:59:59Z: later moments (a zone past the last day) cannot be printed back.
_LAST_MOMENT = 253402300799.0
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_moment(text: str, now: float) -> float:
    """``7d``/``12h`` before *now*, or an ISO date or datetime (UTC when no zone).

    Raise `ValueError` with a message quoting *text* for anything else.
    """
    match = _SPAN.match(text.strip())
    if match:  # a span reaching before 1970 means since the start
        return max(0.0, now - float(match.group(1)) * _SPAN_SECONDS[match.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a span such as 7d or 12h, or a date such as 2026-11-01, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return min(max(moment.timestamp(), 0.0), _LAST_MOMENT)


async def aggregate(db: aiosqlite.Connection, by: str, since: float | None,
                    until: float | None) -> list[dict[str, Any]]:
    """Usage totals per value of *by* over ``since <= ts < until``, shaped by `report_rows`."""
    sql, params = aggregate_query(by, since, until)
    async with db.execute(sql, params) as cursor:
        rows = await cursor.fetchall()
    return report_rows(by, list(rows))


def report_rows(by: str, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Shape aggregate rows as ``[{by: value, requests, prompt_tokens, …}]``."""
    out = []
    for key, requests, prompt, completion, total, cost, errors, cached, write_5m, write_1h \
            in rows:
        prompt, cached = int(prompt), int(cached)
        out.append({by: key, "requests": int(requests), "prompt_tokens": prompt,
                    "completion_tokens": int(completion), "total_tokens": int(total),
                    "cost": round(float(cost), 6), "errors": int(errors),
                    "cached_tokens": cached, "cache_write_5m_tokens": int(write_5m),
                    "cache_write_1h_tokens": int(write_1h),
                    "cache_hit_ratio": round(cached / prompt, 4) if prompt else 0.0})
    return out


def period_totals_query(column: Literal["token", "token_group"],
                        engine: Engine = "sqlite") -> str:
    """Tokens, forwarded requests and cost per name since a time: seeds the quota counters.

    count_tokens and Gemini countTokens requests are not counted: they bypass quotas and
    rate limits.
    """
    return placeholders(
        f"SELECT {column}, coalesce(sum(total_tokens), 0), count(*), "
        f"coalesce(sum(cost), 0.0) FROM usage "
        f"WHERE ts >= ? AND attempts > 0 AND {column} IS NOT NULL "
        f"AND endpoint != '/v1/messages/count_tokens' "
        f"AND endpoint NOT LIKE '%:countTokens' GROUP BY {column}", engine)


#: Runs one query with its parameters and returns every row.
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]


@dataclass(frozen=True, slots=True)
class Totals:
    """Usage of one name since a time: total tokens, request rows and cost."""

    tokens: int = 0
    requests: int = 0
    cost: float = 0.0


async def totals_since(fetch: Fetch, column: Literal["token", "token_group"], since: float,
                       engine: Engine = "sqlite") -> dict[str, Totals]:
    """The `Totals` of each name in *column* since *since* (see `period_totals_query`)."""
    rows = await fetch(period_totals_query(column, engine), (since,))
    return {name: Totals(int(tokens), int(requests), float(cost))
            for name, tokens, requests, cost in rows}
