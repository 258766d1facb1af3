"""Relaying a stream: the first upstream chunk before the caller's response starts, then
complete events as they come, under one idle/write clock; a failure after the first byte ends
the caller's stream with its dialect's error event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from ..errors import GatewayError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from ..sse import EventTooLarge, StreamMeter, ends_stream
from .exchange import SHUTTING_DOWN, Exchange
from .failed import Failed
from .leg import CallerStream, Leg

log = logging.getLogger("coderouter.relay.stream")

#: Where a request's stream is written when not to its own HTTP response (a WebSocket's
#: frames: `websocket`): a factory of the response the relay prepares and writes to.
STREAM_SINK: web.RequestKey[Callable[[], web.StreamResponse]] = web.RequestKey("stream_sink")

_STREAM_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8",
                   "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def relay_stream(ex: Exchange, leg: Leg, upstream: Any, deadline: float,
                       idle: float) -> web.StreamResponse:
    """Relay *upstream*'s stream to the caller; its first chunk must come before *deadline*
    (else another target is tried), then a gap of *idle* seconds ends it."""
    first = await _first_chunk(upstream, deadline)
    limits = ex.limits
    meter = ex.meter = StreamMeter(leg.upstream, hide_usage=leg.hide_usage,  # type: ignore[arg-type]
                                   max_event=limits.max_event)
    caller = leg.stream()
    sink = ex.request.get(STREAM_SINK)
    response = web.StreamResponse(headers=_STREAM_HEADERS) if sink is None else sink()
    await response.prepare(ex.request)
    record = ex.record
    record.ttfb_ms = (time.monotonic() - ex.started) * 1000
    record.status = 200
    clock: _StreamClock | None = None
    try:
        async with asyncio.timeout(None) as gap:
            ex.scope = gap
            clock = _StreamClock(asyncio.get_running_loop(), gap, idle, limits.write_timeout)
            await _pump(ex, first, upstream.content.readany, meter, caller, response, clock)
        clock.stop()
        tail = caller.end(meter.flush(), meter.done)
        if tail:  # a pass-through stream has usually relayed its end already: no timer then
            async with asyncio.timeout(limits.write_timeout):
                await response.write(tail)
            if ex.capture is not None:
                ex.capture.add(tail)
            ex.delivered = ex.delivered or ends_stream(ex.dialect, tail)
        failure: GatewayError | None = None if meter.done else \
            UpstreamError("upstream closed the stream before it was complete")
    except BaseException as exc:  # every way a stream ends is recorded (or raised again)
        failure = _stream_failure(ex, exc, clock, idle)
    finally:
        if clock is not None:
            clock.stop()
        ex.usage = meter.usage  # also when the caller's leaving cancels the relay
    if failure is not None and ex.delivered:
        log.info("after the caller's stream ended: %s", failure.message)
    elif failure is not None:
        await _end_with_error(ex, caller, response, failure)
    return response


async def _first_chunk(upstream: Any, deadline: float) -> bytes:
    """The upstream's first stream bytes before *deadline*; else the attempt failed."""
    try:
        async with asyncio.timeout_at(deadline):
            chunk: bytes = await upstream.content.readany()
    except TimeoutError:
        raise Failed(UpstreamTimeout("upstream sent no stream data in time")) from None
    except aiohttp.ClientError:
        raise Failed(UpstreamError("upstream connection lost before streaming")) from None
    if not chunk:
        raise Failed(UpstreamError("upstream ended the stream before sending anything"))
    return chunk


async def _pump(ex: Exchange, chunk: bytes, read: Any, meter: StreamMeter,
                caller: CallerStream, response: web.StreamResponse, clock: _StreamClock) -> None:
    """Write the caller's bytes of each upstream chunk until the upstream ends."""
    loop = clock.loop
    while chunk:
        progress = meter.progress
        data = meter.feed(chunk)  # whole events only: a secret is never split
        if data:
            data = caller.feed(data)
        if data:
            clock.writing_since = loop.time()
            await response.write(data)
            clock.writing_since = 0.0
            if ex.capture is not None:
                ex.capture.add(data)
            ex.delivered = ex.delivered or ends_stream(ex.dialect, data)
        if meter.progress != progress:
            clock.progress_at = loop.time()
        chunk = await read()


def _stream_failure(ex: Exchange, exc: BaseException, clock: _StreamClock | None,
                    idle: float) -> GatewayError | None:
    """What ended a stream early, for the caller's error event; None when the caller left
    (the row says so); anything else is raised again."""
    record = ex.record
    if isinstance(exc, TimeoutError):
        if ex.stopping:
            return ServiceUnavailable(SHUTTING_DOWN)
        if clock is None or clock.expired != "caller":
            return UpstreamTimeout(f"upstream stream stalled for more than {idle:g}s")
        record.status = 499
        record.error = f"client did not read the stream for {ex.limits.write_timeout:g}s"
        return None
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError("upstream connection lost mid-stream")
    if isinstance(exc, ConnectionResetError):
        if not ex.delivered:
            record.status, record.error = 499, "client disconnected"
        return None
    if isinstance(exc, EventTooLarge):
        return UpstreamError(str(exc))
    if isinstance(exc, GatewayError):  # a converter met an upstream error event
        return exc
    if isinstance(exc, Exception):  # a converter that meets an upstream it cannot read
        log.exception("stream relay failed", exc_info=exc)
        return UpstreamError(f"stream relay failed: {type(exc).__name__}")
    raise exc


async def _end_with_error(ex: Exchange, caller: CallerStream, response: web.StreamResponse,
                          failure: GatewayError) -> None:
    """Record *failure* and end the caller's stream with its error event."""
    failure.message = ex.scrubber.clean_text(failure.message)
    ex.record.status, ex.record.error = failure.status, failure.message
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        async with asyncio.timeout(ex.limits.write_timeout):
            event = caller.error_event(failure)
            if ex.capture is not None:
                ex.capture.add(event)
            await response.write(event)


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
