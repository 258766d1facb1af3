#!/usr/bin/env python3
"""Time the dashboard's JSON endpoints over a large usage table: `python bench/dashboard.py`.

Fills a SQLite usage table with ``--rows`` rows (default 1,000,000) spread evenly over the last
30 days (8 tokens in 3 groups, 6 models, 5 channels, 5% errors), starts the real gateway on
it (`create_app`, served on a loopback port), and times each endpoint the dashboard calls,
cold once then ``--repeat`` times, printing the median and the worst. ``--explain`` prints
SQLite's query plans. The database is kept in ``--db`` (reused when it already has the row
count asked), so the fill is paid once.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml
from aiohttp import web

from coderouter.app import create_app
from coderouter.config.reload import ConfigHolder
from coderouter.dashboard import queries as q
from coderouter.usage import COLUMNS
from coderouter.usage.schema import MIGRATIONS, VERSIONS_TABLE

ADMIN = "bench-admin-key-0123456789"
DAY = 86400
TOKENS = [(f"token-{i}", f"group-{i % 3}") for i in range(8)]
MODELS = [(f"model-{i}", f"channel-{i % 5}", f"upstream-{i}") for i in range(6)]
ENDPOINTS = [
    ("overview 30d", "/admin/overview", {"range": "30d"}),
    ("overview 7d", "/admin/overview", {"range": "7d"}),
    ("overview 24h", "/admin/overview", {"range": "24h"}),
    ("breakdown model 30d", "/admin/breakdown", {"range": "30d", "by": "model"}),
    ("breakdown token 30d", "/admin/breakdown", {"range": "30d", "by": "token"}),
    ("breakdown session 30d", "/admin/breakdown", {"range": "30d", "by": "session"}),
    ("channels 30d", "/admin/channels", {"range": "30d"}),
    ("channels 24h", "/admin/channels", {"range": "24h"}),
    ("quotas", "/admin/quotas", {}),
    ("requests (50)", "/admin/requests", {}),
    ("requests token filter", "/admin/requests", {"token": "token-3"}),
    ("overview 30d, one token", "/admin/overview", {"range": "30d", "token": "token-3"}),
]


def fill(path: Path, rows: int, now: float, seed: int = 1) -> None:
    """Create the usage table at *path* holding *rows* rows over the 30 days before *now*."""
    rng = random.Random(seed)
    with sqlite3.connect(path) as db:
        db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")
        db.execute(VERSIONS_TABLE)
        for version, migration in enumerate(MIGRATIONS, start=1):
            for statement in migration.statements("sqlite"):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)",
                       (version, migration.name))
        insert = (f"INSERT INTO usage ({', '.join(COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(COLUMNS))})")
        step = 30 * DAY / rows
        batch: list[tuple[Any, ...]] = []
        for i in range(rows):
            token, group = TOKENS[i % len(TOKENS)]
            model, channel, upstream = MODELS[(i * 7) % len(MODELS)]
            failed = rng.random() < 0.05
            prompt, completion = rng.randint(50, 20000), 0 if failed else rng.randint(1, 2000)
            row = {"ts": now - 30 * DAY + i * step, "request_id": f"req_{i}", "token": token,
                   "token_group": group, "endpoint": "/v1/chat/completions", "model": model,
                   "channel": channel, "upstream_model": upstream,
                   "status": 502 if failed else 200, "stream": i % 2,
                   "prompt_tokens": prompt, "completion_tokens": completion,
                   "total_tokens": prompt + completion, "cached_tokens": prompt // 3,
                   "cost": (prompt + 4 * completion) / 1e6, "usage_source": "upstream",
                   "latency_ms": rng.uniform(100, 30000),
                   "ttfb_ms": None if failed else rng.uniform(50, 2000), "attempts": 1,
                   "error": "upstream answered 502" if failed else None,
                   "client_ip": "127.0.0.1", "session": f"session-{i % 5000}",
                   "client": ("claude-code", "codex", "sdk")[i % 3], "rule": None,
                   "cache_write_5m_tokens": 0, "cache_write_1h_tokens": prompt // 5,
                   "background": int(i % 10 == 0)}
            batch.append(tuple(row[c] for c in COLUMNS))
            if len(batch) == 50_000:
                db.executemany(insert, batch)
                batch.clear()
        db.executemany(insert, batch)


def count(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return int(db.execute("SELECT count(*) FROM usage").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def explain(path: Path, now: float) -> None:
    """Print SQLite's plan for the overview's queries over 30 days."""
    window = q.preset_window("30d", now)
    rows = q.Filter(window.since, window.until)
    bucket, params = q.bucket_expr(window)
    with sqlite3.connect(path) as db:
        for name, (sql, args) in {
                "sums and latency histogram per bucket": q.sums_query(
                    rows, [bucket], params, timing="latency_ms"),
                "ttfb histogram per bucket": q.histogram_query(
                    rows, "ttfb_ms", [bucket], params),
                "recent rows of a token": q.recent_query(
                    {"token": "token-3"}, errors=False, status=None, before=None, limit=50),
        }.items():
            print(f"-- {name}")
            for row in db.execute("EXPLAIN QUERY PLAN " + sql, args):
                print("  ", row[-1])


async def measure(path: Path, repeat: int) -> list[tuple[str, float, float, float]]:
    """(name, cold ms, median ms, worst ms) per endpoint, through the real gateway."""
    folder = Path(tempfile.mkdtemp(prefix="cr-dash-bench-"))
    config = {"database": {"path": str(path)}, "admin": {"key": ADMIN},
              "log": {"access": False}, "channels": [{"name": "mock", "type": "mock"}],
              "model_groups": [{"name": "m", "targets": [{"channel": "mock", "model": "x"}]}],
              "token_groups": [{"name": g, "quota": {"tokens": 10**10, "period": "month"}}
                               for g in ("group-0", "group-1", "group-2")],
              "tokens": [{"name": t, "key_sha256": f"{i:064x}", "group": g}
                         for i, (t, g) in enumerate(TOKENS)]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    app = create_app(ConfigHolder.from_file(str(folder / "config.yaml")))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    results = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN}"}) as http:
            for name, route, params in ENDPOINTS:
                times = []
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    async with http.get(f"http://127.0.0.1:{port}{route}",
                                        params=params) as resp:
                        await resp.read()
                        assert resp.status == 200, (route, resp.status)
                    times.append((time.perf_counter() - started) * 1000)
                results.append((name, times[0], statistics.median(times[1:]), max(times[1:])))
    finally:
        await runner.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path,
                        default=Path(tempfile.gettempdir()) / "coderouter-dashboard-bench.sqlite")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    now = time.time()
    if count(args.db) != args.rows:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        started = time.perf_counter()
        fill(args.db, args.rows, now)
        print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.1f}s: {args.db}")
    else:
        with sqlite3.connect(args.db) as db:
            newest = db.execute("SELECT max(ts) FROM usage").fetchone()[0]
        print(f"reusing {args.rows:,} rows in {args.db} "
              f"(newest {(now - newest) / 3600:.1f} h old)")
    if args.explain:
        explain(args.db, now)
    print(f"{'endpoint':<26} {'cold ms':>9} {'median ms':>10} {'worst ms':>9}")
    for name, cold, median, worst in asyncio.run(measure(args.db, args.repeat)):
        print(f"{name:<26} {cold:>9.0f} {median:>10.0f} {worst:>9.0f}")


if __name__ == "__main__":
    main()
