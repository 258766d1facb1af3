"""Reading the usage table: totals per token, group, model, channel or day, the moments a
report spans, and the per-name totals that rebuild the quota counters. Pure SQL text and
shaping; the stores run it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import REFUSAL_STATUSES
from .schema import Engine

GROUPINGS = {
    "token": "token",
    "group": "token_group",
    "model": "model",
    "channel": "channel",
    "session": "session",
    "client": "client",
    "day": "",  # per engine, see _DAY
}
_DAY: dict[Engine, str] = {
    "sqlite": "strftime('%Y-%m-%d', ts, 'unixepoch')",
    "postgres": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

#: A row the gateway refused itself (key, model, quota or rate limit): it never reached a
#: channel. Reports count these as ``refused``, apart from ``errors`` (every other failure).
REFUSED = f"(status IN ({', '.join(map(str, REFUSAL_STATUSES))}) AND channel IS NULL)"
_AGGREGATES = ("count(*) AS requests, coalesce(sum(prompt_tokens), 0), "
               "coalesce(sum(completion_tokens), 0), coalesce(sum(total_tokens), 0), "
               "coalesce(sum(cost), 0.0), "
               f"coalesce(sum(CASE WHEN status >= 400 AND NOT {REFUSED} THEN 1 ELSE 0 END), 0), "
               "coalesce(sum(cached_tokens), 0), coalesce(sum(cache_write_5m_tokens), 0), "
               "coalesce(sum(cache_write_1h_tokens), 0), coalesce(sum(background), 0), "
               "coalesce(sum(CASE WHEN background = 1 THEN cost ELSE 0 END), 0.0), "
               f"coalesce(sum(CASE WHEN {REFUSED} THEN 1 ELSE 0 END), 0)")
REPORT_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
                 "errors", "cached_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                 "background_requests", "background_cost", "refused")
_COSTS = frozenset(("cost", "background_cost"))


def placeholders(sql: str, engine: Engine) -> str:
    """*sql* written with ``?`` parameters, in *engine*'s style (``$1, $2`` for PostgreSQL)."""
    if engine == "sqlite":
        return sql
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "")
                   for i, part in enumerate(parts, start=1))


def aggregate_query(by: str, since: float | None, until: float | None,
                    engine: Engine = "sqlite") -> tuple[str, list[float]]:
    """SQL and parameters totalling usage per value of *by* (one of GROUPINGS)."""
    expr = GROUPINGS[by] or _DAY[engine]
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (f"SELECT {expr} AS key, {_AGGREGATES} FROM usage{clause} "
           f"GROUP BY key ORDER BY key NULLS FIRST")
    return placeholders(sql, engine), params


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
#: 9999-12-31T23:59:59Z: later moments (a zone past the last day) cannot be printed back.
_LAST_MOMENT = 253402300799.0
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_moment(text: str, now: float) -> float:
    """``7d``/``12h`` before *now*, or an ISO date or datetime (UTC when no zone).

    Raise `ValueError` with a message quoting *text* for anything else.
    """
    match = _SPAN.match(text.strip())
    if match:  # a span reaching before 1970 means since the start
        return max(0.0, now - float(match.group(1)) * _SPAN_SECONDS[match.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a span such as 7d or 12h, or a date such as 2026-11-01, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return min(max(moment.timestamp(), 0.0), _LAST_MOMENT)


def report_rows(by: str, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Shape aggregate rows as ``[{by: value, requests, prompt_tokens, …}]``."""
    out = []
    for key, *values in rows:
        item: dict[str, Any] = {by: key}
        for name, value in zip(REPORT_FIELDS, values, strict=True):
            item[name] = round(float(value), 6) if name in _COSTS else int(value)
        prompt, cached = item["prompt_tokens"], item["cached_tokens"]
        item["cache_hit_ratio"] = round(cached / prompt, 4) if prompt else 0.0
        out.append(item)
    return out


def period_totals_query(column: Literal["token", "token_group"],
                        engine: Engine = "sqlite") -> str:
    """Tokens, forwarded requests and cost per name since a time: seeds the quota counters.

    count_tokens and Gemini countTokens requests are not counted: they bypass quotas and
    rate limits.
    """
    return placeholders(
        f"SELECT {column}, coalesce(sum(total_tokens), 0), count(*), "
        f"coalesce(sum(cost), 0.0) FROM usage "
        f"WHERE ts >= ? AND attempts > 0 AND {column} IS NOT NULL "
        f"AND endpoint != '/v1/messages/count_tokens' "
        f"AND endpoint NOT LIKE '%:countTokens' GROUP BY {column}", engine)


#: Runs one query with its parameters and returns every row.
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]


@dataclass(frozen=True, slots=True)
class Totals:
    """Usage of one name since a time: total tokens, request rows and cost."""

    tokens: int = 0
    requests: int = 0
    cost: float = 0.0


async def totals_since(fetch: Fetch, column: Literal["token", "token_group"], since: float,
                       engine: Engine = "sqlite") -> dict[str, Totals]:
    """The `Totals` of each name in *column* since *since* (see `period_totals_query`)."""
    rows = await fetch(period_totals_query(column, engine), (since,))
    return {name: Totals(int(tokens), int(requests), float(cost))
            for name, tokens, requests, cost in rows}
