"""Usage rows in SQLite (``database.path``): the default store.

A failed write (full disk, locked file) keeps the rows queued and is retried; a database
deleted or replaced while serving is recreated; a clean shutdown flushes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from .batching import BatchingWriter
from .record import COLUMNS
from .report import aggregate_query, report_rows
from .schema import MIGRATIONS, VERSIONS_TABLE, Engine, Migration, pending
from .store import DatabaseUnavailable

log = logging.getLogger("coderouter.usage")

_INSERT = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_PRAGMAS = "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
#: SQLite's primary result code for a write to a database opened read-only.
_SQLITE_READONLY = 8
#: How often, and how far apart, a database locked by another opening process is tried.
_LOCKED_TRIES, _LOCKED_PAUSE = 50, 0.1


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


class UsageWriter(BatchingWriter):
    """Queues rows and writes them in batches from one background task.

    Before every batch the file at *path* is compared with the one opened: a database deleted
    or replaced while serving is recreated (from the open copy when it was deleted, so no row
    and no quota is lost) and logged as critical. A write refused as read-only reopens the
    file before the next try, so fixed permissions are picked up without a restart.
    """

    errors = (sqlite3.Error,)
    close_attempts = 5
    #: Rows parked on disk: never for SQLite, whose rows wait in memory (see `PostgresWriter`).
    spooled = 0
    engine: Engine = "sqlite"

    def __init__(self, path: str, *, batch: int = 512, interval: float = 0.25) -> None:
        super().__init__(batch=batch, interval=interval)
        self.path = path
        self.db: aiosqlite.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._reopen = False

    async def open(self) -> None:
        """Open (creating and migrating) the database; `DatabaseUnavailable` unless writable."""
        try:
            await self._connect_when_unlocked()
            assert self.db is not None
            await probe_writable(self.db)
        except (sqlite3.Error, OSError) as exc:
            if self.db is not None:
                await self.db.close()
                self.db = None
            raise DatabaseUnavailable(
                f"the usage database {self.path} is not writable ({exc}): the gateway must "
                f"write the file and create {self.path}-wal beside it") from None
        self.start()

    async def _connect_when_unlocked(self) -> None:
        """`_connect`, again while another process holds the new file's lock: switching a new
        file to WAL needs it alone, and SQLite refuses at once rather than wait when two
        processes would otherwise wait on each other."""
        for _ in range(_LOCKED_TRIES - 1):
            try:
                return await self._connect()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            await asyncio.sleep(_LOCKED_PAUSE)
        await self._connect()

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

    def _describe(self, exc: BaseException) -> str:
        return str(exc)

    def _write_failed(self, exc: BaseException) -> None:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_READONLY:
            self._reopen = True

    async def _write_queued(self) -> None:
        await self._follow_file()
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

    async def _closed(self) -> None:
        if self._queue:
            log.critical("%d usage rows could not be written", len(self._queue))
        if self.db is not None:
            await self.db.close()


async def aggregate(db: aiosqlite.Connection, by: str, since: float | None,
                    until: float | None) -> list[dict[str, Any]]:
    """Usage totals per value of *by* over ``since <= ts < until``, shaped by `report_rows`."""
    sql, params = aggregate_query(by, since, until)
    async with db.execute(sql, params) as cursor:
        rows = await cursor.fetchall()
    return report_rows(by, list(rows))
