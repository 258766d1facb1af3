"""Quotas and rate limits, per token and per token group, over an injected clock. Pure: no I/O.

Quotas (tokens, requests, cost per day, week, month or total, UTC calendar) are checked and
reserved in one synchronous step: a request is admitted while, for every quota of its token
and its group, what was used in the current period plus the reservations of requests still in
flight is below the limit. The admitted request reserves its estimate (tokens, cost and one
request), never more tokens or cost than the tightest quota or tpm limit has left, and
`Reservation.settle` replaces the estimate by the real usage. A request that alone asks for
more than a quota allows is refused before admission (`refuse_oversized`); one that uses no
quota (count_tokens) is admitted by `Limiter.admit_free` against rpm and concurrent only.
Refused requests consume nothing; a settled request counts as one request when it was
forwarded upstream, and one that never was (every target cooling down) gives everything back,
as its usage row (``attempts = 0``) is not counted when the counters are rebuilt from the
table.

Rate limits are sliding 60 s windows: ``rpm`` counts admissions, ``tpm`` counts settled tokens
plus the tokens reserved by requests in flight, ``concurrent`` counts requests in flight.

Counters are kept by name for every token and group seen, for all four periods, whether or
not a quota is configured, so a quota added by a reload counts usage since its period start.
Limits are read from the `Token` passed to each call, so a reload takes effect on the next
admission. Period buckets roll over lazily by comparing their start with the current one.

At start the gateway rebuilds the counters from the usage table: `Limiter.seed_plan` lists
one `SeedQuery` per scope and period (plus a ``minute`` one for the sliding windows), and
`Limiter.seed` applies each query's per-name `Totals`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from ..config import PERIODS, Period, Quota, RateLimit, Token
from ..errors import QuotaExceeded, RateLimited

Scope = Literal["token", "group"]
SCOPES: tuple[Scope, ...] = ("token", "group")
#: Length of the rpm/tpm sliding window, in seconds.
WINDOW = 60.0
#: Resolution of the sliding windows: amounts added within this many seconds share a slot.
GRAIN = 0.1

_DAY = 86400.0
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}
_LABEL = {"token": "token", "group": "token group"}
_INDEX = {period: i for i, period in enumerate(PERIODS)}


@dataclass(frozen=True, slots=True)
class Totals:
    """Usage of one name over one seed query: total tokens, request rows and cost."""

    tokens: int = 0
    requests: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class SeedQuery:
    """Sum usage rows with ``ts >= since`` grouped by the ``token`` or ``token_group`` column.

    *period* is a quota period, or ``"minute"`` for the rpm/tpm sliding windows. The answer
    maps each name to `Totals`: ``SUM(total_tokens)``, ``COUNT(*)`` and ``SUM(cost)``, over
    the rows of admitted requests only: rows of requests the gateway refused itself (bad key,
    model not allowed, quota or rate limit) consumed nothing and must not be counted.
    """

    scope: Scope
    period: Period | Literal["minute"]
    since: float


# -- time -------------------------------------------------------------------------------------


class _Calendar:
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
    calendar = _Calendar()
    return calendar.at(now)[_INDEX[period]]


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


#: The tightest rate limit of one kind: (remaining, limit, seconds until it resets).
Tightest = tuple[int, int, float]


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


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _whole_seconds(seconds: float) -> int:
    """Round a wait up to whole seconds, at least 1 (float noise does not add a second)."""
    return max(1, math.ceil(seconds - 1e-9))


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
    when = f"it resets at {_iso(end)}" if end is not None else "it does not reset"
    return f"{label} has used its {adjective} {what} quota ({_number(limit)}); {when}"


def refuse_oversized(token: Token, *, tokens: int, cost: float) -> None:
    """Raise `QuotaExceeded` when a request alone asks for more than a quota of *token* or
    its group allows at all: *tokens* and *cost* are its prompt estimate plus the output it
    asked for (``max_tokens``), priced. Such a request could never be admitted."""
    scopes = [("token", token.name, token.quotas)]
    if token.group is not None:
        scopes.append(("group", token.group.name, token.group.quotas))
    for scope, name, quotas in scopes:
        for quota in quotas:
            for what, limit, asked in (("token", quota.tokens, tokens),
                                       ("cost", quota.cost, cost)):
                if limit is not None and asked > limit:
                    amount = f"{asked} tokens" if what == "token" else f"a cost of {asked:g}"
                    raise QuotaExceeded(
                        f"this request alone asks for {amount} (its prompt and max_tokens), "
                        f"more than {_LABEL[scope]} '{name}' has in its "
                        f"{_ADJECTIVE[quota.period]} {what} quota ({_number(limit)}); "
                        f"ask for fewer output tokens")


# -- counters ---------------------------------------------------------------------------------


class _Slot:
    """Amount added to a window during at most `GRAIN` seconds from *ts*."""

    __slots__ = ("amount", "ts")

    def __init__(self, ts: float, amount: int) -> None:
        self.ts = ts
        self.amount = amount


class _Window:
    """Amounts added in the last `WINDOW` seconds, in `GRAIN`-long slots, and their sum.

    Slots bound memory at ``WINDOW / GRAIN`` entries however busy a token is; an amount
    leaves the window up to `GRAIN` seconds early (when its slot's first amount leaves).
    """

    __slots__ = ("slots", "total")

    def __init__(self) -> None:
        self.slots: deque[_Slot] = deque()
        self.total = 0

    def prune(self, now: float) -> None:
        """Drop slots that started `WINDOW` seconds ago or earlier."""
        slots, cutoff = self.slots, now - WINDOW
        while slots and slots[0].ts <= cutoff:
            self.total -= slots.popleft().amount

    def withdraw(self, at: float, amount: int) -> None:
        """Take back *amount* added at time *at*, if its slot is still in the window."""
        for slot in reversed(self.slots):
            if slot.ts <= at:
                if at - slot.ts < GRAIN:
                    taken = min(amount, slot.amount)
                    slot.amount -= taken
                    self.total -= taken
                    if not slot.amount:
                        self.slots.remove(slot)
                return

    def add(self, now: float, amount: int) -> None:
        slots = self.slots
        if slots and now - slots[-1].ts < GRAIN:
            slots[-1].amount += amount
        else:
            slots.append(_Slot(now, amount))
        self.total += amount

    def clear(self) -> None:
        self.slots.clear()
        self.total = 0

    def wait_below(self, limit: int, now: float) -> float:
        """Seconds until expiring slots bring the sum below *limit* (or empty the window)."""
        remaining = self.total
        for slot in self.slots:
            remaining -= slot.amount
            if remaining < limit:
                return slot.ts + WINDOW - now
        return self.drained_in(now)

    def drained_in(self, now: float) -> float:
        """Seconds until every current slot has left the window (0 when empty)."""
        return self.slots[-1].ts + WINDOW - now if self.slots else 0.0


class _Bucket:
    """Settled usage of one name in one period, starting at *start*."""

    __slots__ = ("cost", "requests", "start", "tokens")

    def __init__(self) -> None:
        self.start = math.nan  # never equal to a real start: the first use rolls it over
        self.tokens = 0
        self.requests = 0
        self.cost = 0.0

    def roll(self, start: float) -> _Bucket:
        """Return this bucket, emptied first if it belongs to another period than *start*."""
        if self.start != start:
            self.start, self.tokens, self.requests, self.cost = start, 0, 0, 0.0
        return self


class _Counters:
    """Everything counted for one token or group name."""

    __slots__ = ("buckets", "in_flight", "requests", "reserved_cost", "reserved_tokens",
                 "tokens")

    def __init__(self) -> None:
        self.buckets = (_Bucket(), _Bucket(), _Bucket(), _Bucket())
        self.in_flight = 0
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.requests = _Window()  # admissions, for rpm
        self.tokens = _Window()  # settled tokens, for tpm

    def reserve(self, now: float, tokens: int, cost: float) -> None:
        """Count an admission: one request in flight holding *tokens* and *cost*."""
        self.in_flight += 1
        self.reserved_tokens += tokens
        self.reserved_cost += cost
        self.requests.add(now, 1)

    def release(self, tokens: int, cost: float) -> None:
        """Give back what `reserve` took (exactly zero once nothing is in flight)."""
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight, self.reserved_tokens, self.reserved_cost = 0, 0, 0.0
        else:
            self.reserved_tokens -= tokens
            self.reserved_cost -= cost

    def record(self, now: float, starts: tuple[float, ...], tokens: int, cost: float) -> None:
        """Add one finished request's real usage to every period and to the tpm window."""
        for bucket, start in zip(self.buckets, starts, strict=True):
            bucket.roll(start)
            bucket.tokens += tokens
            bucket.requests += 1
            bucket.cost += cost
        if tokens:
            self.tokens.prune(now)
            self.tokens.add(now, tokens)


# -- the limiter ------------------------------------------------------------------------------


class Reservation:
    """An admitted request's hold on its quotas and rate limits, until `settle` is called."""

    __slots__ = ("_at", "_cost", "_free", "_group", "_limiter", "_settled", "_token",
                 "_tokens", "headers")

    def __init__(self, limiter: Limiter, token: _Counters, group: _Counters | None,
                 tokens: int, cost: float, headers: dict[str, str], at: float,
                 free: bool = False) -> None:
        self._limiter = limiter
        self._free = free
        self._at = at
        self._token = token
        self._group = group
        self._tokens = tokens
        self._cost = cost
        self._settled = False
        #: The ``x-ratelimit-*`` headers computed at admission, for the response.
        self.headers = headers

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self, *, tokens: int, cost: float, forwarded: bool = True) -> None:
        """Replace the estimate by real usage and free the slot; later calls do nothing.

        Pass ``tokens=0, cost=0`` for a request that failed without usage: it still counts
        as one request. With ``forwarded=False`` (no upstream was tried) the request counts
        nothing at all: its reservation and its rpm entry are given back, *tokens* and *cost*
        are ignored.
        """
        if self._settled:
            return
        self._settled = True
        if self._free:  # `Limiter.admit_free`: only the slot in flight to give back
            for counters in (self._token, self._group):
                if counters is not None:
                    counters.release(0, 0.0)
            return
        if not forwarded:
            self._limiter._withdraw(self._token, self._group, self._tokens, self._cost,
                                    self._at)
            return
        self._limiter._settle(self._token, self._group, self._tokens, self._cost,
                              max(0, int(tokens)), max(0.0, float(cost)))


class Limiter:
    """Admits requests against the quotas and rate limits of their token and its group."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._calendar = _Calendar()
        self._counters: dict[str, dict[str, _Counters]] = {scope: {} for scope in SCOPES}

    # -- persistence seam --------------------------------------------------------------------

    def seed_plan(self, now: float | None = None) -> list[SeedQuery]:
        """List the usage sums needed to rebuild every counter: per scope, each period, a minute.

        ``total`` has ``since=0.0``; ``minute`` has ``since=now-60`` and feeds the rpm/tpm
        windows.
        """
        now = self._clock() if now is None else now
        starts = _Calendar().at(now)
        plan = [SeedQuery(scope, period, start)
                for scope in SCOPES for period, start in zip(PERIODS, starts, strict=True)]
        plan += [SeedQuery(scope, "minute", now - WINDOW) for scope in SCOPES]
        return plan

    def seed(self, query: SeedQuery, totals: Mapping[str, Totals]) -> None:
        """Set the counters of every name in *totals* to the sums returned for *query*.

        Seeding replaces (it does not add), so it is idempotent; seed before serving. A period
        query whose *since* is no longer the current period start rolls over on next use. A
        ``minute`` query puts its sums in the sliding windows as if used at ``since + 60``
        (the seed time): the windows restart full rather than empty, and drain 60 s later.
        """
        for name, total in totals.items():
            entry = self._get(query.scope, name)
            if query.period == "minute":
                _seed_window(entry.requests, query.since + WINDOW, total.requests)
                _seed_window(entry.tokens, query.since + WINDOW, total.tokens)
                continue
            bucket = entry.buckets[_INDEX[query.period]]
            bucket.start = query.since
            bucket.tokens, bucket.requests, bucket.cost = total.tokens, total.requests, total.cost

    # -- admission ---------------------------------------------------------------------------

    def admit(self, token: Token, *, estimate_tokens: int, estimate_cost: float) -> Reservation:
        """Check every quota and rate limit of *token* and its group, then reserve the estimate.

        Raise `QuotaExceeded` or `RateLimited` (with ``Retry-After``) and count nothing when
        refused. Quotas are checked before rate limits, the token before its group.
        """
        now = self._clock()
        starts = self._calendar.at(now)
        group = token.group
        tok = self._get("token", token.name)
        grp = self._get("group", group.name) if group is not None else None
        tok.requests.prune(now)
        tok.tokens.prune(now)
        if grp is not None:
            grp.requests.prune(now)
            grp.tokens.prune(now)

        if token.quotas:
            self._check_quotas("token", token.name, tok, token.quotas, starts, now, token)
        if group is not None and grp is not None and group.quotas:
            self._check_quotas("group", group.name, grp, group.quotas, starts, now, token)
        if token.rate_limit is not None:
            self._check_rate("token", token.name, tok, token.rate_limit, now, token)
        if group is not None and grp is not None and group.rate_limit is not None:
            self._check_rate("group", group.name, grp, group.rate_limit, now, token)

        room_tokens, room_cost = self._room(token, tok, grp, starts)
        tokens = int(min(max(0, int(estimate_tokens)), room_tokens))
        cost = min(max(0.0, float(estimate_cost)), room_cost)
        tok.reserve(now, tokens, cost)
        if grp is not None:
            grp.reserve(now, tokens, cost)
        return Reservation(self, tok, grp, tokens, cost, self._headers(now, token), now)

    def admit_free(self, token: Token) -> Reservation:
        """Admit a request that uses no quota (count_tokens) against *token*'s and its group's
        ``concurrent`` and ``rpm`` limits: it holds a slot in flight and counts in the rpm
        window, and settles to nothing else. Raise `RateLimited` when refused."""
        now = self._clock()
        group = token.group
        tok = self._get("token", token.name)
        grp = self._get("group", group.name) if group is not None else None
        scopes: list[tuple[Scope, str, _Counters, RateLimit | None]] = [
            ("token", token.name, tok, token.rate_limit)]
        if group is not None and grp is not None:
            scopes.append(("group", group.name, grp, group.rate_limit))
        for scope, name, counters, limit in scopes:
            counters.requests.prune(now)
            if limit is not None:
                self._check_rate(scope, name, counters,
                                 RateLimit(rpm=limit.rpm, concurrent=limit.concurrent), now,
                                 token)
        for _, _, counters, _ in scopes:
            counters.reserve(now, 0, 0.0)
        return Reservation(self, tok, grp, 0, 0.0, self._headers(now, token), now, free=True)

    def _room(self, token: Token, tok: _Counters, grp: _Counters | None,
              starts: tuple[float, ...]) -> tuple[int | float, float]:
        """What the tightest token and cost limit of *token* and its group has left, beyond
        what is used and reserved: an admitted request reserves no more than that."""
        room_tokens: int | float = math.inf
        room_cost = math.inf
        scopes = [(token.quotas, token.rate_limit, tok)]
        if token.group is not None and grp is not None:
            scopes.append((token.group.quotas, token.group.rate_limit, grp))
        for quotas, rate, counters in scopes:
            for quota in quotas:
                index = _INDEX[quota.period]
                bucket = counters.buckets[index].roll(starts[index])
                if quota.tokens is not None:
                    room_tokens = min(room_tokens,
                                      quota.tokens - bucket.tokens - counters.reserved_tokens)
                if quota.cost is not None:
                    room_cost = min(room_cost,
                                    quota.cost - bucket.cost - counters.reserved_cost)
            if rate is not None and rate.tpm is not None:
                room_tokens = min(room_tokens,
                                  rate.tpm - counters.tokens.total - counters.reserved_tokens)
        return max(0, room_tokens), max(0.0, room_cost)

    def _settle(self, token: _Counters, group: _Counters | None, reserved_tokens: int,
                reserved_cost: float, tokens: int, cost: float) -> None:
        """Release a reservation and record the real usage in the current periods."""
        now = self._clock()
        starts = self._calendar.at(now)
        for counters in (token, group):
            if counters is not None:
                counters.release(reserved_tokens, reserved_cost)
                counters.record(now, starts, tokens, cost)

    def _withdraw(self, token: _Counters, group: _Counters | None, reserved_tokens: int,
                  reserved_cost: float, admitted_at: float) -> None:
        """Release a reservation and take its admission back out of the rpm window."""
        for counters in (token, group):
            if counters is not None:
                counters.release(reserved_tokens, reserved_cost)
                counters.requests.withdraw(admitted_at, 1)

    def _get(self, scope: str, name: str) -> _Counters:
        counters = self._counters[scope]
        entry = counters.get(name)
        if entry is None:
            entry = counters[name] = _Counters()
        return entry

    def _check_quotas(self, scope: Scope, name: str, counters: _Counters,
                      quotas: tuple[Quota, ...], starts: tuple[float, ...], now: float,
                      token: Token) -> None:
        """Raise `QuotaExceeded` for the first quota whose used + reserved reached its limit."""
        for quota in quotas:
            index = _INDEX[quota.period]
            bucket = counters.buckets[index].roll(starts[index])
            for what, limit, used, held in (
                    ("token", quota.tokens, bucket.tokens, counters.reserved_tokens),
                    ("request", quota.requests, bucket.requests, counters.in_flight),
                    ("cost", quota.cost, bucket.cost, counters.reserved_cost)):
                if limit is not None and used + held >= limit:
                    self._refuse_quota(scope, name, quota, what, limit, now, token,
                                       held=used < limit)

    def _refuse_quota(self, scope: Scope, name: str, quota: Quota, what: str, limit: float,
                      now: float, token: Token, held: bool = False) -> NoReturn:
        """Raise `QuotaExceeded` naming the scope, the quota and when it resets."""
        raise QuotaExceeded(quota_message(f"{_LABEL[scope]} '{name}'", quota, what, limit,
                                          self._calendar.ends[_INDEX[quota.period]], held),
                            headers=self._headers(now, token))

    def _check_rate(self, scope: Scope, name: str, counters: _Counters, limit: RateLimit,
                    now: float, token: Token) -> None:
        """Raise `RateLimited` when concurrency, rpm or tpm is used up, with the exact wait.

        A concurrency slot frees when a request settles, at no known time: Retry-After is 1.
        When in-flight reservations alone fill the tpm limit, the wait is a lower bound.
        """
        label = f"{_LABEL[scope]} '{name}'"
        if limit.concurrent is not None and counters.in_flight >= limit.concurrent:
            self._refuse_rate(f"{label} has {counters.in_flight} requests in flight, its "
                              f"concurrency limit; retry when one finishes", 1, now, token)
        if limit.rpm is not None and counters.requests.total >= limit.rpm:
            wait = _whole_seconds(counters.requests.wait_below(limit.rpm, now))
            self._refuse_rate(f"{label} reached its rate limit of {limit.rpm} requests per "
                              f"minute; retry in {wait}s", wait, now, token)
        if limit.tpm is not None and (
                counters.tokens.total + counters.reserved_tokens >= limit.tpm):
            below = limit.tpm - counters.reserved_tokens
            wait = _whole_seconds(counters.tokens.wait_below(below, now))
            self._refuse_rate(f"{label} reached its rate limit of {limit.tpm} tokens per "
                              f"minute; retry in {wait}s", wait, now, token)

    def _refuse_rate(self, message: str, wait: int, now: float, token: Token) -> NoReturn:
        """Raise `RateLimited` with ``Retry-After: wait`` and the ``x-ratelimit-*`` headers."""
        headers = {"Retry-After": str(wait), **self._headers(now, token)}
        raise RateLimited(message, headers=headers)

    def _headers(self, now: float, token: Token) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of the tightest rpm and tpm limits that apply."""
        requests: tuple[int, int, float] | None = None  # (remaining, limit, reset)
        tokens: tuple[int, int, float] | None = None
        for limit, counters in self._rate_scopes(token):
            if limit.rpm is not None:
                window = counters.requests
                candidate = (max(0, limit.rpm - window.total), limit.rpm, window.drained_in(now))
                if requests is None or candidate[:2] < requests[:2]:
                    requests = candidate
            if limit.tpm is not None:
                window = counters.tokens
                used = window.total + counters.reserved_tokens
                candidate = (max(0, limit.tpm - used), limit.tpm, window.drained_in(now))
                if tokens is None or candidate[:2] < tokens[:2]:
                    tokens = candidate
        return ratelimit_headers(requests, tokens)

    def _rate_scopes(self, token: Token) -> list[tuple[RateLimit, _Counters]]:
        """The configured rate limits of *token* and its group, with their counters."""
        scopes = []
        if token.rate_limit is not None:
            scopes.append((token.rate_limit, self._get("token", token.name)))
        group = token.group
        if group is not None and group.rate_limit is not None:
            scopes.append((group.rate_limit, self._get("group", group.name)))
        return scopes

    # -- GET /v1/usage -----------------------------------------------------------------------

    def report(self, token: Token) -> dict[str, Any]:
        """The body of ``GET /v1/usage`` for *token*: its and its group's quotas and rate limits.

        Each quota dimension is ``{limit, used, reserved, remaining}``: *used* is settled usage
        in the current period, *reserved* what requests in flight hold, and *remaining* is
        ``limit - used - reserved`` (never below 0), what admission compares against. ``rpm``
        and ``tpm`` are ``{limit, remaining, resets_in}`` with *resets_in* the whole seconds
        until the window is empty; ``concurrent`` has ``resets_in: null``.
        """
        now = self._clock()
        starts = self._calendar.at(now)
        scopes: list[tuple[Scope, str, tuple[Quota, ...], RateLimit | None]] = [
            ("token", token.name, token.quotas, token.rate_limit)]
        if token.group is not None:
            group = token.group
            scopes.append(("group", group.name, group.quotas, group.rate_limit))
        quotas, rate_limits = [], []
        for scope, name, scope_quotas, limit in scopes:
            counters = self._get(scope, name)
            counters.requests.prune(now)
            counters.tokens.prune(now)
            quotas += [self._quota_report(scope, counters, quota, starts)
                       for quota in scope_quotas]
            if limit is not None and (limit.rpm, limit.tpm, limit.concurrent) != (None,) * 3:
                rate_limits.append(_rate_report(scope, counters, limit, now))
        return {"token": token.name,
                "group": token.group.name if token.group is not None else None,
                "quotas": quotas, "rate_limits": rate_limits}

    def _quota_report(self, scope: Scope, counters: _Counters, quota: Quota,
                      starts: tuple[float, ...]) -> dict[str, Any]:
        index = _INDEX[quota.period]
        bucket = counters.buckets[index].roll(starts[index])
        end = self._calendar.ends[index]
        return {
            "scope": scope, "period": quota.period,
            "resets_at": _iso(end) if end is not None else None,
            "tokens": _dimension(quota.tokens, bucket.tokens, counters.reserved_tokens),
            "requests": _dimension(quota.requests, bucket.requests, counters.in_flight),
            "cost": _dimension(quota.cost, round(bucket.cost, 6),
                               round(counters.reserved_cost, 6)),
        }


def _dimension(limit: float | None, used: float, reserved: float) -> dict[str, Any] | None:
    if limit is None:
        return None
    remaining = max(0, limit - used - reserved)
    if isinstance(remaining, float):
        remaining = round(remaining, 6)
    return {"limit": limit, "used": used, "reserved": reserved, "remaining": remaining}


def _rate_report(scope: Scope, counters: _Counters, limit: RateLimit,
                 now: float) -> dict[str, Any]:
    rpm = tpm = concurrent = None
    if limit.rpm is not None:
        window = counters.requests
        rpm = {"limit": limit.rpm, "remaining": max(0, limit.rpm - window.total),
               "resets_in": math.ceil(window.drained_in(now) - 1e-9)}
    if limit.tpm is not None:
        window = counters.tokens
        used = window.total + counters.reserved_tokens
        tpm = {"limit": limit.tpm, "remaining": max(0, limit.tpm - used),
               "resets_in": math.ceil(window.drained_in(now) - 1e-9)}
    if limit.concurrent is not None:
        concurrent = {"limit": limit.concurrent,
                      "remaining": max(0, limit.concurrent - counters.in_flight),
                      "resets_in": None}
    return {"scope": scope, "rpm": rpm, "tpm": tpm, "concurrent": concurrent}


def _seed_window(window: _Window, at: float, amount: int) -> None:
    window.clear()
    if amount > 0:
        window.add(at, amount)
