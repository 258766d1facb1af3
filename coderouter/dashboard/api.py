"""The dashboard's JSON endpoints: ``/admin/…`` for the operator, ``/me/…`` for a token.

Every admin endpoint is guarded like ``/admin/usage`` (`auth.require_admin`: 404 without an
``admin.key``, 401 without the key); every ``/me`` endpoint needs a caller key, and answers
only about that key's token.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from ..auth import authenticate, require_admin
from ..errors import InvalidRequest, NotFound
from ..relay.exchange import Exchange
from ..state import GATEWAY, Gateway
from ..usage import parse_moment
from . import queries as q
from . import stats
from .alerts import alerts
from .health import InFlight, Numbers, channel_health
from .memo import Memo, ttl_for
from .reader import Reader, reader_for
from .views import config_summary, quotas

log = logging.getLogger("coderouter.dashboard")
READER = web.AppKey("dashboard_reader", Reader)
MEMO = web.AppKey("dashboard_memo", Memo)
#: Most rows (``requests``) or items (``breakdown``) one call answers.
MAX_ROWS = 500
_INT64 = 2**63  #: SQLite integers are signed 64-bit


async def reader_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the dashboard's read-only connection (after the writer created the table)."""
    gateway = app[GATEWAY]
    reader = app[READER] = reader_for(gateway.holder.current.database, gateway.writer)
    app[MEMO] = Memo()
    await reader.open()
    yield
    await reader.close()


# -- admin --------------------------------------------------------------------------------------


async def admin_overview(request: web.Request) -> web.Response:
    """GET /admin/overview: totals and time series over a range, optionally filtered."""
    gw, reader = await _admin(request, "/admin/overview")
    window = _window(request.query, gw.clock())
    return _json(await _kept(request, window, lambda: stats.overview(
        reader, window, _equal(request.query))))


async def admin_breakdown(request: web.Request) -> web.Response:
    """GET /admin/breakdown?by=model|channel|token|group: totals per value over a range."""
    gw, reader = await _admin(request, "/admin/breakdown")
    by = request.query.get("by", "model")
    if by not in q.DIMENSIONS:
        raise InvalidRequest(f"'by' must be one of {', '.join(q.DIMENSIONS)}, got {by!r}")
    window = _window(request.query, gw.clock())
    rows = q.Filter(window.since, window.until, _equal(request.query))

    limit = _limit(request.query)

    async def compute() -> dict[str, Any]:
        data, others = await stats.breakdown(reader, rows, by, limit)
        return {"by": by, "since": window.since, "until": window.until, "data": data,
                "others": others}

    return _json(await _kept(request, window, compute))


async def admin_channels(request: web.Request) -> web.Response:
    """GET /admin/channels: every target's state now, and its numbers over a range."""
    gw, reader = await _admin(request, "/admin/channels")
    window = _window(request.query, gw.clock())
    numbers = await _kept(request, window, lambda: stats.target_stats(
        reader, q.Filter(window.since, window.until)))
    in_flight: list[InFlight] = [ex for ex in gw.drain.active if isinstance(ex, Exchange)]
    body = channel_health(gw.holder.current, gw.health, time.time(), in_flight, Numbers(
        numbers, gw.health.failures, window.since, window.until))
    return _json({**body, "since": window.since, "until": window.until})


async def admin_quotas(request: web.Request) -> web.Response:
    """GET /admin/quotas: every quota of every token and group, closest to its limit first."""
    gw, _ = await _admin(request, "/admin/quotas")
    config = gw.holder.current
    reports = [await gw.quotas.report(token) for token in config.tokens]
    return _json(quotas(config, reports))


async def admin_alerts(request: web.Request) -> web.Response:
    """GET /admin/alerts: a failed last reload, targets cooling down, quotas nearly spent."""
    gw, _ = await _admin(request, "/admin/alerts")
    config = gw.holder.current
    reports = [await gw.quotas.report(token) for token in config.tokens]
    now = time.time()
    return _json({"now": now, "alerts": alerts(gw.holder, gw.health, now,
                                                quotas(config, reports)["quotas"])})


async def admin_capture(request: web.Request) -> web.Response:
    """GET /admin/captures/{request_id}: the request's captured bodies (``capture:``)."""
    gw, _ = await _admin(request, "/admin/captures")
    found = await gw.captures.get(request.match_info["request_id"], gw.holder.current)
    if found is None:
        raise NotFound("no bodies were captured for this request (capture is off, it was not "
                       "sampled, or it is older than capture.keep)")
    return _json(found)


async def admin_requests(request: web.Request) -> web.Response:
    """GET /admin/requests: the newest usage rows, filtered, every column."""
    _, reader = await _admin(request, "/admin/requests")
    return _json({"data": await _recent(reader, request.query, _equal(request.query))})


async def admin_config(request: web.Request) -> web.Response:
    """GET /admin/config: the live config's summary and the last reload's outcome."""
    gw, _ = await _admin(request, "/admin/config")
    return _json(config_summary(gw.holder))


# -- a token's own ------------------------------------------------------------------------------


async def own_overview(request: web.Request) -> web.Response:
    """GET /me/overview: the calling token's totals and time series over a range."""
    gw, reader, token = await _caller(request)
    window = _window(request.query, gw.clock())
    body = await _kept(request, window, lambda: stats.overview(
        reader, window, {"token": token}), token)
    return _json({"token": token, **body})


async def own_requests(request: web.Request) -> web.Response:
    """GET /me/requests: the calling token's newest usage rows, without what describes the
    operator's set-up (`for_caller`)."""
    gw, reader, token = await _caller(request)
    equal = {**_equal(request.query), "token": token}
    rows = await _recent(reader, request.query, equal)
    names = [c.name for c in gw.holder.current.channels]
    return _json({"token": token, "data": [for_caller(row, names) for row in rows]})


#: Row columns that describe the operator's set-up (which upstream, which model there, which
#: routing rule), not the caller's request.
OPERATOR_ONLY = ("channel", "upstream_model", "rule")


def for_caller(row: Mapping[str, Any], channels: Sequence[str]) -> dict[str, Any]:
    """*row* as its caller may see it: no `OPERATOR_ONLY` column, and its error without the
    ``channel:`` prefixes the gateway writes for the operator."""
    out = {k: v for k, v in row.items() if k not in OPERATOR_ONLY}
    error = out.get("error")
    if error and channels:
        names = "|".join(re.escape(name) for name in sorted(channels, key=len, reverse=True))
        out["error"] = re.sub(rf"(?<![\w.-])(?:{names}): ", "", error)
    return out


# -- helpers ------------------------------------------------------------------------------------


async def _admin(request: web.Request, route: str) -> tuple[Gateway, Reader]:
    gw = request.app[GATEWAY]
    require_admin(gw.holder.current, request.headers, route)
    await _flush(gw)
    return gw, request.app[READER]


async def _caller(request: web.Request) -> tuple[Gateway, Reader, str]:
    gw = request.app[GATEWAY]
    token = authenticate(gw.holder.current, request.headers)
    await _flush(gw)
    return gw, request.app[READER], token.name


async def _flush(gw: Gateway) -> None:
    """Write the queued rows first, so the answer includes every finished request.

    A failing write is the writer's to report and retry (log, metrics, /admin/usage); the
    pages then show what is written.
    """
    try:
        await gw.writer.flush()
    except Exception as exc:
        log.debug("usage flush before a dashboard query failed: %s", exc)


async def _kept(request: web.Request, window: q.Window,
                compute: Callable[[], Awaitable[Any]], caller: str = "") -> Any:
    """*compute*'s answer, or the same question's answered moments ago for a long range."""
    key = (request.path, caller, tuple(sorted(request.query.items())))
    return await request.app[MEMO].get(key, ttl_for(window.until - window.since), compute)


def _window(query: Mapping[str, str], now: float) -> q.Window:
    """``range=24h|7d|30d`` (default 24h), or ``since`` (and ``until``) for a custom range."""
    since, until = query.get("since"), query.get("until")
    if since:
        start = _moment("since", since, now)
        end = _moment("until", until, now) if until else now
        if end <= start:
            raise InvalidRequest("'until' must be after 'since'")
        return q.custom_window(start, end)
    name = query.get("range", "24h")
    if name not in q.RANGES:
        raise InvalidRequest(f"'range' must be one of {', '.join(q.RANGES)}, got {name!r}; "
                             "or give 'since' (and 'until') for a custom range")
    return q.preset_window(name, now)


def _moment(name: str, text: str, now: float) -> float:
    try:
        return parse_moment(text, now)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}") from None


def _equal(query: Mapping[str, str]) -> dict[str, str]:
    return {name: query[name] for name in q.DIMENSIONS if query.get(name)}


async def _recent(reader: Reader, query: Mapping[str, str],
                  equal: Mapping[str, str]) -> list[dict[str, Any]]:
    return await stats.recent(reader, equal, errors=query.get("errors") in ("1", "true"),
                              status=_integer(query, "status"),
                              before=_integer(query, "before"), limit=_limit(query),
                              request_id=query.get("request_id") or None)


def _limit(query: Mapping[str, str]) -> int:
    """``limit``: how many rows or items, 1 to `MAX_ROWS` (default 50)."""
    limit = _integer(query, "limit")
    limit = 50 if limit is None else limit
    if not 1 <= limit <= MAX_ROWS:
        raise InvalidRequest(f"'limit' must be between 1 and {MAX_ROWS}, got {limit}")
    return limit


def _integer(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer, got {text!r}") from None
    if not -_INT64 <= value < _INT64:
        raise InvalidRequest(f"'{name}' must be a 64-bit integer, got {text!r}")
    return value


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-store"})
