"""Read-only connections to the usage table for the dashboard, apart from the writer's.

Dashboard queries over long ranges take a while; on their own connection (SQLite in WAL mode
lets readers and the writer work at once) they never hold up the usage writer. Quick lookups
(recent rows, by index) get a second connection, so they never wait behind an aggregate.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite


class Reader:
    """Runs the dashboard's queries (see `queries`) on one read-only connection."""

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
