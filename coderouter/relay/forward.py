"""Planning and failover: which targets serve an exchange, in what order, with which keys.

Failover happens on connect errors, first-byte timeouts, 429 and 5xx, and a rejected key (401,
403); never once a byte has reached the caller. For streams the first upstream chunk is read
before the caller's response starts, so a target that accepts the connection and then stays
silent is still failed over.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from ..channels.pool import Pools
from ..config import Target
from ..config.model import plural
from ..dialects.registry import DIALECTS
from ..errors import GatewayError, InvalidRequest, UpstreamError
from ..routing import Health
from ..sse import COUNTING, Usage
from .attempt import attempt
from .exchange import Exchange
from .failed import Failed, Refusal
from .leg import Conversion, leg_for, plan_for

#: An attempt's span when tracing is off.
_UNTRACED = contextlib.nullcontext()


def fitting(targets: tuple[Target, ...], prompt: int, output: int) -> tuple[Target, ...]:
    """The *targets* whose ``max_context`` and ``max_output`` take the request."""
    return tuple(t for t in targets
                 if (t.max_context is None or prompt <= t.max_context)
                 and (t.max_output is None or output <= t.max_output))


@dataclass(slots=True)
class _Failover:
    """What one exchange's failover has left and has met so far."""

    attempts: int
    scope: str
    failure: GatewayError | None = None
    #: The last context-length refusal; after one, only targets with a larger
    #: ``max_context`` than *longer_than* are tried.
    too_long: web.Response | None = None
    longer_than: int = -1
    #: The failed attempts so far: (target id, unix time, status, error).
    failed: list[tuple[tuple[str, str], float, int, str]] = field(default_factory=list)


class Forwarder:
    """Sends exchanges upstream with failover; one per app, shared by every request.

    *on_attempt(target, kind)* is called before each upstream attempt: kind is ``first`` for a
    request's first attempt, ``retry`` for another key of the same target, ``failover`` for the
    first attempt on a further target.

    Failed attempts are booked on their targets (`Health.failures`), all but the one the
    usage row itself tells (the last, when no target answered).
    """

    def __init__(self, pools: Pools, health: Health,
                 on_attempt: Callable[[Target, str], None] | None = None) -> None:
        self.pools = pools
        self.health = health
        self.on_attempt = on_attempt
        #: Failed attempts per channel name, all of them (the metrics).
        self.failed_attempts: Counter[str] = Counter()

    async def forward(self, ex: Exchange) -> web.StreamResponse:
        """Answer *ex* from the first target that works, within the route's attempts."""
        route, rule = ex.route, ex.rule
        scope = route.name if rule is None else f"{route.name}#{rule.name}"
        candidates = self._plan(ex, scope)
        if not candidates:
            if ex.dialect in COUNTING:
                return _count_locally(ex)
            raise UpstreamError(f"no enabled channel serves '{route.name}' on this endpoint")
        state = _Failover(route.attempts, scope)
        try:
            for target, plan in candidates:
                if state.attempts == 0:
                    break
                if (target.max_context or 0) <= state.longer_than \
                        or not self.health.acquire(target):
                    continue
                response = await self._on_target(ex, target, plan, state)
                if response is not None:
                    return response
            told = (ex.record.channel, ex.record.upstream_model)
            if state.failed and state.failed[-1][0] == told:
                state.failed.pop()  # the usage row tells this one
            return self._exhausted(ex, candidates, state)
        finally:
            for failure in state.failed:
                self.health.failures.add(*failure)

    def _plan(self, ex: Exchange, scope: str) -> list[tuple[Target, Conversion | bool]]:
        """The targets to try in order, each with how it serves the caller's dialect."""
        route = ex.route
        targets = ex.rule.targets if ex.rule is not None else route.targets
        fit = fitting(targets, ex.prompt_estimate, ex.output_tokens)
        if not fit and ex.dialect not in COUNTING:
            largest = max(t.max_context or 0 for t in targets)
            raise InvalidRequest(
                f"the request (about {ex.prompt_estimate} prompt tokens, {ex.output_tokens} "
                f"output) fits no target of '{route.name}' (the largest context is {largest})")
        return [(t, p) for t in self.health.plan(route, ex.pin, fit or targets, scope)
                if (p := plan_for(ex.dialect, t)) is not False]

    async def _on_target(self, ex: Exchange, target: Target, plan: Conversion | bool,
                         state: _Failover) -> web.StreamResponse | None:
        """Try *target*'s keys while attempts are left; its answer, or None to fail over."""
        health, record, channel = self.health, ex.record, target.channel
        record.channel, record.upstream_model = channel.name, target.model
        ex.target = target
        kind = "failover" if record.attempts else "first"
        settled = False
        try:
            leg = leg_for(ex, target, plan)
            while state.attempts:
                key = health.next_key(channel, health.pinned_key(state.scope, ex.pin,
                                                                   target))
                if key is None:
                    break
                state.attempts -= 1
                record.attempts += 1
                if self.on_attempt:
                    self.on_attempt(target, kind)
                traced = ex.trace.attempt(target, kind) if ex.trace is not None else _UNTRACED
                kind = "retry"
                try:
                    with self.pools.lease(channel.name), traced:
                        response = await attempt(self.pools, ex, leg, key)
                except Failed as failed:
                    settled = self._failed(ex, target, key, failed, state)
                    if settled or failed.too_long is not None:
                        return None
                    continue
                health.served(ex.route, ex.pin, target, key, state.scope)
                settled = True
                return response
        finally:
            if not settled:
                health.release(target)
        return None

    def _failed(self, ex: Exchange, target: Target, key: str, failed: Failed,
                state: _Failover) -> bool:
        """Record a failed attempt; whether the target's trial is settled (it failed)."""
        channel, error = target.channel, failed.error
        self.failed_attempts[channel.name] += 1
        state.failure = error
        ex.record.error = f"{channel.name}: {error.message}"
        now = ex.record.ts + time.monotonic() - ex.started
        state.failed.append((target.id, now, error.status, ex.scrubber.clean_text(
            error.message)))
        if failed.too_long is not None:  # not the target's fault: no cooldown
            state.too_long, state.longer_than = failed.too_long, target.max_context or 0
            return False
        if failed.key:
            self.health.key_failed(channel, key, failed.cooldown or ex.route.cooldown,
                                   error.message)
            return False
        self.health.failed(target, ex.route.cooldown, error.message)
        return True

    def _exhausted(self, ex: Exchange, candidates: list[tuple[Target, Conversion | bool]],
                   state: _Failover) -> web.StreamResponse:
        """No target answered: the upstream's own context-length refusal, or the error."""
        failure = state.failure
        if state.too_long is not None and isinstance(failure, Refusal):
            return state.too_long  # no larger context to fail over to: the upstream's answer
        if failure is None:
            wait = max(1, round(self.health.retry_in([t for t, _ in candidates])))
            raise UpstreamError(
                f"every target of '{ex.route.name}' is cooling down after failures; "
                f"retry in {wait}s", headers={"Retry-After": str(wait)})
        raise type(failure)(f"{failure.message} (after {plural(ex.record.attempts, 'attempt')})")


def _count_locally(ex: Exchange) -> web.Response:
    """count_tokens (countTokens) with no Anthropic (Gemini) target: answer an estimate,
    which uses no tokens."""
    ex.usage, ex.estimated = Usage(), True
    ex.record.status = 200
    ex.record.ttfb_ms = (time.monotonic() - ex.started) * 1000
    answer = DIALECTS[ex.dialect].count_answer(ex.prompt_estimate)
    return web.Response(body=orjson.dumps(answer), content_type="application/json")
