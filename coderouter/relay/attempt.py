"""One attempt: send the leg's call to its channel, read the status, relay the answer.

Any failure another key or target may fix raises `Failed`; the caller's answer otherwise.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time

import aiohttp
from aiohttp import web

from ..channels.forwarding import steering
from ..channels.pool import Pools, Response
from ..errors import UpstreamError, UpstreamTimeout
from .body import read_capped, relay_body
from .exchange import Exchange
from .failed import Failed, Refusal
from .leg import Leg
from .stream import relay_stream

#: The longest an upstream's ``Retry-After`` may cool a key (a bogus 99999999 would be years).
MAX_RETRY_AFTER = 600.0

#: How upstreams word a prompt longer than the model's context window (lowercased).
_CONTEXT_TOO_LONG = (
    "context_length_exceeded", "maximum context length", "context window",
    "prompt is too long", "input is too long", "exceeds the maximum number of tokens",
    "too many tokens", "reduce the length", "model_context_window_exceeded")


async def attempt(pools: Pools, ex: Exchange, leg: Leg, key: str) -> web.StreamResponse:
    """Serve *ex* through *leg* with channel *key*, or raise `Failed`."""
    call = leg.call(key)
    timeout = leg.channel.timeout
    deadline = asyncio.get_running_loop().time() + timeout.first_byte
    try:
        async with asyncio.timeout_at(deadline):
            upstream = await leg.kind.send(pools, call)
    except TimeoutError:
        raise Failed(UpstreamTimeout(
            f"upstream did not answer within {timeout.first_byte:g}s")) from None
    except aiohttp.ClientError as exc:
        raise Failed(UpstreamError(f"upstream connection failed: {type(exc).__name__}")) \
            from None
    try:
        if upstream.status >= 400:
            return await refused(ex, leg, upstream, timeout.idle)
        if upstream.status >= 300:
            raise Failed(UpstreamError(
                f"upstream answered a redirect ({upstream.status}); redirects are not "
                "followed"))
        if ex.stream and upstream.content_type == "text/event-stream":
            return await relay_stream(ex, leg, upstream, deadline, timeout.idle)
        return await relay_body(ex, leg, upstream, timeout.idle)
    finally:
        upstream.close()


async def refused(ex: Exchange, leg: Leg, upstream: Response, idle: float) -> web.Response:
    """An upstream 4xx/5xx: fail over, or hand the caller its own error.

    A 401/403 cools the key, unless the request carried a caller header that only the
    channel's ``forward_headers`` let through (an organisation or project the key does not
    belong to): then it is the caller's error, and the key stays in service.
    """
    status = upstream.status
    try:
        async with asyncio.timeout(idle):
            body = await read_capped(upstream, ex.limits.max_response)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    body = ex.scrubber.clean(body)
    steered = steering(leg.channel.forward_headers, ex.request.headers.items()) \
        if status in (401, 403) else []
    if status in (401, 403) and not steered:
        raise Failed(UpstreamError(f"upstream refused the channel key ({status})"), key=True)
    if status == 429:
        raise Failed(UpstreamError("upstream rate limit (429)"), key=True,
                     cooldown=retry_after_seconds(upstream.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        raise Failed(UpstreamError(f"upstream answered {status}"))
    ex.record.status = status
    ex.record.error = f"upstream answered {status}" + (
        f" to the caller's {', '.join(steered)}" if steered else "")
    answer, content_type = leg.error(status, body, upstream.content_type or "application/json")
    response = web.Response(status=status, body=answer, content_type=content_type)
    if context_too_long(status, body):
        raise Failed(Refusal(f"upstream answered {status}: the prompt is longer than the "
                             "model's context", status), too_long=response)
    return response


def context_too_long(status: int, body: bytes) -> bool:
    """Whether an upstream refusal says the prompt is longer than the model's context."""
    if status not in (400, 413, 422):
        return False
    text = body[:4096].lower()
    return any(phrase.encode() in text for phrase in _CONTEXT_TOO_LONG)


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
