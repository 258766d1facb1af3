"""bench/dashboard.py on a small table: the fill has the rows asked, every endpoint answers."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench import dashboard


async def test_fill_and_measure_a_small_table(tmp_path: Path) -> None:
    """3,000 rows over 30 days; every timed endpoint answers 200 (asserted inside measure)."""
    db = tmp_path / "usage.sqlite"
    now = time.time()
    dashboard.fill(db, 3000, now)
    assert dashboard.count(db) == 3000
    with sqlite3.connect(db) as conn:
        first, last, tokens = conn.execute(
            "SELECT min(ts), max(ts), count(DISTINCT token) FROM usage").fetchone()
    assert now - 30 * 86400 <= first < last < now and tokens == len(dashboard.TOKENS)
    results = await dashboard.measure(db, repeat=1)
    assert [name for name, *_ in results] == [name for name, _, _ in dashboard.ENDPOINTS]
    assert all(cold >= 0 and median >= 0 for _, cold, median, _ in results)
