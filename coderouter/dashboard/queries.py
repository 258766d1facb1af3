"""The dashboard's SQL over the usage table: time buckets, breakdowns, percentiles, recent rows.

Pure: builds SQL and shapes rows; `reader.Reader` runs it. The SQL is plain enough for both
SQLite (3.35+, whose ``floor`` the reader provides when the build lacks it) and PostgreSQL:
``?`` placeholders, ``CASE`` instead of boolean sums, window functions for percentiles.

A time bucket is ``floor((ts - since) / step)``, with *since* aligned to a multiple of *step*,
so buckets fall on UTC hour and day boundaries.

Percentiles come from a histogram counted in SQL in the same pass as the sums: a timing *v*
(ms) falls in bin ``floor(ln(v + 1) * BINS_PER_E)``; p50 is the nearest rank, ``ceil(0.5 n)``,
found by walking the bins, and reported as its bin's middle, ``exp((bin + 0.5) / BINS_PER_E)
- 1``: within 0.5% of the exact value. Sorting every row per bucket instead costs several
times more on large ranges (see bench/dashboard.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..usage import COLUMNS
from ..usage.report import REFUSED

#: Preset ranges: name -> (length, bucket step), seconds.
RANGES: dict[str, tuple[int, int]] = {
    "24h": (86400, 3600),
    "7d": (7 * 86400, 6 * 3600),
    "30d": (30 * 86400, 86400),
}
#: Bucket steps a custom range may get: the smallest giving at most `MAX_BUCKETS`.
STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60

#: Breakdown and filter names -> usage columns.
DIMENSIONS: dict[str, str] = {"model": "model", "channel": "channel", "token": "token",
                              "group": "token_group", "session": "session",
                              "client": "client"}

#: Histogram resolution: bins per factor e of (ms + 1); 100 gives bins 1% wide.
BINS_PER_E = 100

SUMS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens",
        "cost", "errors", "cache_write_5m_tokens", "cache_write_1h_tokens", "refused",
        "background_requests", "background_cost")
_COSTS = frozenset(("cost", "background_cost"))
_SUMS_SQL = ("count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(cached_tokens), 0), "
             "coalesce(sum(completion_tokens), 0), coalesce(sum(total_tokens), 0), "
             "coalesce(sum(cost), 0.0), "
             f"coalesce(sum(CASE WHEN status >= 400 AND NOT {REFUSED} THEN 1 ELSE 0 END), 0), "
             "coalesce(sum(cache_write_5m_tokens), 0), coalesce(sum(cache_write_1h_tokens), 0), "
             f"coalesce(sum(CASE WHEN {REFUSED} THEN 1 ELSE 0 END), 0), "
             "coalesce(sum(background), 0), "
             "coalesce(sum(CASE WHEN background = 1 THEN cost ELSE 0 END), 0.0)")
#: Percentile columns: the name in answers -> the usage column ranked.
TIMINGS = {"latency": "latency_ms", "ttfb": "ttfb_ms"}


@dataclass(frozen=True, slots=True)
class Window:
    """``since <= ts < until``, cut into buckets of *step* seconds from *since*."""

    since: float
    until: float
    step: int

    @property
    def buckets(self) -> int:
        return max(1, math.ceil((self.until - self.since) / self.step))

    def start(self, index: int) -> float:
        return self.since + index * self.step


def preset_window(name: str, now: float) -> Window:
    """The preset range *name* ending at *now*, its start aligned down to a whole bucket."""
    length, step = RANGES[name]
    return Window(math.floor((now - length) / step) * step, now, step)


def custom_window(since: float, until: float) -> Window:
    """A range from *since* to *until* with the smallest step giving few enough buckets."""
    span = until - since
    step = next((s for s in STEPS if span / s <= MAX_BUCKETS), None)
    if step is None:
        step = math.ceil(span / MAX_BUCKETS / 86400) * 86400
    return Window(math.floor(since / step) * step, until, step)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which rows: a time range plus equality on some dimensions (None: any)."""

    since: float
    until: float
    equal: Mapping[str, str] | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["ts >= ?", "ts < ?"]
        params: list[Any] = [self.since, self.until]
        for name, value in sorted((self.equal or {}).items()):
            clauses.append(f"{DIMENSIONS[name]} = ?")
            params.append(value)
        return " AND ".join(clauses), params


def bucket_expr(window: Window) -> tuple[str, list[Any]]:
    return "floor((ts - ?) / ?)", [window.since, window.step]


def bin_expr(column: str) -> str:
    """The histogram bin of *column* (NULL when the column is)."""
    return f"floor(ln({column} + 1.0) * {BINS_PER_E})"


def bin_value(index: float) -> float:
    """The middle of histogram bin *index*, in ms."""
    return round(math.exp((index + 0.5) / BINS_PER_E) - 1, 3)


#: The id of the newest failed row of a group, an extra aggregate for `sums_query`.
LAST_ERROR_ID = "max(CASE WHEN status >= 400 THEN id END)"


def sums_query(rows: Filter, keys: Sequence[str] = (), key_params: Sequence[Any] = (),
               timing: str | None = None,
               extra: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """`SUMS` per combination of the SQL expressions *keys*, each row cut further by the
    histogram bin of the *timing* column when one is given.

    Each answer row is the key values, the bin (when *timing*), the sums, then the *extra*
    aggregates.
    """
    where, params = rows.where()
    exprs = [*keys, *([bin_expr(timing)] if timing else [])]
    aggregates = ", ".join([_SUMS_SQL, *extra])
    if not exprs:
        return f"SELECT {aggregates} FROM usage WHERE {where}", params
    names = _key_names(exprs)
    selected = ", ".join(f"{expr} AS {name}" for expr, name in zip(exprs, names, strict=True))
    grouped = ", ".join(names)
    return (f"SELECT {selected}, {aggregates} FROM usage WHERE {where} GROUP BY {grouped}",
            [*key_params, *params])


def rows_by_id_query(ids: Sequence[int], columns: Sequence[str]) -> tuple[str, list[Any]]:
    return (f"SELECT id, {', '.join(columns)} FROM usage "
            f"WHERE id IN ({', '.join('?' * len(ids))})", list(ids))


def histogram_query(rows: Filter, column: str, keys: Sequence[str] = (),
                    key_params: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """Row counts per combination of *keys* and histogram bin of *column* (non-null only).

    Each answer row is the key values, the bin, then the count.
    """
    where, params = rows.where()
    exprs = [*keys, bin_expr(column)]
    names = _key_names(exprs)
    selected = ", ".join(f"{expr} AS {name}" for expr, name in zip(exprs, names, strict=True))
    grouped = ", ".join(names)
    return (f"SELECT {selected}, count(*) FROM usage WHERE {where} AND {column} IS NOT NULL "
            f"GROUP BY {grouped}", [*key_params, *params])


def _key_names(keys: Sequence[str]) -> list[str]:
    return [f"k{i}" for i in range(len(keys))]


class Histogram:
    """Counts per bin of one timing; answers nearest-rank percentiles."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, index: float, count: int) -> None:
        key = int(index)
        self.counts[key] = self.counts.get(key, 0) + int(count)

    def merge(self, other: Histogram) -> None:
        for index, count in other.counts.items():
            self.add(index, count)

    def percentile(self, p: int) -> float | None:
        """The middle of the bin holding rank ceil(p/100 * n), or None when empty."""
        total = sum(self.counts.values())
        if not total:
            return None
        rank = (p * total + 99) // 100
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return bin_value(index)
        raise AssertionError("unreachable: ranks end at the total")


def sums_row(values: Sequence[Any]) -> dict[str, Any]:
    """Shape one row of `SUMS` values, adding the error rate: errors over the requests the
    gateway did not refuse."""
    out = dict(zip(SUMS, values, strict=True))
    for name in SUMS:
        out[name] = round(float(out[name]), 6) if name in _COSTS else int(out[name])
    served = out["requests"] - out["refused"]
    out["error_rate"] = round(out["errors"] / served, 6) if served else 0.0
    return out


def empty_sums() -> dict[str, Any]:
    return sums_row([0] * len(SUMS))


def recent_query(equal: Mapping[str, str], *, errors: bool, status: int | None,
                 before: int | None, limit: int,
                 request_id: str | None = None) -> tuple[str, list[Any]]:
    """The newest rows (by ``ts``, then id) matching the filters; *before* (a row id) pages:
    only rows older than that row.

    Ordered by time, not id, so the (token, ts) and (ts) indexes serve it without a sort.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for name, value in sorted(equal.items()):
        clauses.append(f"{DIMENSIONS[name]} = ?")
        params.append(value)
    if errors:
        clauses.append("status >= 400")
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if before is not None:
        clauses.append("(ts < (SELECT ts FROM usage WHERE id = ?) OR "
                       "(ts = (SELECT ts FROM usage WHERE id = ?) AND id < ?))")
        params += [before, before, before]
    if request_id is not None:
        clauses.append("request_id = ?")
        params.append(request_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (f"SELECT id, {', '.join(COLUMNS)} FROM usage{where} "
           f"ORDER BY ts DESC, id DESC LIMIT ?")
    return sql, [*params, limit]


ROW_FIELDS = ("id", *COLUMNS)
