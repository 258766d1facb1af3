"""Where the dashboard's queries run: read-only SQLite connections, or the PostgreSQL pool.

Dashboard queries over long ranges take a while; on SQLite they get their own connection
(WAL mode lets readers and the writer work at once), so they never hold up the usage writer,
and quick lookups (recent rows, by index) a second one, so they never wait behind an
aggregate. With ``database.url`` they go through the PostgreSQL store's pool, with ``$n``
placeholders.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import aiosqlite

from ..config import Database
from ..usage import UsageStore, placeholders

Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]


class Reader(Protocol):
    async def open(self) -> None: ...

    async def fetch(self, sql: str, params: Sequence[Any] = (), *,
                    quick: bool = False) -> list[tuple[Any, ...]]: ...

    async def close(self) -> None: ...


def reader_for(database: Database, store: UsageStore) -> Reader:
    """The reader for *database*: the PostgreSQL store's pool, or SQLite connections."""
    fetch = getattr(store, "fetch", None)
    if database.url is not None and fetch is not None:
        return StoreReader(fetch)
    return SqliteReader(database.path)


class StoreReader:
    """Queries through a usage store's own ``fetch`` (PostgreSQL: its connection pool)."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    async def open(self) -> None:
        return None

    async def fetch(self, sql: str, params: Sequence[Any] = (), *,
                    quick: bool = False) -> list[tuple[Any, ...]]:
        # PostgreSQL types a parameter from its context: a float column compared with an
        # int parameter needs it as a float
        params = [float(p) if isinstance(p, int) and not isinstance(p, bool) else p
                  for p in params]
        return [tuple(row) for row in await self._fetch(placeholders(sql, "postgres"), params)]

    async def close(self) -> None:
        return None


class SqliteReader:
    """Runs the dashboard's queries (see `queries`) on read-only SQLite connections."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db: aiosqlite.Connection | None = None
        self.quick_db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.db = await _connect(self.path)
        self.quick_db = await _connect(self.path)

    async def fetch(self, sql: str, params: Sequence[Any] = (), *,
                    quick: bool = False) -> list[tuple[Any, ...]]:
        """The rows of *sql*; *quick* for indexed lookups that must not queue behind scans."""
        db = self.quick_db if quick else self.db
        assert db is not None, "Reader.open() first"
        async with db.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def close(self) -> None:
        for db in (self.db, self.quick_db):
            if db is not None:
                await db.close()
        self.db = self.quick_db = None


async def _connect(path: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path)
    await db.execute("PRAGMA query_only = 1")
    try:
        await db.execute("SELECT floor(ln(2.5))")
    except sqlite3.OperationalError:  # an SQLite built without its math functions
        await db.create_function("floor", 1, _floor, deterministic=True)
        await db.create_function("ln", 1, _ln, deterministic=True)
    return db


def _floor(value: float | None) -> int | None:
    return None if value is None else math.floor(value)


def _ln(value: float | None) -> float | None:
    return None if value is None or value <= 0 else math.log(value)
