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

At start the gateway rebuilds the counters from the usage table: `seed_plan` lists one
`SeedQuery` per scope and period (plus a ``minute`` one for the sliding windows), and
`Limiter.seed` applies each query's per-name `Totals`. `MemoryQuotas` is this limiter behind
the `Quotas` protocol.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..config import Quota, RateLimit, Token
from ..usage import Totals
from .model import (
    INDEX,
    SCOPES,
    WINDOW,
    Calendar,
    Limits,
    Scope,
    SeedQuery,
    SeedSource,
    Tightest,
    concurrent_report,
    has_rate,
    limits_of,
    quota_report,
    ratelimit_headers,
    refuse_concurrent,
    refuse_quota,
    refuse_rate,
    report,
    scope_label,
    seed_plan,
    tighter,
    window_report,
)
from .protocol import SharedHealth

#: Resolution of the sliding windows: amounts added within this many seconds share a slot.
GRAIN = 0.1


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
        self._calendar = Calendar()
        self._counters: dict[str, dict[str, _Counters]] = {scope: {} for scope in SCOPES}

    # -- persistence seam --------------------------------------------------------------------

    def seed_plan(self, now: float | None = None) -> list[SeedQuery]:
        """`seed_plan` at *now* (this limiter's clock by default)."""
        return seed_plan(self._clock() if now is None else now)

    def seed(self, query: SeedQuery, totals: Mapping[str, Totals]) -> None:
        """Set the counters of every name in *totals* to the sums returned for *query*.

        Seeding replaces (it does not add), so it is idempotent; seed before serving. A period
        query whose *since* is no longer the current period start rolls over on next use. A
        ``minute`` query puts its sums in the sliding windows as if used at ``since + 60``
        (the seed time): the windows restart full rather than empty, and drain 60 s later.
        Requests in flight keep their reservations.
        """
        for name, total in totals.items():
            entry = self._get(query.scope, name)
            if query.period == "minute":
                _seed_window(entry.requests, query.since + WINDOW, total.requests)
                _seed_window(entry.tokens, query.since + WINDOW, total.tokens)
                continue
            bucket = entry.buckets[INDEX[query.period]]
            bucket.start = query.since
            bucket.tokens, bucket.requests, bucket.cost = total.tokens, total.requests, total.cost

    def forget_usage(self) -> None:
        """Empty every period and window before seeding them all anew (requests in flight keep
        their reservations)."""
        for counters in self._counters.values():
            for entry in counters.values():
                for bucket in entry.buckets:
                    bucket.start = math.nan
                entry.requests.clear()
                entry.tokens.clear()

    def count(self, names: list[tuple[Scope, str]], *, tokens: int, cost: float,
              at: float) -> None:
        """Add one finished request's usage (settled at *at*) to the counters of *names*."""
        starts = self._calendar.at(at)
        for scope, name in names:
            self._get(scope, name).record(at, starts, tokens, cost)

    def hold(self, names: list[tuple[Scope, str]], *, tokens: int, cost: float) -> Reservation:
        """Reserve for a request admitted elsewhere (no check): its settlement counts here."""
        entries = [self._get(scope, name) for scope, name in names]
        now = self._clock()
        for entry in entries:
            entry.reserve(now, tokens, cost)
        group = entries[1] if len(entries) > 1 else None
        return Reservation(self, entries[0], group, tokens, cost, {}, now)

    # -- admission ---------------------------------------------------------------------------

    def admit(self, token: Token, *, estimate_tokens: int, estimate_cost: float) -> Reservation:
        """Check every quota and rate limit of *token* and its group, then reserve the estimate.

        Raise `QuotaExceeded` or `RateLimited` (with ``Retry-After``) and count nothing when
        refused. Quotas are checked before rate limits, the token before its group.
        """
        now = self._clock()
        starts = self._calendar.at(now)
        scopes = self._scopes(token)
        for _, _, counters in scopes:
            counters.requests.prune(now)
            counters.tokens.prune(now)
        for scope, (quotas, _), counters in scopes:
            self._check_quotas(scope, token, counters, quotas, starts, now)
        for scope, (_, rate), counters in scopes:
            if rate is not None:
                self._check_rate(scope, token, counters, rate, now)
        room_tokens, room_cost = _room(scopes, starts)
        tokens = int(min(max(0, int(estimate_tokens)), room_tokens))
        cost = min(max(0.0, float(estimate_cost)), room_cost)
        for _, _, counters in scopes:
            counters.reserve(now, tokens, cost)
        return Reservation(self, scopes[0][2], _group_of(scopes), tokens, cost,
                           self._headers(now, token), now)

    def admit_free(self, token: Token) -> Reservation:
        """Admit a request that uses no quota (count_tokens) against *token*'s and its group's
        ``concurrent`` and ``rpm`` limits: it holds a slot in flight and counts in the rpm
        window, and settles to nothing else. Raise `RateLimited` when refused."""
        now = self._clock()
        scopes = self._scopes(token)
        for scope, (_, rate), counters in scopes:
            counters.requests.prune(now)
            if rate is not None:
                self._check_rate(scope, token, counters,
                                 RateLimit(rpm=rate.rpm, concurrent=rate.concurrent), now)
        for _, _, counters in scopes:
            counters.reserve(now, 0, 0.0)
        return Reservation(self, scopes[0][2], _group_of(scopes), 0, 0.0,
                           self._headers(now, token), now, free=True)

    def _scopes(self, token: Token) -> list[tuple[Scope, Limits, _Counters]]:
        """*token*'s and its group's limits, with their counters."""
        names = [token.name] + ([token.group.name] if token.group is not None else [])
        return [(scope, limits, self._get(scope, name))
                for scope, limits, name in zip(SCOPES, limits_of(token), names, strict=False)]

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

    def _check_quotas(self, scope: Scope, token: Token, counters: _Counters,
                      quotas: tuple[Quota, ...], starts: tuple[float, ...], now: float) -> None:
        """Raise `QuotaExceeded` for the first quota whose used + reserved reached its limit."""
        for quota in quotas:
            index = INDEX[quota.period]
            bucket = counters.buckets[index].roll(starts[index])
            for what, limit, used, held in (
                    ("token", quota.tokens, bucket.tokens, counters.reserved_tokens),
                    ("request", quota.requests, bucket.requests, counters.in_flight),
                    ("cost", quota.cost, bucket.cost, counters.reserved_cost)):
                if limit is not None and used + held >= limit:
                    raise refuse_quota(scope_label(scope, token), quota, what, limit,
                                       self._calendar.ends[index], used < limit,
                                       self._headers(now, token))

    def _check_rate(self, scope: Scope, token: Token, counters: _Counters, limit: RateLimit,
                    now: float) -> None:
        """Raise `RateLimited` when concurrency, rpm or tpm is used up, with the exact wait.

        When in-flight reservations alone fill the tpm limit, the wait is a lower bound.
        """
        label = scope_label(scope, token)
        if limit.concurrent is not None and counters.in_flight >= limit.concurrent:
            raise refuse_concurrent(label, counters.in_flight, self._headers(now, token))
        if limit.rpm is not None and counters.requests.total >= limit.rpm:
            raise refuse_rate(label, "requests", limit.rpm,
                              counters.requests.wait_below(limit.rpm, now),
                              self._headers(now, token))
        if limit.tpm is not None and (
                counters.tokens.total + counters.reserved_tokens >= limit.tpm):
            below = limit.tpm - counters.reserved_tokens
            raise refuse_rate(label, "tokens", limit.tpm,
                              counters.tokens.wait_below(below, now), self._headers(now, token))

    def _headers(self, now: float, token: Token) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of the tightest rpm and tpm limits that apply."""
        requests: Tightest | None = None
        tokens: Tightest | None = None
        for _, (_, limit), counters in self._scopes(token):
            if limit is None:
                continue
            if limit.rpm is not None:
                window = counters.requests
                requests = tighter(requests, (max(0, limit.rpm - window.total), limit.rpm,
                                              window.drained_in(now)))
            if limit.tpm is not None:
                window = counters.tokens
                used = window.total + counters.reserved_tokens
                tokens = tighter(tokens, (max(0, limit.tpm - used), limit.tpm,
                                          window.drained_in(now)))
        return ratelimit_headers(requests, tokens)

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
        quotas, rate_limits = [], []
        for scope, (scope_quotas, rate), counters in self._scopes(token):
            counters.requests.prune(now)
            counters.tokens.prune(now)
            held = (counters.reserved_tokens, counters.in_flight, counters.reserved_cost)
            for quota in scope_quotas:
                index = INDEX[quota.period]
                bucket = counters.buckets[index].roll(starts[index])
                quotas.append(quota_report(scope, quota, self._calendar.ends[index],
                                           (bucket.tokens, bucket.requests, bucket.cost), held))
            if rate is not None and has_rate(rate):
                rate_limits.append(_rate_report(scope, counters, rate, now))
        return report(token, quotas, rate_limits)


def _group_of(scopes: list[tuple[Scope, Limits, _Counters]]) -> _Counters | None:
    return scopes[1][2] if len(scopes) > 1 else None


def _room(scopes: list[tuple[Scope, Limits, _Counters]],
          starts: tuple[float, ...]) -> tuple[int | float, float]:
    """What the tightest token and cost limit of the scopes has left, beyond what is used and
    reserved: an admitted request reserves no more than that."""
    room_tokens: int | float = math.inf
    room_cost = math.inf
    for _, (quotas, rate), counters in scopes:
        for quota in quotas:
            index = INDEX[quota.period]
            bucket = counters.buckets[index].roll(starts[index])
            if quota.tokens is not None:
                room_tokens = min(room_tokens,
                                  quota.tokens - bucket.tokens - counters.reserved_tokens)
            if quota.cost is not None:
                room_cost = min(room_cost, quota.cost - bucket.cost - counters.reserved_cost)
        if rate is not None and rate.tpm is not None:
            room_tokens = min(room_tokens,
                              rate.tpm - counters.tokens.total - counters.reserved_tokens)
    return max(0, room_tokens), max(0.0, room_cost)


def _rate_report(scope: Scope, counters: _Counters, limit: RateLimit,
                 now: float) -> dict[str, Any]:
    requests, tokens = counters.requests, counters.tokens
    return {"scope": scope,
            "rpm": window_report(limit.rpm, requests.total, requests.drained_in(now)),
            "tpm": window_report(limit.tpm, tokens.total + counters.reserved_tokens,
                                 tokens.drained_in(now)),
            "concurrent": concurrent_report(limit.concurrent, counters.in_flight)}


def _seed_window(window: _Window, at: float, amount: int) -> None:
    window.clear()
    if amount > 0:
        window.add(at, amount)


class MemoryQuotas:
    """This process's `Limiter` behind the `Quotas` protocol, seeded from the usage table."""

    def __init__(self, seed_source: SeedSource, clock: Callable[[], float] = time.time) -> None:
        self.limiter = Limiter(clock)
        self._seed_source = seed_source

    async def open(self) -> None:
        for query, totals in await self._seed_source(self.limiter.seed_plan()):
            self.limiter.seed(query, totals)

    async def close(self) -> None:
        return None

    async def admit(self, token: Token, *, estimate_tokens: int,
                    estimate_cost: float) -> Reservation:
        return self.limiter.admit(token, estimate_tokens=estimate_tokens,
                                  estimate_cost=estimate_cost)

    def admit_free(self, token: Token) -> Reservation:
        return self.limiter.admit_free(token)

    async def report(self, token: Token) -> dict[str, Any]:
        return self.limiter.report(token)

    def shared_health(self) -> SharedHealth | None:
        return None
