"""Quotas, rate limits, reservations and cooldowns shared by every process through Redis.

`RedisQuotas` admits a request with one Lua script (every quota and rate limit of the
token and its group checked, the estimate reserved, the rate-limit headers computed, all
atomically) and settles it with another, run in the background so the caller never waits for
it. Each process renews the leases of its reservations; those of a process that died expire
after ``state.lease`` and are released by the next admission. When Redis is empty (first
start, or restarted without persistence) one process rebuilds the counters from the usage
table while the others wait.

Redis unreachable: with ``on_state_failure: closed`` requests are refused with 503; with
``open`` they are admitted against this process's own counters (`redis_fallback`: rebuilt
before any fallback admission from the usage table, what this process settled since and its
requests in flight) and their usage is added to Redis when it answers again.

Cooldowns and session pins go through Redis too (`coderouter.quotas.redis_cooldowns`).
Needs the ``redis`` extra (redis.asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config, State, Token
from ..errors import StorageUnavailable
from ..routing import Health
from ..usage import Totals, UsageStore
from .memory import Reservation
from .model import INDEX, Calendar, SeedQuery, limits_of, seed_plan, table_source
from .protocol import SharedHealth
from .redis_answers import (
    headers_of,
    limit_arg,
    read_report,
    refusal,
    scopes_of,
    start_arg,
)
from .redis_cooldowns import SharedCooldowns
from .redis_fallback import Fallback, names_of
from .redis_scripts import ADMIT, REHOLD, SETTLE

log = logging.getLogger("coderouter.state")

#: After a failed call, Redis is not tried again for this long (requests take the failure
#: mode at once instead of each waiting for a timeout).
_RETRY_AFTER_FAILURE = 1.0
#: Redis connections per process (admissions queue for one beyond that).
_CONNECTIONS = 32


def _redis() -> Any:
    try:
        import redis.asyncio
    except ImportError:
        raise RuntimeError(
            "state.redis needs the Redis client: pip install 'coderouter[redis]'") from None
    return redis


@dataclass(slots=True)
class _Settlement:
    id: str
    scopes: tuple[str, ...]
    tokens: int
    cost: float
    forwarded: bool
    at: float


class SharedReservation:
    """A request admitted in Redis, until `settle` (sent in the background) is called."""

    __slots__ = ("_id", "_limiter", "_settled", "cost", "headers", "local", "names", "scopes",
                 "tokens")

    def __init__(self, limiter: RedisQuotas, rid: str, scopes: tuple[str, ...],
                 headers: dict[str, str], tokens: int, cost: float) -> None:
        self._limiter = limiter
        self._id = rid
        self.scopes = scopes
        self.names = names_of(scopes)
        #: What it asked to reserve (Redis may have reserved less): held during an outage.
        self.tokens = tokens
        self.cost = cost
        self.local: Reservation | None = None
        self._settled = False
        self.headers = headers

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self, *, tokens: int, cost: float, forwarded: bool = True) -> None:
        """As `coderouter.quotas.memory.Reservation.settle`; never blocks."""
        if self._settled:
            return
        self._settled = True
        limiter = self._limiter
        limiter.live.pop(self._id, None)
        tokens, cost, at = max(0, int(tokens)), max(0.0, float(cost)), limiter.clock()
        if self.local is not None:
            self.local.settle(tokens=tokens, cost=cost, forwarded=forwarded)
        limiter.fallback.settled(self.names, tokens, cost, forwarded, at)
        limiter.settle(_Settlement(self._id, self.scopes, tokens, cost, forwarded, at))


class _LocalReservation:
    """An open-mode admission: this process's `Limiter`, then Redis once it is back (where
    it is held again if Redis comes back empty while it is in flight)."""

    __slots__ = ("_id", "_limiter", "cost", "headers", "local", "names", "scopes", "tokens")

    def __init__(self, limiter: RedisQuotas, inner: Reservation, scopes: tuple[str, ...],
                 tokens: int, cost: float) -> None:
        self._limiter = limiter
        self._id = f"local:{limiter.process}:{next(limiter.ids)}"
        self.local: Reservation | None = inner
        self.scopes = scopes
        self.names = names_of(scopes)
        self.tokens = tokens
        self.cost = cost
        self.headers = inner.headers
        limiter.live[self._id] = self

    @property
    def settled(self) -> bool:
        return self.local is None or self.local.settled

    def settle(self, *, tokens: int, cost: float, forwarded: bool = True) -> None:
        if self.local is None or self.local.settled:
            return
        self.local.settle(tokens=tokens, cost=cost, forwarded=forwarded)
        limiter = self._limiter
        limiter.live.pop(self._id, None)
        tokens, cost, at = max(0, int(tokens)), max(0.0, float(cost)), limiter.clock()
        limiter.fallback.settled(self.names, tokens, cost, forwarded, at)
        limiter.pending.append(_Settlement(self._id, self.scopes, tokens, cost, forwarded, at))


class RedisQuotas:
    """Admission, settlement, usage reports and cooldowns in Redis (see the module doc)."""

    def __init__(self, state: State, *, store: UsageStore, config: Callable[[], Config],
                 health: Health, clock: Callable[[], float] = time.time) -> None:
        assert state.redis is not None
        self.state = state
        self.clock = clock
        self.store = store
        self.seed_source = table_source(store)
        self.redis: Any = None
        self.process = uuid.uuid4().hex[:12]
        self.ids = itertools.count()
        #: Reservations this process holds, by id: their leases are renewed.
        self.live: dict[str, SharedReservation | _LocalReservation] = {}
        #: Open mode: this process's own counters while Redis does not answer.
        self.fallback = Fallback(store, clock, self.live.values)
        #: Settlements Redis has not taken yet (it was down), oldest first.
        self.pending: list[_Settlement] = []
        self.failures = 0
        #: Why Redis failed last, None while it answers.
        self.problem: str | None = None
        self._calendar = Calendar()
        self._skip_until = 0.0
        self._epoch: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outbox: list[_Settlement] = []
        self._sending = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._admit_box: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._no_script: type[BaseException] = OSError
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        self._admit: Any = None
        self._settle: Any = None
        #: Cooldowns and session pins, told to the other processes.
        self.cooldowns = SharedCooldowns(prefix=state.prefix, process=self.process,
                                         health=health, config=config, spawn=self.spawn,
                                         failed=self._failed)
        health.on_change = self.cooldowns.share_cooldown
        health.on_pin = self.cooldowns.share_pin
        health.failures.on_add = self.cooldowns.share_failure

    def _key(self, suffix: str) -> str:
        return f"{self.state.prefix}:{suffix}"

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, rebuild the counters if Redis is empty, start renewing and listening.

        Redis being down at start is not fatal: the failure mode applies until it is back.
        """
        redis = _redis()
        self._errors = (OSError, redis.RedisError)
        self._no_script = redis.exceptions.NoScriptError
        # a bounded pool that makes a burst wait for a connection instead of failing
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.state.redis, max_connections=_CONNECTIONS, timeout=5.0, socket_timeout=2.0,
            socket_connect_timeout=2.0, decode_responses=True)
        self.redis = redis.asyncio.Redis(connection_pool=pool)
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(SETTLE)
        self.cooldowns.redis, self.cooldowns.errors = self.redis, self._errors
        try:
            await self.ensure_seeded()
        except self._errors as exc:
            self._failed(exc)
        self.spawn(self._renew_forever())
        self.spawn(self.cooldowns.listen_forever())

    async def close(self) -> None:
        """Send the settlements still in flight and what Redis has not taken, then disconnect.
        """
        for task in list(self._tasks):
            if task.get_name() in ("state-renew", "state-listen"):
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        with contextlib.suppress(*self._errors):
            await asyncio.wait_for(self._push_pending(), 5)
        if self.pending:
            log.error("%d settlements could not reach Redis; the usage table has their rows",
                      len(self.pending))
        if self.redis is not None:
            with contextlib.suppress(*self._errors):
                await self.redis.aclose()

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        name = getattr(coroutine, "__name__", "state")
        task = asyncio.ensure_future(coroutine)
        task.set_name({"_renew_forever": "state-renew",
                       "listen_forever": "state-listen"}.get(name, "state"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- seeding ----------------------------------------------------------------------------

    async def ensure_seeded(self) -> None:
        """Rebuild the counters from the usage table unless Redis has them (one process does;
        the others wait for it)."""
        redis = self.redis
        epoch = await redis.get(self._key("seeded"))
        if epoch is not None:
            self._saw_epoch(epoch)
            return
        if not await redis.set(self._key("seeding"), self.process, nx=True, px=60_000):
            deadline = time.monotonic() + 60
            while (epoch := await redis.get(self._key("seeded"))) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("another process did not finish seeding Redis")
                await asyncio.sleep(0.05)
            self._saw_epoch(epoch)
            return
        try:
            now = self.clock()
            # no row is written while the table is read: none is counted twice
            answers = await self.store.read_flushed(lambda: self.seed_source(seed_plan(now)))
            pipe = redis.pipeline(transaction=False)
            for query, totals in answers:
                self._seed(pipe, query, totals, now)
            if self.live:  # in flight, so not in the table: held again before any admission
                pipe.eval(REHOLD, 0, *self._rehold_args())
            epoch = uuid.uuid4().hex
            pipe.set(self._key("seeded"), epoch)
            await pipe.execute()
            self._saw_epoch(epoch, held=True)
            log.warning("shared state rebuilt from the usage table (Redis was empty)")
        finally:
            await redis.delete(self._key("seeding"))

    def _seed(self, pipe: Any, query: SeedQuery, totals: dict[str, Totals], now: float) -> None:
        letter = "t" if query.scope == "token" else "g"
        for name, total in totals.items():
            scope = self._key(f"{letter}:{name}")
            if query.period == "minute":
                pipe.delete(f"{scope}:rpm", f"{scope}:tpm")
                members = {f"seed:{n}": now for n in range(min(total.requests, 10_000))}
                if members:
                    pipe.zadd(f"{scope}:rpm", members)
                if total.tokens:
                    pipe.hset(f"{scope}:tpm", str(math.floor(now)), total.tokens)
                    pipe.expire(f"{scope}:tpm", 120)
                continue
            index = INDEX[query.period]
            bucket = f"{scope}:b:{index}:{start_arg(query.since)}"
            pipe.hset(bucket, mapping={"t": total.tokens, "r": total.requests,
                                       "c": repr(total.cost)})
            self._calendar.at(now)
            end = self._calendar.ends[index]
            if end is not None:
                pipe.expire(bucket, _keep(end, now))

    def _saw_epoch(self, epoch: str, held: bool = False) -> None:
        """Counters rebuilt from the table include what Redis had not taken: drop it; hold
        this process's requests in flight again (unless *held* already)."""
        if self._epoch is not None and epoch != self._epoch:
            if self.pending:
                log.warning("Redis was rebuilt from the usage table: %d local settlements "
                            "are in it already", len(self.pending))
                self.pending.clear()
            if self.live and not held:
                self.spawn(self._rehold())
        self._epoch = epoch

    def _rehold_args(self) -> list[Any]:
        args: list[Any] = [repr(self.clock() + self.state.lease), self.state.prefix]
        for rid, reservation in self.live.items():
            args += [rid, reservation.tokens, repr(reservation.cost),
                     len(reservation.scopes), *reservation.scopes]
        return args

    async def _rehold(self) -> None:
        try:
            await self.redis.eval(REHOLD, 0, *self._rehold_args())
        except self._errors as exc:
            self._failed(exc)

    # -- admission --------------------------------------------------------------------------

    async def admit(self, token: Token, *, estimate_tokens: int,
                    estimate_cost: float) -> SharedReservation | _LocalReservation:
        """As `Limiter.admit`, across every process; the failure mode when Redis is down."""
        tokens, cost = max(0, int(estimate_tokens)), max(0.0, float(estimate_cost))
        if time.monotonic() >= self._skip_until:
            rid = f"{self.process}:{next(self.ids)}"
            try:
                return await self._admit_shared(token, tokens, cost, rid)
            except self._errors as exc:
                # the script may have run before the connection failed: take it back later
                self.pending.append(_Settlement(rid, scopes_of(token), 0, 0.0, False,
                                                self.clock()))
                self._failed(exc)
        return await self._fallback(token, tokens, cost)

    async def _fallback(self, token: Token, tokens: int, cost: float) -> _LocalReservation:
        """Closed mode: 503. Open mode: this process's counters, once rebuilt."""
        if self.state.on_state_failure == "closed":
            raise StorageUnavailable(
                f"shared state is unavailable (Redis: {self.problem}); requests are refused "
                f"until it answers again (state.on_state_failure: closed)",
                headers={"Retry-After": "1"})
        await self.fallback.ready()
        inner = self.fallback.local.admit(token, estimate_tokens=tokens, estimate_cost=cost)
        return _LocalReservation(self, inner, scopes_of(token), tokens, cost)

    async def _admit_shared(self, token: Token, tokens: int, cost: float,
                            rid: str) -> SharedReservation:
        now = self.clock()
        starts = self._calendar.at(now)
        ends = self._calendar.ends
        scopes = scopes_of(token)
        args: list[Any] = [repr(now), rid, repr(now + self.state.lease), tokens, repr(cost),
                           self.state.prefix, len(scopes)]
        limits = limits_of(token)
        for scope, (quotas, rate) in zip(scopes, limits, strict=True):
            args += [scope, len(quotas)]
            for quota in quotas:
                index = INDEX[quota.period]
                end = ends[index]
                args += [index, start_arg(starts[index]), -1 if end is None else end,
                         limit_arg(quota.tokens), limit_arg(quota.requests), limit_arg(quota.cost)]
            args += [limit_arg(rate.rpm if rate else None), limit_arg(rate.tpm if rate else None),
                     limit_arg(rate.concurrent if rate else None)]
        try:
            result = await self._run_admit(args)
            if int(result[0]) == 5:
                await self.ensure_seeded()
                result = await self._run_admit(args)
        except asyncio.CancelledError:  # the caller left: give back what may have been taken
            self.settle(_Settlement(rid, scopes, 0, 0.0, False, now))
            raise
        self._recovered()
        code = int(result[0])
        headers = headers_of(limits, result[4:])
        if code == 0:
            reservation = self.live[rid] = SharedReservation(self, rid, scopes, headers,
                                                             tokens, cost)
            return reservation
        raise refusal(token, result, self._calendar)

    async def _run_admit(self, args: list[Any]) -> Any:
        """Run the admission script (see `_sender`)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._admit_box.append((args, future))
        self._wake_sender()
        return await future

    def _wake_sender(self) -> None:
        if not self._sending:
            self._sending = True
            self._idle.clear()
            self.spawn(self._sender())

    async def _sender(self) -> None:
        """Send what is queued, one pipeline at a time: the settlements first, then the
        admissions (each script atomic on its own). One round trip serves everything queued
        meanwhile, and a request settled before another is admitted is counted before it,
        as with in-memory state."""
        try:
            while self._admit_box or self._outbox:
                await asyncio.sleep(0)  # let the requests of this loop iteration join
                admissions, self._admit_box = self._admit_box, []
                settlements, self._outbox = self._outbox, []
                await self._send_batch(settlements, admissions)
        finally:
            self._sending = False
            self._idle.set()

    async def _send_batch(self, settlements: list[_Settlement],
                          admissions: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._pipeline(settlements, admissions)
            if any(isinstance(r, self._no_script) for r in results):  # Redis restarted
                self._settle.sha = await self.redis.script_load(SETTLE)
                self._admit.sha = await self.redis.script_load(ADMIT)
                results = await self._pipeline(settlements, admissions)
        except BaseException as exc:
            self.pending.extend(settlements)  # sent again later: a settlement counts once
            for _, future in admissions:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, self._errors):
                self._failed(exc)
            return
        for settlement, result in zip(settlements, results, strict=False):
            if isinstance(result, Exception):
                self.pending.append(settlement)
        for (_, future), result in zip(admissions, results[len(settlements):], strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(self, settlements: list[_Settlement],
                        admissions: list[tuple[list[Any], Any]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for settlement in settlements:
            pipe.evalsha(self._settle.sha, 0, *self._settle_args(settlement))
        for args, _ in admissions:
            pipe.evalsha(self._admit.sha, 0, *args)
        return list(await pipe.execute(raise_on_error=False))

    # -- settlement -------------------------------------------------------------------------

    def settle(self, settlement: _Settlement) -> None:
        """Queue one settlement; it goes with the next pipeline (see `_sender`)."""
        self._outbox.append(settlement)
        self._wake_sender()

    def _settle_args(self, s: _Settlement) -> list[Any]:
        starts = self._calendar.at(s.at)
        ends = self._calendar.ends
        args: list[Any] = [repr(s.at), s.id, "1" if s.forwarded else "0", s.tokens,
                           repr(s.cost), self.state.prefix,
                           "1" if s.id.startswith("local:") else "0", len(s.scopes)]
        for scope in s.scopes:
            args.append(scope)
            for index, start in enumerate(starts):
                end = ends[index]
                args += [index, start_arg(start), -1 if end is None else _keep(end, s.at)]
        return args

    async def _send(self, s: _Settlement) -> None:
        await self._settle(args=self._settle_args(s))

    async def _push_pending(self) -> None:
        while self.pending:
            await self._send(self.pending[0])
            self.pending.pop(0)

    # -- failure and recovery ---------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        first = self.problem is None
        self.problem = f"{type(exc).__name__}: {exc}"
        self._skip_until = time.monotonic() + _RETRY_AFTER_FAILURE
        if first and self.state.on_state_failure == "open":
            self.fallback.outage()
        if first:
            log.error("shared state unavailable (Redis: %s); %s", self.problem,
                      "refusing requests" if self.state.on_state_failure == "closed"
                      else "admitting against this process's own counters")

    def _recovered(self) -> None:
        self._skip_until = 0.0
        if self.problem is not None:
            self.fallback.recovered()
            log.warning("shared state is back (Redis answers); %d local settlements to add",
                        len(self.pending))
            self.problem = None
            if self.pending:
                self.spawn(self._push_pending_logged())

    async def _push_pending_logged(self) -> None:
        try:
            epoch = await self.redis.get(self._key("seeded"))
            if epoch is not None:
                self._saw_epoch(epoch)
            await self._push_pending()
        except self._errors as exc:
            self._failed(exc)

    async def _renew_forever(self) -> None:
        """Renew this process's leases; notice Redis coming back."""
        every = self.state.lease / 3
        while True:
            await asyncio.sleep(every)
            try:
                expiry = repr(self.clock() + self.state.lease)
                if self.live:
                    pipe = self.redis.pipeline(transaction=False)
                    for rid, reservation in list(self.live.items()):
                        for scope in reservation.scopes:
                            pipe.zadd(self._key(f"{scope}:lease"), {rid: expiry}, xx=True)
                    await pipe.execute()
                else:
                    await self.redis.ping()
                epoch = await self.redis.get(self._key("seeded"))
                if epoch is None:
                    await self.ensure_seeded()
                else:
                    self._saw_epoch(epoch)
                self._recovered()
                if self.pending:
                    await self._push_pending()
            except self._errors as exc:
                self._failed(exc)

    # -- GET /v1/usage ----------------------------------------------------------------------

    async def report(self, token: Token) -> dict[str, Any]:
        """As `Limiter.report`, from Redis (this process's counters when it is down and the
        failure mode is open)."""
        if time.monotonic() >= self._skip_until:
            try:
                return await self._report(token)
            except self._errors as exc:
                self._failed(exc)
        if self.state.on_state_failure == "closed":
            raise StorageUnavailable(f"shared state is unavailable (Redis: {self.problem})")
        await self.fallback.ready()
        return self.fallback.local.report(token)

    def admit_free(self, token: Token) -> Reservation:
        """Counting uses no quota: rpm and concurrent hold on this process's counters."""
        return self.fallback.local.admit_free(token)

    def shared_health(self) -> SharedHealth:
        return SharedHealth(up=self.problem is None, failures=self.failures,
                            pending=len(self.pending))

    async def _report(self, token: Token) -> dict[str, Any]:
        await self._idle.wait()  # what this process settled is counted first
        return await read_report(self.redis, self.state.prefix, token, self.clock(),
                                 self._calendar)


def _keep(end: float, now: float) -> int:
    """Seconds to keep a period's bucket: until a day after it ends (times from the clock)."""
    return max(1, int(end - now) + 86400)
