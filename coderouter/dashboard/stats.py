"""The dashboard's numbers from the usage table: series, totals, breakdowns, recent rows.

Every aggregate is two passes over the range (see `queries`): sums with the latency
histogram, then the time-to-first-byte histogram, grouped by whatever is asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import queries as q
from .reader import Reader


@dataclass(slots=True)
class Group:
    """What the usage table holds for one group of rows: sums and timing histograms."""

    sums: list[Any] = field(default_factory=lambda: [0] * len(q.SUMS))
    timings: dict[str, q.Histogram] = field(
        default_factory=lambda: {name: q.Histogram() for name in q.TIMINGS})
    last_error_id: int | None = None

    def add(self, sums: Sequence[Any]) -> None:
        self.sums = [a + b for a, b in zip(self.sums, sums, strict=True)]

    def merge(self, other: Group) -> None:
        self.add(other.sums)
        for name, histogram in self.timings.items():
            histogram.merge(other.timings[name])

    def shaped(self) -> dict[str, Any]:
        out = q.sums_row(self.sums)
        for name, histogram in self.timings.items():
            out[f"{name}_p50"] = histogram.percentile(50)
            out[f"{name}_p95"] = histogram.percentile(95)
        return out


async def grouped(reader: Reader, rows: q.Filter, keys: Sequence[str],
                  key_params: Sequence[Any] = (), *, ttfb: bool = True,
                  last_error: bool = False) -> dict[tuple[Any, ...], Group]:
    """A `Group` per combination of the SQL expressions *keys* over *rows*.

    One pass for the sums and latency, one more for time to first byte when *ttfb*; with
    *last_error*, each group's ``last_error_id`` is its newest failed row's id.
    """
    out: dict[tuple[Any, ...], Group] = {}
    width = len(keys)
    extra = [q.LAST_ERROR_ID] if last_error else []
    latency_sql = q.sums_query(rows, keys, key_params, timing=q.TIMINGS["latency"],
                               extra=extra)
    for row in await reader.fetch(*latency_sql):
        key, index = tuple(row[:width]), row[width]
        sums = row[width + 1:width + 1 + len(q.SUMS)]
        group = out.get(key)
        if group is None:
            group = out[key] = Group()
        group.add(sums)
        if index is not None:
            group.timings["latency"].add(index, sums[0])
        if last_error and row[-1] is not None:
            group.last_error_id = max(group.last_error_id or 0, row[-1])
    if ttfb:
        for row in await reader.fetch(*q.histogram_query(rows, q.TIMINGS["ttfb"], keys,
                                                         key_params)):
            key, index, count = tuple(row[:width]), row[width], row[width + 1]
            out.setdefault(key, Group()).timings["ttfb"].add(index, count)
    return out


async def overview(reader: Reader, window: q.Window,
                   equal: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Totals and one point per bucket of *window* (empty buckets included, as zeros)."""
    rows = q.Filter(window.since, window.until, equal)
    bucket, bucket_params = q.bucket_expr(window)
    by_bucket = await grouped(reader, rows, [bucket], bucket_params)
    whole = Group()
    series = []
    for index in range(window.buckets):
        group = by_bucket.get((index,)) or Group()  # SQL's 2.0 and 2 are the same key
        whole.merge(group)
        series.append({"t": window.start(index), **group.shaped()})
    return {"since": window.since, "until": window.until, "step": window.step,
            "totals": whole.shaped(), "series": series}


async def breakdown(reader: Reader, rows: q.Filter, by: str,
                    limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Totals and timings per value of dimension *by*, most requests first: the first
    *limit* values, and the rest merged into one ``others`` item (None when none are left)."""
    groups = sorted((await grouped(reader, rows, [q.DIMENSIONS[by]])).items(),
                    key=lambda item: (-item[1].sums[0], str(item[0][0])))
    top = [{"key": key, **group.shaped()} for (key,), group in groups[:limit]]
    if len(groups) <= limit:
        return top, None
    rest = Group()
    for _, group in groups[limit:]:
        rest.merge(group)
    return top, {"keys": len(groups) - limit, **rest.shaped()}


async def target_stats(reader: Reader, rows: q.Filter) -> dict[tuple[str, str], dict[str, Any]]:
    """Requests, errors, latency and the last error per (channel, upstream model): one pass."""
    groups = await grouped(reader, rows, ["channel", "upstream_model"], ttfb=False,
                           last_error=True)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for (channel, model), group in groups.items():
        shaped = group.shaped()
        out[(channel, model)] = {name: shaped[name] for name in (
            "requests", "errors", "error_rate", "latency_p50", "latency_p95")}
        out[(channel, model)]["last_error"] = None
    errors = {g.last_error_id: key for key, g in groups.items() if g.last_error_id}
    if errors:
        for row_id, ts, status, error in await reader.fetch(
                *q.rows_by_id_query(list(errors), ["ts", "status", "error"]), quick=True):
            out[errors[row_id]]["last_error"] = {"ts": ts, "status": status, "error": error}
    return out


async def recent(reader: Reader, equal: Mapping[str, str], *, errors: bool = False,
                 status: int | None = None, before: int | None = None, limit: int = 50,
                 request_id: str | None = None) -> list[dict[str, Any]]:
    """The newest usage rows matching the filters, newest first, every column."""
    sql, params = q.recent_query(equal, errors=errors, status=status, before=before,
                                 limit=limit, request_id=request_id)
    return [dict(zip(q.ROW_FIELDS, row, strict=True))
            for row in await reader.fetch(sql, params, quick=True)]
