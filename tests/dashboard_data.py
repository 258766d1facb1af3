"""Known usage rows for the dashboard tests, and the numbers they must add up to.

The reference numbers are computed here in plain Python from the rows as read back from the
table, independently of the gateway's SQL: buckets by arithmetic on ``ts``, percentiles by
sorting (nearest rank).
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from coderouter.usage import COLUMNS
from coderouter.usage.schema import MIGRATIONS, VERSIONS_TABLE

DAY = 86400
#: Preset range name -> (length, step), as the dashboard documents them.
RANGES = {"24h": (DAY, 3600), "7d": (7 * DAY, 6 * 3600), "30d": (30 * DAY, DAY)}

TOKENS = [("alice", "team"), ("bob", None), ("carol", "team")]
MODELS = [("smart", "up", "upstream-model"), ("smart", "backup", "upstream-model"),
          ("claude", "claude", "claude-upstream")]
STATUSES = [200] * 8 + [502, 429, 499]


def known_rows(now: float, count: int = 400, seed: int = 14) -> list[dict[str, Any]]:
    """*count* varied rows spread over the 35 days before *now* (some outside every range)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        token, group = rng.choice(TOKENS)
        model, channel, upstream_model = rng.choice(MODELS)
        status = rng.choice(STATUSES)
        refused = status == 429
        prompt = 0 if refused else rng.randint(10, 5000)
        completion = 0 if refused or status != 200 else rng.randint(1, 800)
        # the newest rows crowd the last day, so the 24 h buckets are not all empty
        age = rng.uniform(0, 35 * DAY) if i % 3 else rng.uniform(1, DAY)
        rows.append({
            "ts": round(now - age, 3), "request_id": f"req_known_{i}", "token": token,
            "token_group": group, "endpoint": "/v1/chat/completions", "model": model,
            "channel": None if refused else channel,
            "upstream_model": None if refused else upstream_model, "status": status,
            "stream": i % 2, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "cached_tokens": prompt // 4,
            "cache_write_5m_tokens": prompt // 10, "cache_write_1h_tokens": prompt // 20,
            "cost": round((prompt * 1.0 + completion * 2.0) / 1e6, 10),
            "usage_source": "none" if refused else "upstream",
            "latency_ms": round(rng.uniform(5, 9000), 3),
            "ttfb_ms": None if status != 200 else round(rng.uniform(1, 800), 3),
            "attempts": 0 if refused else 1,
            "error": None if status == 200 else f"known error {status}",
            "client_ip": "127.0.0.1", "session": f"s{i % 7}",
            "client": rng.choice(["claude-code", "codex", None]), "rule": None,
            "background": int(i % 5 == 0)})
    return rows


def write_rows(path: Path | str, rows: Iterable[dict[str, Any]]) -> None:
    """Create the usage table at *path* (as the gateway would) and insert *rows*."""
    with sqlite3.connect(path) as db:
        create_schema(db)
        db.executemany(f"INSERT INTO usage ({', '.join(COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(COLUMNS))})",
                       [tuple(row[c] for c in COLUMNS) for row in rows])


def create_schema(db: sqlite3.Connection) -> None:
    """The usage table at the newest schema version, as the gateway's migrations leave it."""
    db.execute(VERSIONS_TABLE)
    for version, migration in enumerate(MIGRATIONS, start=1):
        for statement in migration.statements("sqlite"):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, migration.name))


def table_rows(path: Path | str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]


def window(name: str, now: float) -> tuple[float, float, int]:
    length, step = RANGES[name]
    return math.floor((now - length) / step) * step, now, step


def exact_percentile(values: list[float], p: int) -> float | None:
    """Nearest rank: the value at rank ceil(p/100 * n) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[(p * len(ordered) + 99) // 100 - 1]


def percentile(values: list[float], p: int) -> float | None:
    """As the README documents it: the nearest rank's histogram bin, reported as the bin's
    middle (bins are 1% wide in ln(ms + 1)); checked here to be within half a bin of the exact."""
    exact = exact_percentile(values, p)
    if exact is None:
        return None
    bin_of = {v: math.floor(math.log(v + 1.0) * 100) for v in values}
    chosen = sorted(bin_of.values())[(p * len(values) + 99) // 100 - 1]
    middle = round(math.exp((chosen + 0.5) / 100) - 1, 3)
    assert abs(middle - exact) <= math.expm1(0.005) * (exact + 1) + 0.001, (middle, exact)
    return middle


def sums(rows: list[dict[str, Any]]) -> dict[str, Any]:
    requests = len(rows)
    refused = sum(1 for r in rows if r["status"] in (401, 403, 429) and r["channel"] is None)
    errors = sum(1 for r in rows if r["status"] >= 400) - refused
    out: dict[str, Any] = {"requests": requests, "errors": errors, "refused": refused}
    for column in ("prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens",
                   "cache_write_5m_tokens", "cache_write_1h_tokens"):
        out[column] = sum(r[column] for r in rows)
    out["cost"] = round(sum(r["cost"] for r in rows), 6)
    out["background_requests"] = sum(r["background"] for r in rows)
    out["background_cost"] = round(sum(r["cost"] for r in rows if r["background"]), 6)
    served = requests - refused
    out["error_rate"] = round(errors / served, 6) if served else 0.0
    for name, column in (("latency", "latency_ms"), ("ttfb", "ttfb_ms")):
        values = [r[column] for r in rows if r[column] is not None]
        for p in (50, 95):
            out[f"{name}_p{p}"] = percentile(values, p)
    return out


def select(rows: list[dict[str, Any]], since: float, until: float,
           keep: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[dict[str, Any]]:
    return [r for r in rows if since <= r["ts"] < until and keep(r)]


def overview(rows: list[dict[str, Any]], since: float, until: float, step: int,
             keep: Callable[[dict[str, Any]], bool] = lambda r: True) -> dict[str, Any]:
    """What ``/admin/overview`` must answer for these rows: totals and every bucket."""
    picked = select(rows, since, until, keep)
    buckets = max(1, math.ceil((until - since) / step))
    series = []
    for i in range(buckets):
        start = since + i * step
        series.append({"t": start, **sums([r for r in picked
                                           if since + i * step <= r["ts"] < start + step])})
    return {"since": since, "until": until, "step": step, "totals": sums(picked),
            "series": series}


def same(answer: Any, expected: Any) -> bool:
    """Equal, except costs, which may differ by float summation order (1e-6 USD)."""
    if isinstance(expected, dict):
        return (isinstance(answer, dict) and answer.keys() == expected.keys()
                and all(abs(answer[k] - v) <= 2e-6 if k.endswith("cost") else same(answer[k], v)
                        for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(answer, list) and len(answer) == len(expected)
                and all(same(a, e) for a, e in zip(answer, expected, strict=True)))
    return bool(answer == expected)
