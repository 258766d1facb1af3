"""What every quota backend agrees on: scopes, periods and their UTC calendar, the wording of
refusals, the ``x-ratelimit-*`` headers and the shape of a usage report.

A quota counts per token and per token group (its *scope*) over a UTC day, week (from
Monday), month or all time; a rate limit over a sliding 60 s window.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..config import PERIODS, Period, Quota, RateLimit, Token
from ..errors import QuotaExceeded, RateLimited
from ..usage import Totals, UsageStore, totals_since

Scope = Literal["token", "group"]
SCOPES: tuple[Scope, ...] = ("token", "group")
#: Length of the rpm/tpm sliding window, in seconds.
WINDOW = 60.0
#: Position of each period in `PERIODS` (and in every per-period tuple).
INDEX = {period: i for i, period in enumerate(PERIODS)}
#: A token's or group's limits: its quotas and its rate limit.
Limits = tuple[tuple[Quota, ...], RateLimit | None]

_DAY = 86400.0
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}
_LABEL = {"token": "token", "group": "token group"}


# -- time -------------------------------------------------------------------------------------


class Calendar:
    """Start and end of the current UTC day, week (from Monday) and month, plus ``total``.

    Recomputed only when *now* leaves the cached day: week and month boundaries are day
    boundaries, so within one day every start is unchanged.
    """

    __slots__ = ("_hi", "_lo", "ends", "starts")

    def __init__(self) -> None:
        self._lo = math.inf
        self._hi = -math.inf
        self.starts: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.ends: tuple[float | None, ...] = (None, None, None, None)

    def at(self, now: float) -> tuple[float, float, float, float]:
        """Return the period starts, in `PERIODS` order, of the periods containing *now*."""
        if not self._lo <= now < self._hi:
            self._compute(now)
        return self.starts

    def _compute(self, now: float) -> None:
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        day = dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.UTC)
        week = day - dt.timedelta(days=day.weekday())
        month = day.replace(day=1)
        next_month = (month + dt.timedelta(days=32)).replace(day=1)
        self.starts = (day.timestamp(), week.timestamp(), month.timestamp(), 0.0)
        self.ends = (self.starts[0] + _DAY, self.starts[1] + 7 * _DAY,
                     next_month.timestamp(), None)
        self._lo, self._hi = self.starts[0], self.starts[0] + _DAY


def period_start(period: Period, now: float) -> float:
    """Return the unix time at which the UTC *period* containing *now* started (0 for total)."""
    return Calendar().at(now)[INDEX[period]]


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(seconds: float) -> int:
    """Round a wait up to whole seconds, at least 1 (float noise does not add a second)."""
    return max(1, math.ceil(seconds - 1e-9))


def format_reset(seconds: float) -> str:
    """Format a duration the way OpenAI's ``x-ratelimit-reset-*`` headers do: 1s, 6m0s, 20ms."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# -- scopes -----------------------------------------------------------------------------------


def limits_of(token: Token) -> list[Limits]:
    """The limits of *token*, then its group's (when it has one)."""
    limits: list[Limits] = [(token.quotas, token.rate_limit)]
    if token.group is not None:
        limits.append((token.group.quotas, token.group.rate_limit))
    return limits


def scope_label(scope: Scope, token: Token) -> str:
    """How a refusal names the token or its group: ``token 'alice'``."""
    name = token.name if scope == "token" or token.group is None else token.group.name
    return f"{_LABEL[scope]} '{name}'"


# -- headers ----------------------------------------------------------------------------------


#: The tightest rate limit of one kind: (remaining, limit, seconds until it resets).
Tightest = tuple[int, int, float]


def tighter(best: Tightest | None, candidate: Tightest) -> Tightest:
    """The tighter of two rate limits of one kind (fewer remaining, then the lower limit)."""
    return candidate if best is None or candidate[:2] < best[:2] else best


def ratelimit_headers(requests: Tightest | None, tokens: Tightest | None) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest requests and tokens limits."""
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests[1])
        headers["x-ratelimit-remaining-requests"] = str(requests[0])
        headers["x-ratelimit-reset-requests"] = format_reset(requests[2])
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens[1])
        headers["x-ratelimit-remaining-tokens"] = str(tokens[0])
        headers["x-ratelimit-reset-tokens"] = format_reset(tokens[2])
    return headers


# -- wording ----------------------------------------------------------------------------------


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def quota_message(label: str, quota: Quota, what: str, limit: float, end: float | None,
                  held: bool) -> str:
    """Why a quota refused a request: used up, or *held* by the reservations of requests in
    flight (which may give part of it back when they settle)."""
    adjective = _ADJECTIVE[quota.period]
    if held:
        return (f"{label} has the rest of its {adjective} {what} quota ({_number(limit)}) "
                f"reserved by requests in flight; retry when one finishes")
    when = f"it resets at {iso(end)}" if end is not None else "it does not reset"
    return f"{label} has used its {adjective} {what} quota ({_number(limit)}); {when}"


def refuse_quota(label: str, quota: Quota, what: str, limit: float, end: float | None,
                 held: bool, headers: dict[str, str]) -> QuotaExceeded:
    """The refusal of a quota (see `quota_message`)."""
    return QuotaExceeded(quota_message(label, quota, what, limit, end, held), headers=headers)


def refuse_concurrent(label: str, in_flight: int, headers: dict[str, str]) -> RateLimited:
    """A concurrency slot frees when a request settles, at no known time: Retry-After is 1."""
    return _rate(f"{label} has {in_flight} requests in flight, its concurrency limit; retry "
                 f"when one finishes", 1, headers)


def refuse_rate(label: str, what: str, limit: int, wait: float,
                headers: dict[str, str]) -> RateLimited:
    """A full rpm (*what* ``requests``) or tpm (``tokens``) window, free in *wait* seconds."""
    seconds = whole_seconds(wait)
    return _rate(f"{label} reached its rate limit of {limit} {what} per minute; retry in "
                 f"{seconds}s", seconds, headers)


def _rate(message: str, wait: int, headers: dict[str, str]) -> RateLimited:
    return RateLimited(message, headers={"Retry-After": str(wait), **headers})


def refuse_oversized(token: Token, *, tokens: int, cost: float) -> None:
    """Raise `QuotaExceeded` when a request alone asks for more than a quota of *token* or
    its group allows at all: *tokens* and *cost* are its prompt estimate plus the output it
    asked for (``max_tokens``), priced. Such a request could never be admitted."""
    for scope, (quotas, _) in zip(SCOPES, limits_of(token), strict=False):
        for quota in quotas:
            for what, limit, asked in (("token", quota.tokens, tokens),
                                       ("cost", quota.cost, cost)):
                if limit is not None and asked > limit:
                    amount = f"{asked} tokens" if what == "token" else f"a cost of {asked:g}"
                    raise QuotaExceeded(
                        f"this request alone asks for {amount} (its prompt and max_tokens), "
                        f"more than {scope_label(scope, token)} has in its "
                        f"{_ADJECTIVE[quota.period]} {what} quota ({_number(limit)}); "
                        f"ask for fewer output tokens")


# -- GET /v1/usage ----------------------------------------------------------------------------


def dimension(limit: float | None, used: float, reserved: float) -> dict[str, Any] | None:
    """One quota dimension of a report: ``{limit, used, reserved, remaining}``."""
    if limit is None:
        return None
    remaining = max(0, limit - used - reserved)
    if isinstance(remaining, float):
        remaining = round(remaining, 6)
    return {"limit": limit, "used": used, "reserved": reserved, "remaining": remaining}


def quota_report(scope: Scope, quota: Quota, end: float | None, used: tuple[int, int, float],
                 held: tuple[int, int, float]) -> dict[str, Any]:
    """A quota's entry in a report: *used* and *held* are (tokens, requests, cost)."""
    return {
        "scope": scope, "period": quota.period,
        "resets_at": iso(end) if end is not None else None,
        "tokens": dimension(quota.tokens, used[0], held[0]),
        "requests": dimension(quota.requests, used[1], held[1]),
        "cost": dimension(quota.cost, round(used[2], 6), round(held[2], 6)),
    }


def window_report(limit: int | None, used: int, resets_in: float) -> dict[str, Any] | None:
    """An rpm or tpm entry of a report; *resets_in* is when the window is empty."""
    if limit is None:
        return None
    return {"limit": limit, "remaining": max(0, limit - used),
            "resets_in": math.ceil(resets_in - 1e-9)}


def concurrent_report(limit: int | None, in_flight: int) -> dict[str, Any] | None:
    if limit is None:
        return None
    return {"limit": limit, "remaining": max(0, limit - in_flight), "resets_in": None}


def has_rate(rate: RateLimit | None) -> bool:
    """Whether *rate* limits anything (a report lists only those)."""
    return rate is not None and (rate.rpm, rate.tpm, rate.concurrent) != (None,) * 3


def report(token: Token, quotas: list[dict[str, Any]],
           rate_limits: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of ``GET /v1/usage``."""
    return {"token": token.name,
            "group": token.group.name if token.group is not None else None,
            "quotas": quotas, "rate_limits": rate_limits}


# -- seeding from the usage table -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedQuery:
    """Usage rows with ``ts >= since`` summed per ``token`` or ``token_group``.

    *period* is a quota period, or ``"minute"`` for the rpm/tpm sliding windows. The answer
    maps each name to `Totals` over the rows of admitted requests only (`totals_since`).
    """

    scope: Scope
    period: Period | Literal["minute"]
    since: float


#: The answers to a seed plan: each query with its per-name totals.
Answers = list[tuple[SeedQuery, dict[str, Totals]]]
#: Answers a seed plan (from the usage table).
SeedSource = Callable[[list[SeedQuery]], Awaitable[Answers]]


def seed_plan(now: float) -> list[SeedQuery]:
    """The usage sums needed to rebuild every counter: per scope, each period, a minute.

    ``total`` has ``since=0.0``; ``minute`` has ``since=now-60`` and feeds the rpm/tpm windows.
    """
    starts = Calendar().at(now)
    plan = [SeedQuery(scope, period, start)
            for scope in SCOPES for period, start in zip(PERIODS, starts, strict=True)]
    plan += [SeedQuery(scope, "minute", now - WINDOW) for scope in SCOPES]
    return plan


def table_source(store: UsageStore) -> SeedSource:
    """Answer seed plans from *store*'s table, one indexed query per scope and period.

    Only rows of forwarded requests count (`totals_since`), so the counters equal what the
    requests counted while they were served: a restart neither forgives nor double-counts.
    """
    async def answer(plan: list[SeedQuery]) -> Answers:
        return [(query, await totals_since(store.fetch, _COLUMN[query.scope], query.since,
                                           store.engine)) for query in plan]
    return answer


_COLUMN: dict[Scope, Literal["token", "token_group"]] = {"token": "token",
                                                         "group": "token_group"}
