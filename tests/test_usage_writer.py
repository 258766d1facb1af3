"""The usage writer: batches, a full disk, and nothing lost at shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from coderouter.usage import COLUMNS, Record, UsageWriter
from tests.conftest import ALICE, Running


def record(n: int) -> Record:
    return Record(ts=1000.0 + n, request_id=f"r{n}", endpoint="/v1/chat/completions",
                  token="alice", model="smart", status=200, prompt_tokens=n)


def stored(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT request_id, prompt_tokens FROM usage ORDER BY id").fetchall()


async def test_schema_is_the_contracts_table(tmp_path: Path) -> None:
    """The usage table has exactly the contract's columns, in its order, then the ones added
    since (session, client, routing rule,
    cache writes)."""
    writer = UsageWriter(str(tmp_path / "u.sqlite"))
    await writer.open()
    await writer.close()
    with sqlite3.connect(tmp_path / "u.sqlite") as db:
        names = [r[1] for r in db.execute("PRAGMA table_info(usage)")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert sorted(names) == sorted(["id", *COLUMNS])
    assert names == ["id", "ts", "request_id", "token", "token_group", "endpoint", "model",
                     "channel", "upstream_model", "status", "stream", "prompt_tokens",
                     "completion_tokens", "total_tokens", "cached_tokens", "cost",
                     "usage_source", "latency_ms", "ttfb_ms", "attempts", "error",
                     "client_ip", "session", "client", "rule", "cache_write_5m_tokens",
                     "cache_write_1h_tokens", "background"]
    assert mode == "wal"


async def test_rows_are_written_in_batches_in_order(tmp_path: Path) -> None:
    """A full batch wakes the writer long before its interval; every row lands once, in order."""
    writer = UsageWriter(str(tmp_path / "u.sqlite"), batch=10, interval=60)
    await writer.open()
    for n in range(25):
        writer.add(record(n))
    for _ in range(100):
        if writer.written:
            break
        await asyncio.sleep(0.01)
    assert writer.written == 25 and writer.queued == 0
    await writer.close()
    assert stored(tmp_path / "u.sqlite") == [(f"r{n}", n) for n in range(25)]


async def test_full_disk_keeps_rows_until_space_returns(tmp_path: Path) -> None:
    """SQLITE_FULL: the rows stay queued, and land once the database can grow again."""
    path = tmp_path / "u.sqlite"
    writer = UsageWriter(str(path), interval=0.02)
    await writer.open()
    assert writer.db is not None
    pages = (await (await writer.db.execute("PRAGMA page_count")).fetchone())[0]
    await writer.db.execute(f"PRAGMA max_page_count = {pages}")
    for n in range(2000):
        writer.add(record(n))
    with pytest.raises(sqlite3.OperationalError, match="full"):
        await writer.flush()
    assert writer.queued == 2000
    for _ in range(100):
        if writer.failures >= 2:
            break
        await asyncio.sleep(0.02)
    assert writer.failures >= 2 and writer.queued == 2000
    await writer.db.execute("PRAGMA max_page_count = 1073741823")
    await writer.close()
    assert stored(path) == [(f"r{n}", n) for n in range(2000)]


async def test_requests_keep_flowing_while_the_disk_is_full(gateway: Running) -> None:
    """Callers are answered while rows cannot be written; the rows arrive once space returns."""
    writer = gateway.state.writer
    db = writer.db
    assert db is not None
    pages = (await (await db.execute("PRAGMA page_count")).fetchone())[0]
    await db.execute(f"PRAGMA max_page_count = {pages}")
    sent = 0
    full = False
    async with aiohttp.ClientSession() as http:
        while not full and sent < 400:  # a handful of pages: bounded, never endless
            for _ in range(20):
                async with http.post(gateway.url + "/v1/chat/completions",
                                     json={"model": "smart"},
                                     headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                    assert resp.status == 200
                sent += 1
            try:
                await writer.flush()
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)
                full = True
    assert full and writer.queued > 0
    await db.execute("PRAGMA max_page_count = 1073741823")
    rows = await gateway.rows()
    assert len(rows) == sent and {r["status"] for r in rows} == {200}


async def test_close_flushes_everything(tmp_path: Path) -> None:
    """Rows queued when the gateway stops are written before it exits."""
    writer = UsageWriter(str(tmp_path / "u.sqlite"), interval=60, batch=10_000)
    await writer.open()
    for n in range(500):
        writer.add(record(n))
    await writer.close()
    assert len(stored(tmp_path / "u.sqlite")) == 500


async def test_read_flushed_sees_exactly_the_rows_added_before_it(tmp_path: Path) -> None:
    """`read_flushed` writes the queue, then reads before any later row is written, even with
    a full batch waking the writer meanwhile; the later rows are written after it."""
    writer = UsageWriter(str(tmp_path / "u.sqlite"), batch=5, interval=0.01)
    await writer.open()
    for n in range(3):
        writer.add(record(n))

    async def read() -> int:
        for n in range(3, 13):  # two full batches while the read is under way
            writer.add(record(n))
        await asyncio.sleep(0.1)
        rows = await writer.fetch("SELECT count(*) FROM usage", ())
        return int(rows[0][0])
    assert await writer.read_flushed(read) == 3
    await writer.close()
    assert len(stored(tmp_path / "u.sqlite")) == 13
