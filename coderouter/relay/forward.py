"""The request path after admission: pick targets, forward, fail over, relay, meter usage.

Failover happens on connect errors, first-byte timeouts, 429 and 5xx, and a rejected key (401,
403); never once a byte has reached the caller. For streams the first upstream chunk is read
before the caller's response starts, so a target that accepts the connection and then stays
silent is still failed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import web

from ..channels import mock
from ..channels.forwarding import steering
from ..channels.pool import Pools, Response, headers_for, url_for
from ..config import Limits, ModelGroup, Rule, Target
from ..dialects import counting, hub
from ..dialects.responses import compaction
from ..errors import (
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from ..estimate import estimate_output_tokens
from ..routing import Health
from ..scrub import Scrubber
from ..sse import (
    COUNTING,
    Dialect,
    EventTooLarge,
    StreamMeter,
    Usage,
    ends_stream,
    error_event,
    usage_from_body,
)
from ..usage import Record

log = logging.getLogger("coderouter.relay.forward")

#: The longest an upstream's ``Retry-After`` may cool a key (a bogus 99999999 would be years).
MAX_RETRY_AFTER = 600.0
#: The error of a request or stream ended by a graceful stop.
SHUTTING_DOWN = "server shutting down"
#: Statuses of a request that ended while an upstream had it: the caller left, the gateway
#: stopped.
_LEFT_WAITING = frozenset({499, 503})
_INJECTS_USAGE: frozenset[Dialect] = frozenset({"chat", "completions"})
#: Upstream dialects whose model is in the URL, never in the body.
_MODEL_IN_URL: frozenset[Dialect] = frozenset({"gemini", "gemini_count"})
_STREAM_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8",
                   "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StreamConverter(Protocol):
    """Turns complete upstream SSE events into the caller's dialect."""

    def feed(self, events: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def error_event(self, message: str, code: str) -> bytes:
        """The caller-dialect events that end the stream with an error after what was sent."""
        ...


class Conversion(Protocol):
    """Serves a caller dialect from a channel that speaks another one."""

    upstream: Dialect

    def request(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    def response(self, body: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """The caller's answer for the upstream's *body*; *payload* is the caller's request."""
        ...

    def stream(self, payload: dict[str, Any]) -> StreamConverter: ...

    def error(self, status: int, body: bytes) -> bytes: ...




@dataclass(slots=True, eq=False)
class Exchange:
    """One caller request on its way through: what was asked and what happened."""

    request: web.Request
    dialect: Dialect
    payload: dict[str, Any]
    route: ModelGroup
    record: Record
    #: The prompt's token estimate (`estimate.scan_body`), taken once when the body was read.
    prompt_estimate: int = 0
    #: The conversation this request belongs to (`sessions.session_key`), for sticky routing.
    session: str | None = None
    #: The group's rule this request met (`rules.first_rule`): its targets serve it.
    rule: Rule | None = None
    #: The answer length the caller asked for (max_tokens and its kin), 0 when unsaid.
    output_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    usage: Usage | None = None
    estimated: bool = False
    meter: StreamMeter | None = None
    #: The event that ends the caller's stream was written: whatever happens after (the
    #: caller hangs up, the upstream lingers), the caller got its whole answer.
    delivered: bool = False
    #: The caller's body as it came, forwarded untouched when its dialect passes through
    #: without a model in the body (Gemini: the model is in the URL).
    raw: bytes | None = None
    #: The timeout that ends this exchange early: the request's, then the stream's idle gap.
    scope: asyncio.Timeout | None = None
    #: Set by `stop`: the gateway is shutting down and this exchange must end now.
    stopping: bool = False
    #: The request's config generation's secrets, replaced in every upstream byte relayed.
    scrubber: Scrubber = field(default_factory=lambda: Scrubber(()))
    #: The request's config generation's limits (answer and event sizes, write timeout).
    limits: Limits = field(default_factory=Limits)

    @property
    def stream(self) -> bool:
        return self.payload.get("stream") is True

    def stop(self) -> None:
        """End now (graceful stop): a waiting request gets 503, a stream its error event."""
        self.stopping = True
        if self.scope is not None:
            with contextlib.suppress(RuntimeError):  # already expired or exited: ending anyway
                self.scope.reschedule(asyncio.get_running_loop().time())

    def settle(self) -> None:
        """Put usage and cost in the row: the upstream's, else an estimate, else none.

        A stream cut short is estimated from its prompt and events. A request an upstream took
        but that ended before any answer because the caller left (499) or the gateway stopped
        (503) is charged its prompt estimate: the upstream bills it all the same, so hanging
        up must not make a request free.
        """
        usage = self.usage
        record = self.record
        if usage is None and self.meter is not None:
            usage = Usage(self.prompt_estimate, max(0, self.meter.events - 3))
            self.estimated = True
        elif usage is None and record.attempts and record.status in _LEFT_WAITING:
            usage = Usage(self.prompt_estimate, 0)
            self.estimated = True
        if usage is None:
            return
        record.prompt_tokens, record.completion_tokens = usage.prompt, usage.completion
        record.total_tokens, record.cached_tokens = usage.total, usage.cached
        record.usage_source = "estimated" if self.estimated else "upstream"
        price = self.route.price
        if price is not None:
            record.cost = round(price.cost(usage.prompt, usage.completion, usage.cached), 10)


#: Where each upstream dialect's request asks for reasoning (Gemini's is nested).
_REASONING_FIELDS = ("reasoning_effort", "reasoning", "thinking")


def drop_reasoning(body: dict[str, Any]) -> None:
    """Take every reasoning setting and replayed reasoning text out of a translated request,
    for a model group whose models have none (``reasoning: false``): an upstream model without
    reasoning may refuse them with a 400."""
    for key in _REASONING_FIELDS:
        body.pop(key, None)
    config = body.get("generationConfig")
    if isinstance(config, dict):
        config.pop("thinkingConfig", None)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                message.pop("reasoning_content", None)


class _Failed(Exception):
    """An attempt failed in a way another key or target may fix."""

    def __init__(self, error: GatewayError, *, key: bool = False,
                 cooldown: float | None = None, too_long: web.Response | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.key = key  # the channel's key was refused: cool the key, not the target
        self.cooldown = cooldown
        #: The prompt did not fit the model's context: the caller's answer, when no target
        #: with a larger ``max_context`` is left to try.
        self.too_long = too_long


#: How upstreams word a prompt longer than the model's context window (lowercased).
_CONTEXT_TOO_LONG = (
    "context_length_exceeded", "maximum context length", "context window",
    "prompt is too long", "input is too long", "exceeds the maximum number of tokens",
    "too many tokens", "reduce the length", "model_context_window_exceeded")


def context_too_long(status: int, body: bytes) -> bool:
    """Whether an upstream refusal says the prompt is longer than the model's context."""
    if status not in (400, 413, 422):
        return False
    text = body[:4096].lower()
    return any(phrase.encode() in text for phrase in _CONTEXT_TOO_LONG)


def fitting(targets: tuple[Target, ...], prompt: int, output: int) -> tuple[Target, ...]:
    """The *targets* whose ``max_context`` and ``max_output`` take the request."""
    return tuple(t for t in targets
                 if (t.max_context is None or prompt <= t.max_context)
                 and (t.max_output is None or output <= t.max_output))


class _Refusal(GatewayError):
    """An upstream's own 4xx, kept to hand back when failing over did not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def plan_for(dialect: Dialect, target: Target) -> Conversion | bool:
    """True when *target*'s channel speaks *dialect*, its Conversion, or False."""
    native = hub.dialects_of(target.channel)
    if dialect in native:
        return True
    return hub.bridge(dialect, tuple(native)) or counting.bridge(dialect, tuple(native)) \
        or False


class Forwarder:
    """Sends exchanges upstream with failover; one per app, shared by every request.

    *on_attempt(target, kind)* is called before each upstream attempt: kind is ``first`` for a
    request's first attempt, ``retry`` for another key of the same target, ``failover`` for the
    first attempt on a further target.
    """

    def __init__(self, pools: Pools, health: Health,
                 on_attempt: Callable[[Target, str], None] | None = None) -> None:
        self.pools = pools
        self.health = health
        self.on_attempt = on_attempt

    async def forward(self, ex: Exchange) -> web.StreamResponse:
        """Answer *ex* from the first target that works, within the route's attempts."""
        route, record, rule = ex.route, ex.record, ex.rule
        attempts = route.attempts
        failure: GatewayError | None = None
        targets = rule.targets if rule is not None else route.targets
        scope = route.name if rule is None else f"{route.name}#{rule.name}"
        fit = fitting(targets, ex.prompt_estimate, ex.output_tokens)
        if not fit and ex.dialect not in COUNTING:
            largest = max(t.max_context or 0 for t in targets)
            raise InvalidRequest(
                f"the request (about {ex.prompt_estimate} prompt tokens, {ex.output_tokens} "
                f"output) fits no target of '{route.name}' (the largest context is {largest})")
        candidates = [(t, p) for t in self.health.plan(route, ex.session, fit or targets, scope)
                      if (p := plan_for(ex.dialect, t)) is not False]
        if not candidates and ex.dialect in COUNTING:
            return self._count_locally(ex)
        if not candidates:
            raise UpstreamError(f"no enabled channel serves '{route.name}' on this endpoint")
        too_long: web.Response | None = None  # the last context-length refusal
        longer_than = -1  # after one, only targets with a larger max_context are tried
        for target, conversion in candidates:
            if attempts == 0:
                break
            if (target.max_context or 0) <= longer_than:
                continue
            if not self.health.acquire(target):
                continue
            channel = target.channel
            record.channel, record.upstream_model = channel.name, target.model
            settled = False
            kind = "failover" if record.attempts else "first"
            try:
                while attempts:
                    key = "" if channel.type == "mock" else self.health.next_key(
                        channel, self.health.pinned_key(scope, ex.session, target))
                    if key is None:
                        break
                    attempts -= 1
                    record.attempts += 1
                    if self.on_attempt:
                        self.on_attempt(target, kind)
                    kind = "retry"
                    try:
                        with self.pools.lease(channel.name):
                            response = await self._attempt(
                                ex, target, key, conversion if conversion is not True else None)
                    except _Failed as failed:
                        failure = failed.error
                        record.error = f"{channel.name}: {failed.error.message}"
                        if failed.too_long is not None:
                            too_long, longer_than = failed.too_long, target.max_context or 0
                            break  # not the target's fault: no cooldown
                        if failed.key:
                            self.health.key_failed(channel, key,
                                                   failed.cooldown or route.cooldown)
                            continue
                        self.health.failed(target, route.cooldown)
                        settled = True
                        break
                    self.health.served(route, ex.session, target, key, scope)
                    settled = True
                    return response
            finally:
                if not settled:
                    self.health.release(target)
        if too_long is not None and isinstance(failure, _Refusal):
            return too_long  # no larger context to fail over to: the upstream's own answer
        if failure is None:
            wait = self.health.retry_in([t for t, _ in candidates])
            raise UpstreamError(
                f"every target of '{route.name}' is cooling down after failures; "
                f"retry in {max(1, round(wait))}s",
                headers={"Retry-After": str(max(1, round(wait)))})
        raise type(failure)(f"{failure.message} (after {record.attempts} attempts)")

    def _count_locally(self, ex: Exchange) -> web.Response:
        """count_tokens (countTokens) with no Anthropic (Gemini) target: answer an estimate,
        which uses no tokens."""
        ex.usage, ex.estimated = Usage(), True
        ex.record.status = 200
        ex.record.ttfb_ms = (time.monotonic() - ex.started) * 1000
        tokens = ex.prompt_estimate
        answer = {"totalTokens": tokens} if ex.dialect == "gemini_count" \
            else {"input_tokens": tokens}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def _attempt(self, ex: Exchange, target: Target, key: str,
                       conversion: Conversion | None) -> web.StreamResponse:
        channel = target.channel
        conversion = compacting(ex, channel.type, conversion)
        dialect = conversion.upstream if conversion else ex.dialect
        # a codec encoding for the upstream decides by the model it will reach
        body = conversion.request({**ex.payload, "model": target.model}) if conversion \
            else dict(ex.payload)
        if conversion and not ex.route.reasoning:
            drop_reasoning(body)
        if ex.session is not None and "prompt_cache_key" not in body \
                and _takes_cache_key(channel.base_url, dialect):
            body["prompt_cache_key"] = ex.session  # keeps the upstream's prompt cache warm
        injected = False
        if dialect in _MODEL_IN_URL:
            # as it came, unless it names the model inside (countTokens' generateContentRequest)
            untouched = ex.raw is not None and not conversion \
                and "generateContentRequest" not in body
            data = ex.raw if untouched else orjson.dumps(gemini_body(body, target.model))
        else:
            body["model"] = target.model
            if ex.stream and dialect in _INJECTS_USAGE:
                options = body.get("stream_options")
                options = dict(options) if isinstance(options, dict) else {}
                injected = options.get("include_usage") is not True
                options["include_usage"] = True
                body["stream_options"] = options
            data = orjson.dumps(body)
        timeout = channel.timeout
        deadline = asyncio.get_running_loop().time() + timeout.first_byte
        upstream: Response
        try:
            async with asyncio.timeout_at(deadline):
                if channel.type == "mock":
                    upstream = mock.respond(dialect, body)
                else:
                    request = ex.request
                    upstream = await self.pools.post(
                        channel,
                        # a caller's query string belongs to its API, not a translated one
                        url_for(channel, dialect, target.model,
                                "" if conversion else request.query_string, ex.stream),
                        data=data,
                        headers=headers_for(channel, key, request.headers.items(),
                                            ex.record.request_id, ex.dialect),
                        allow_redirects=False,  # a redirect would re-send the key elsewhere
                        timeout=aiohttp.ClientTimeout(total=None,
                                                      sock_connect=timeout.connect))
        except TimeoutError:
            raise _Failed(UpstreamTimeout(
                f"upstream did not answer within {timeout.first_byte:g}s")) from None
        except aiohttp.ClientError as exc:
            raise _Failed(UpstreamError(f"upstream connection failed: {type(exc).__name__}")) \
                from None
        try:
            if upstream.status >= 400:
                return await self._refused(ex, upstream, timeout.idle, conversion,
                                           channel.forward_headers)
            if upstream.status >= 300:
                raise _Failed(UpstreamError(
                    f"upstream answered a redirect ({upstream.status}); redirects are not "
                    "followed"))
            if ex.stream and upstream.content_type == "text/event-stream":
                return await self._relay_stream(ex, upstream, deadline, timeout.idle, dialect,
                                                injected, conversion)
            return await self._relay_body(ex, upstream, timeout.idle, dialect, conversion)
        finally:
            upstream.close()

    async def _refused(self, ex: Exchange, upstream: Response, idle: float,
                       conversion: Conversion | None,
                       extra: tuple[str, ...] = ()) -> web.Response:
        """An upstream 4xx/5xx: fail over, or hand the caller its own error.

        A 401/403 cools the key, unless the request carried a caller header that only the
        channel's *extra* ``forward_headers`` let through (an organisation or project the key
        does not belong to): then it is the caller's error, and the key stays in service.
        """
        status = upstream.status
        try:
            async with asyncio.timeout(idle):
                body = await read_capped(upstream, ex.limits.max_response)
        except (TimeoutError, aiohttp.ClientError):
            body = b""
        body = ex.scrubber.clean(body)
        steered = steering(extra, ex.request.headers.items()) if status in (401, 403) else []
        if status in (401, 403) and not steered:
            raise _Failed(UpstreamError(f"upstream refused the channel key ({status})"), key=True)
        if status == 429:
            retry_after = retry_after_seconds(getattr(upstream, "headers", {}).get("Retry-After"))
            raise _Failed(UpstreamError("upstream rate limit (429)"), key=True,
                          cooldown=retry_after)
        if status >= 500 or status == 408:
            raise _Failed(UpstreamError(f"upstream answered {status}"))
        ex.record.status = status
        ex.record.error = f"upstream answered {status}" + (
            f" to the caller's {', '.join(steered)}" if steered else "")
        too_long = context_too_long(status, body)
        content_type = upstream.content_type or "application/json"
        if conversion:
            body = ex.scrubber.clean(conversion.error(status, body))
            content_type = "application/json"
        answer = web.Response(status=status, body=body, content_type=content_type)
        if too_long:
            raise _Failed(_Refusal(f"upstream answered {status}: the prompt is longer than "
                                   "the model's context", status), too_long=answer)
        return answer

    async def _relay_body(self, ex: Exchange, upstream: Response, idle: float, dialect: Dialect,
                          conversion: Conversion | None) -> web.Response:
        try:
            async with asyncio.timeout(idle):
                body = await read_capped(upstream, ex.limits.max_response)
        except TimeoutError:
            raise _Failed(UpstreamTimeout("upstream stalled while sending its answer")) from None
        except aiohttp.ClientError:
            raise _Failed(UpstreamError("upstream connection lost mid-answer")) from None
        body = ex.scrubber.clean(body)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Failed(UpstreamError("upstream answered with invalid JSON")) from None
        ex.usage = usage_from_body(dialect, obj)
        if ex.usage is None:
            ex.usage = Usage(ex.prompt_estimate, estimate_output_tokens(obj))
            ex.estimated = True
        if conversion:
            body = ex.scrubber.clean(orjson.dumps(conversion.response(obj, ex.payload)))
        ex.record.status = 200
        ex.record.ttfb_ms = (time.monotonic() - ex.started) * 1000
        return web.Response(body=body, content_type="application/json")

    async def _relay_stream(self, ex: Exchange, upstream: Any, deadline: float, idle: float,
                            dialect: Dialect, injected: bool,
                            conversion: Conversion | None) -> web.StreamResponse:
        read = upstream.content.readany
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await read()
        except TimeoutError:
            raise _Failed(UpstreamTimeout("upstream sent no stream data in time")) from None
        except aiohttp.ClientError:
            raise _Failed(UpstreamError("upstream connection lost before streaming")) from None
        if not chunk:
            raise _Failed(UpstreamError("upstream ended the stream before sending anything"))

        limits = ex.limits
        meter = ex.meter = StreamMeter(dialect, hide_usage=injected and conversion is None,
                                       max_event=limits.max_event)
        convert = conversion.stream(ex.payload) if conversion else None
        record = ex.record
        clean = ex.scrubber.clean
        response = web.StreamResponse(headers=_STREAM_HEADERS)
        await response.prepare(ex.request)
        record.ttfb_ms = (time.monotonic() - ex.started) * 1000
        record.status = 200
        failure: GatewayError | None = None
        loop = asyncio.get_running_loop()
        clock: _StreamClock | None = None
        try:
            async with asyncio.timeout(None) as gap:
                ex.scope = gap
                clock = _StreamClock(loop, gap, idle, limits.write_timeout)
                while chunk:
                    progress = meter.progress
                    data = meter.feed(chunk)  # whole events only: a secret is never split
                    if data:
                        data = clean(data)
                        if convert:
                            data = clean(convert.feed(data))
                    if data:
                        clock.writing_since = loop.time()
                        await response.write(data)
                        clock.writing_since = 0.0
                        ex.delivered = ex.delivered or ends_stream(ex.dialect, data)
                    if meter.progress != progress:
                        clock.progress_at = loop.time()
                    chunk = await read()
            clock.stop()
            async with asyncio.timeout(limits.write_timeout):
                tail = clean(meter.flush())
                if convert:
                    tail = clean(convert.feed(tail) + convert.finish()) if meter.done else b""
                if tail:
                    await response.write(tail)
                    ex.delivered = ex.delivered or ends_stream(ex.dialect, tail)
            if not meter.done:
                failure = UpstreamError("upstream closed the stream before it was complete")
        except TimeoutError:
            if ex.stopping:
                failure = ServiceUnavailable(SHUTTING_DOWN)
            elif clock is None or clock.expired != "caller":
                failure = UpstreamTimeout(f"upstream stream stalled for more than {idle:g}s")
            else:
                record.status = 499
                record.error = f"client did not read the stream for {limits.write_timeout:g}s"
        except aiohttp.ClientPayloadError:
            failure = UpstreamError("upstream connection lost mid-stream")
        except ConnectionResetError:
            if not ex.delivered:
                record.status, record.error = 499, "client disconnected"
        except EventTooLarge as exc:
            failure = UpstreamError(str(exc))
        except GatewayError as exc:  # a converter met an upstream error event
            failure = exc
        except Exception as exc:  # a converter that meets an upstream it cannot read
            log.exception("stream relay failed")
            failure = UpstreamError(f"stream relay failed: {type(exc).__name__}")
        finally:
            if clock is not None:
                clock.stop()
            ex.usage = meter.usage  # also when the caller's leaving cancels the relay
        if failure is not None and ex.delivered:
            log.info("after the caller's stream ended: %s", failure.message)
        elif failure is not None:
            message = ex.scrubber.clean_text(failure.message)
            record.status, record.error = failure.status, message
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                async with asyncio.timeout(limits.write_timeout):
                    await response.write(clean(convert.error_event(message, failure.code))
                                         if convert else
                                         error_event(ex.dialect, message, failure.code))
        return response


def compacting(ex: Exchange, channel_type: str,
               conversion: Conversion | None) -> Conversion | None:
    """A `compaction.Compactor` for Codex's compaction request on a channel that cannot
    compact (a translated one, the mock); else *conversion* (a Responses API compacts)."""
    if ex.dialect != "responses" or not compaction.is_trigger(ex.payload) or (
            conversion is None and channel_type != "mock"):
        return conversion
    # the protocols differ only in how narrowly they name the upstream's dialect
    return compaction.Compactor(conversion, hub.sealer())  # type: ignore[arg-type,return-value]


def _takes_cache_key(base_url: str, dialect: Dialect) -> bool:
    """Whether the upstream reads ``prompt_cache_key``: any Responses API, and OpenAI's own
    Chat Completions (other Chat servers may refuse a field they do not know)."""
    return dialect == "responses" or (dialect == "chat" and "//api.openai.com" in base_url)


def gemini_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A Gemini upstream's body: without the ``model`` and ``stream`` the gateway keeps beside
    a Gemini caller's request; a countTokens ``generateContentRequest`` names *model*."""
    out = {k: v for k, v in body.items() if k not in ("model", "stream")}
    inner = out.get("generateContentRequest")
    if isinstance(inner, dict):
        out["generateContentRequest"] = {**inner, "model": f"models/{model}"}
    return out


class _StreamClock:
    """The deadlines of a relayed stream, with no timer per chunk.

    Waiting on the upstream may last *idle* seconds since the last chunk that completed an
    event (a trickle that never completes one does not extend it); a write to the caller may
    last *write* seconds. The loop only stamps ``progress_at`` and ``writing_since``; one timer,
    re-armed lazily when it fires early (at most every ``min(idle, write)`` seconds, as a write
    may start at any time), expires *scope* when a deadline has passed and says whose it was in
    ``expired`` (``upstream`` or ``caller``).
    """

    __slots__ = ("_handle", "expired", "idle", "loop", "progress_at", "scope", "step", "write",
                 "writing_since")

    def __init__(self, loop: asyncio.AbstractEventLoop, scope: asyncio.Timeout, idle: float,
                 write: float) -> None:
        self.loop, self.scope, self.idle, self.write = loop, scope, idle, write
        self.step = min(idle, write)
        self.progress_at = loop.time()
        self.writing_since = 0.0
        self.expired: str | None = None
        self._handle: asyncio.TimerHandle | None = loop.call_at(self.progress_at + self.step,
                                                                 self._check)

    def _check(self) -> None:
        writing = self.writing_since
        due = writing + self.write if writing else self.progress_at + self.idle
        now = self.loop.time()
        if now < due:
            self._handle = self.loop.call_at(min(due, now + self.step), self._check)
            return
        self._handle = None
        self.expired = "caller" if writing else "upstream"
        with contextlib.suppress(RuntimeError):  # the scope already ended
            self.scope.reschedule(now)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def read_capped(upstream: Response, limit: int) -> Awaitable[bytes]:
    """The whole upstream body; `UpstreamError` as soon as it passes *limit* bytes (after
    decompression: a small gzip body can inflate to gigabytes).

    A plain body with a Content-Length within *limit* is read as aiohttp reads it (its parser
    stops at that length), with no extra coroutine on the pass-through path.
    """
    headers = getattr(upstream, "headers", None)
    if headers is None:  # the mock: answers from memory
        return upstream.read()
    length = getattr(upstream, "content_length", None)
    if length is not None and "Content-Encoding" not in headers:
        if length > limit:
            raise UpstreamError(f"upstream answer of {length} bytes is over the {limit} byte "
                                "limit")
        return upstream.read()
    return _read_counting(upstream, limit)


async def _read_counting(upstream: Any, limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in upstream.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise UpstreamError(f"upstream answer is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)



def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """An upstream's ``Retry-After`` (seconds or an HTTP date) clamped to
    [0, `MAX_RETRY_AFTER`]; None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
