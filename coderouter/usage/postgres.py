"""Usage rows in PostgreSQL (``database.url``): batched COPY off the request path, never lost.

The request path only appends a row to a list. One task writes batches with COPY. While
PostgreSQL is down the rows stay in memory up to ``database.buffer``; past that they are
appended to a spool file on local disk (`coderouter.usage.spool`). When it answers again the spool
is written first, then the memory queue. Requests are never held up by any of it.
Needs the ``postgres`` extra (asyncpg).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from ..config import Database
from .batching import BatchingWriter
from .record import COLUMNS
from .report import aggregate_query, report_rows
from .schema import MIGRATIONS, VERSIONS_TABLE, Engine, Migration, pending
from .spool import Spool
from .store import DatabaseUnavailable

log = logging.getLogger("coderouter.usage")

#: Serialises migrations of processes starting at once (any constant shared by them).
_MIGRATION_LOCK = 0x636F6465726F7574
_CONNECT_TIMEOUT = 10.0


def redact(url: str) -> str:
    """*url* without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise DatabaseUnavailable(
            "database.url needs the PostgreSQL client: pip install 'coderouter[postgres]'"
        ) from None
    return asyncpg


async def migrate(conn: Any, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the database to the newest schema in one transaction; return versions applied."""
    async with conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.execute(VERSIONS_TABLE)
        current = int(await conn.fetchval(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"))
        applied = []
        for version, migration in pending(current, migrations):
            for statement in migration.statements("postgres"):
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                               "VALUES ($1, $2, $3)", version, migration.name, time.time())
            applied.append(version)
    return applied


class PostgresWriter(BatchingWriter):
    """Queues rows and writes them to PostgreSQL in batches; spools them while it is down."""

    engine: Engine = "postgres"

    def __init__(self, database: Database, *, batch: int = 2048,
                 interval: float = 0.25) -> None:
        super().__init__(batch=batch, interval=interval)
        assert database.url is not None
        self.url = database.url
        self.buffer = database.buffer
        self.spool = Spool(database.spool)
        self.pool: Any = None

    @property
    def spooled(self) -> int:
        return self.spool.rows

    async def open(self) -> None:
        """Connect and migrate; `DatabaseUnavailable` saying why when PostgreSQL cannot."""
        asyncpg = _asyncpg()
        self.errors = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
        try:
            self.pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=2, timeout=_CONNECT_TIMEOUT,
                command_timeout=30, server_settings={"application_name": "coderouter"})
            async with self.pool.acquire() as conn:
                await migrate(conn)
        except self.errors as exc:
            if self.pool is not None:
                self.pool.terminate()
            raise DatabaseUnavailable(
                f"cannot use the usage database at {redact(self.url)}: {exc}") from None
        self.start()

    async def _write_queued(self) -> None:
        """Write the spool, then everything queued."""
        await self._write_spool()
        while self._queue:
            rows = self._queue[:self.batch]
            await self._copy(rows)
            del self._queue[:len(rows)]

    async def _copy(self, rows: Sequence[tuple[Any, ...]]) -> None:
        async with self.pool.acquire(timeout=_CONNECT_TIMEOUT) as conn:
            await conn.copy_records_to_table("usage", records=rows, columns=COLUMNS)
        self.written += len(rows)

    async def _write_spool(self) -> None:
        if not self.spool.waiting():
            return
        batches = self.spool.drain(self.batch)
        try:
            while (item := await asyncio.to_thread(next, batches, None)) is not None:
                rows, commit = item
                await self._copy(rows)
                await asyncio.to_thread(commit)
                log.info("wrote %d spooled usage rows", len(rows))
        finally:
            batches.close()  # unlocks a file left half-drained, for the next try

    async def _park(self) -> None:
        """Past the memory bound, move the queue to the spool file."""
        if len(self._queue) <= self.buffer:
            return
        rows, self._queue = self._queue, []
        try:
            await asyncio.to_thread(self.spool.append, rows)
        except OSError as exc:
            self._queue[:0] = rows
            log.critical("cannot spool %d usage rows to %s (%s): keeping them in memory",
                         len(rows), self.spool.directory, exc)
            return
        log.warning("usage database down: %d rows spooled to %s", len(rows),
                    self.spool.directory)

    async def _kept(self, exc: BaseException, delay: float) -> None:
        await self._park()
        log.error("usage write failed (%s); %d rows in memory, %d spooled, retrying in %.1fs",
                  self.problem or exc, len(self._queue), self.spooled, delay)

    async def _closed(self) -> None:
        """Rows that still cannot be written go to the spool; disconnect."""
        if self._queue:
            rows, self._queue = self._queue, []
            try:
                await asyncio.to_thread(self.spool.append, rows)
                log.warning("%d usage rows spooled to %s; written at the next start",
                            len(rows), self.spool.directory)
            except OSError as exc:
                log.critical("%d usage rows could not be written (%s)", len(rows), exc)
        self.spool.release()
        if self.pool is not None:
            with contextlib.suppress(*self.errors):
                await asyncio.wait_for(self.pool.close(), 5)

    # -- reading ----------------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        async with self.pool.acquire(timeout=_CONNECT_TIMEOUT) as conn:
            return [tuple(r) for r in await conn.fetch(sql, *params)]

    async def report(self, by: str, since: float | None,
                     until: float | None) -> list[dict[str, Any]]:
        """`coderouter.usage.aggregate` in PostgreSQL, after writing what is kept."""
        try:
            await self.flush()
            sql, params = aggregate_query(by, since, until, "postgres")
            return report_rows(by, await self.fetch(sql, params))
        except self.errors as exc:
            raise DatabaseUnavailable(
                f"the usage database at {redact(self.url)} is failing ({exc}); "
                f"{self.queued} rows are kept in memory and {self.spooled} spooled to disk, "
                f"written when it recovers") from None


async def report(database: Database, by: str, since: float | None,
                 until: float | None) -> list[dict[str, Any]]:
    """One-off aggregate for `coderouter usage` (no writer, no migration)."""
    sql, params = aggregate_query(by, since, until, "postgres")
    return report_rows(by, await fetch_once(database, sql, params))


async def fetch_once(database: Database, sql: str,
                     params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of one query on its own connection (for the CLI); none before the table
    exists."""
    assert database.url is not None
    asyncpg = _asyncpg()
    try:
        conn = await asyncpg.connect(database.url, timeout=_CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(
            f"cannot reach the usage database at {redact(database.url)}: {exc}") from None
    try:
        return [tuple(r) for r in await conn.fetch(sql, *params)]
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()
