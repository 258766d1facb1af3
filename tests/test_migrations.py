"""Versioned schema migrations: old databases open with the new schema, rows intact."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite

from coderouter.usage import COLUMNS, Record, UsageWriter, migrate
from coderouter.usage.schema import MIGRATIONS, AddColumn

#: The usage table exactly as release 0.1.0 created it (no migration table).
RELEASE_0_1_SCHEMA = """
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

OLD_ROWS = [
    (1, 1000.5, "r1", "alice", "team", "/v1/chat/completions", "smart", "up", "m", 200, 1,
     11, 4, 15, 2, 0.0175, "upstream", 12.5, 3.25, 1, None, "127.0.0.1"),
    (2, 1001.0, "r2", "bob", None, "/v1/messages", "claude", None, None, 403, 0,
     0, 0, 0, 0, 0.0, "none", 0.5, None, 0, "model not allowed", "10.0.0.2"),
]


#: What a 0.1.0 row holds in each column added since: its default (NULL when none).
LATER_DEFAULTS = tuple(None if m.default is None else int(m.default)
                       for m in MIGRATIONS[1:] if isinstance(m, AddColumn))
assert len(LATER_DEFAULTS) == 1 + len(COLUMNS) - len(OLD_ROWS[0])


def release_0_1_database(path: Path) -> None:
    """A database as 0.1.0 left it: its schema, WAL mode, two rows."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(RELEASE_0_1_SCHEMA)
        db.executemany(f"INSERT INTO usage VALUES ({', '.join('?' * 22)})", OLD_ROWS)


def table(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


async def test_release_0_1_database_opens_with_rows_intact(tmp_path: Path) -> None:
    """The gateway opens a 0.1.0 database, records its versions, keeps and adds rows."""
    path = tmp_path / "usage.sqlite"
    release_0_1_database(path)
    writer = UsageWriter(str(path))
    await writer.open()
    writer.add(Record(ts=2000.0, request_id="r3", endpoint="/v1/responses", status=200))
    await writer.close()
    added = LATER_DEFAULTS
    assert table(path, "SELECT * FROM usage WHERE id <= 2 ORDER BY id") == [
        row + added for row in OLD_ROWS]
    assert table(path, "SELECT request_id FROM usage WHERE id > 2") == [("r3",)]
    assert table(path, "SELECT version, name FROM schema_migrations ORDER BY version") == [
        (version, m.name) for version, m in enumerate(MIGRATIONS, start=1)]
    assert sorted(r[1] for r in table(path, "PRAGMA table_info(usage)")) == sorted(
        ["id", *COLUMNS])


async def test_a_new_column_keeps_every_row(tmp_path: Path) -> None:
    """A one-line AddColumn migration on a populated database: rows intact, new column NULL
    (or its default), and applied exactly once."""
    path = tmp_path / "usage.sqlite"
    release_0_1_database(path)
    later = (*MIGRATIONS, AddColumn("note", "text"), AddColumn("retries", "integer", "0"))
    async with aiosqlite.connect(path) as db:
        assert await migrate(db) == list(range(1, len(MIGRATIONS) + 1))
        assert await migrate(db, later) == [len(MIGRATIONS) + 1, len(MIGRATIONS) + 2]
        assert await migrate(db, later) == []
    rows = table(path, "SELECT * FROM usage ORDER BY id")
    added = LATER_DEFAULTS  # the released later columns
    assert rows == [(*row, *added, None, 0) for row in OLD_ROWS]
    names = [r[1] for r in table(path, "PRAGMA table_info(usage)")]
    assert names[-2:] == ["note", "retries"]


async def test_processes_opening_one_new_file_migrate_it_once(tmp_path: Path) -> None:
    """Writers opening the same new file at once apply each version exactly once."""
    path = str(tmp_path / "usage.sqlite")
    writers = [UsageWriter(path) for _ in range(4)]
    await asyncio.gather(*(w.open() for w in writers))
    for writer in writers:
        await writer.close()
    assert table(Path(path), "SELECT count(*), count(DISTINCT version) FROM schema_migrations"
                 ) == [(len(MIGRATIONS), len(MIGRATIONS))]
