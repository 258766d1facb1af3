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
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Literal

import aiosqlite

from .limits import Limiter, Totals

log = logging.getLogger("coderouter.usage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    token TEXT,
    token_group TEXT,
    endpoint TEXT NOT NULL,
    model TEXT,
    channel TEXT,
    upstream_model TEXT,
    status INTEGER NOT NULL,
    stream INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    usage_source TEXT NOT NULL DEFAULT 'none',
    latency_ms REAL,
    ttfb_ms REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    client_ip TEXT
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE INDEX IF NOT EXISTS usage_token_ts ON usage (token, ts);
CREATE INDEX IF NOT EXISTS usage_group_ts ON usage (token_group, ts);
"""


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


COLUMNS = tuple(f.name for f in fields(Record))
_row = attrgetter(*COLUMNS)  # a flat tuple, without astuple's deep copy
_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"


class UsageWriter:
    """Queues rows and writes them in batches from one background task."""

    def __init__(self, path: str, *, batch: int = 512, interval: float = 0.25,
                 on_written: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.batch = batch
        self.interval = interval
        self.on_written = on_written
        self.written = 0
        self.failures = 0
        self.db: aiosqlite.Connection | None = None
        self._queue: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def open(self) -> None:
        self.db = await aiosqlite.connect(self.path)
        await self.db.executescript(_PRAGMAS + SCHEMA)
        await self.db.commit()
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    def add(self, record: Record) -> None:
        """Queue *record*; never blocks, never raises."""
        self._queue.append(_row(record))
        if len(self._queue) >= self.batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now; raises the database error when the write fails."""
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
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
}

_AGGREGATES = ("count(*) AS requests, coalesce(sum(prompt_tokens), 0), "
               "coalesce(sum(completion_tokens), 0), coalesce(sum(total_tokens), 0), "
               "coalesce(sum(cost), 0.0), coalesce(sum(status >= 400), 0)")
REPORT_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
                 "errors")


def aggregate_query(by: str, since: float | None, until: float | None) -> tuple[str, list[float]]:
    """SQL and parameters totalling usage per value of *by* (one of GROUPINGS)."""
    expr = GROUPINGS[by]
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (f"SELECT {expr} AS key, {_AGGREGATES} FROM usage{clause} "
           f"GROUP BY key ORDER BY key")
    return sql, params


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_moment(text: str, now: float) -> float:
    """``7d``/``12h`` before *now*, or an ISO date or datetime (UTC when no zone).

    Raise `ValueError` with a message quoting *text* for anything else.
    """
    match = _SPAN.match(text.strip())
    if match:
        return now - float(match.group(1)) * _SPAN_SECONDS[match.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a span such as 7d or 12h, or a date such as 2026-11-01, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


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
    for key, *values in rows:
        item: dict[str, Any] = {by: key}
        item.update(zip(REPORT_FIELDS, values, strict=True))
        item["cost"] = round(item["cost"], 6)
        out.append(item)
    return out


def period_totals_query(column: Literal["token", "token_group"]) -> str:
    """Tokens, forwarded requests and cost per name since a time: seeds the quota counters.

    count_tokens requests are not counted: they bypass quotas and rate limits.
    """
    return (f"SELECT {column}, coalesce(sum(total_tokens), 0), count(*), "
            f"coalesce(sum(cost), 0.0) FROM usage "
            f"WHERE ts >= ? AND attempts > 0 AND {column} IS NOT NULL "
            f"AND endpoint != '/v1/messages/count_tokens' GROUP BY {column}")


async def seed_limiter(db: aiosqlite.Connection, limiter: Limiter) -> None:
    """Rebuild *limiter*'s counters from the table, one indexed query per scope and period.

    Only rows of forwarded requests count (see `period_totals_query`), so the counters equal
    what the requests counted while they were served: a restart neither forgives nor
    double-counts. Call it before serving.
    """
    for query in limiter.seed_plan():
        column: Literal["token", "token_group"] = (
            "token" if query.scope == "token" else "token_group")
        async with db.execute(period_totals_query(column), (query.since,)) as cursor:
            rows = await cursor.fetchall()
        limiter.seed(query, {name: Totals(int(tokens), int(requests), float(cost))
                             for name, tokens, requests, cost in rows})
