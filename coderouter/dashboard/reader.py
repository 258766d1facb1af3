"""A read-only connection to the usage table for the dashboard, apart from the writer's.

Dashboard queries over long ranges take a while; on their own connection (SQLite in WAL mode
lets readers and the writer work at once) they never hold up the usage writer.
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

    async def open(self) -> None:
        self.db = await aiosqlite.connect(self.path)
        await self.db.execute("PRAGMA query_only = 1")
        try:
            await self.db.execute("SELECT floor(ln(2.5))")
        except sqlite3.OperationalError:  # an SQLite built without its math functions
            await self.db.create_function("floor", 1, _floor, deterministic=True)
            await self.db.create_function("ln", 1, _ln, deterministic=True)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self.db is not None, "Reader.open() first"
        async with self.db.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()
            self.db = None


def _floor(value: float | None) -> int | None:
    return None if value is None else math.floor(value)


def _ln(value: float | None) -> float | None:
    return None if value is None or value <= 0 else math.log(value)
