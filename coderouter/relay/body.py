"""Relaying a whole (non-stream) answer: read it within its size cap, meter its usage, hand
the caller its leg's answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..channels.pool import Response
from ..errors import GatewayError, UpstreamError, UpstreamTimeout
from ..estimate import estimate_output_tokens
from ..sse import Usage, usage_from_body
from .exchange import Exchange
from .failed import Failed
from .leg import Leg


async def relay_body(ex: Exchange, leg: Leg, upstream: Response, idle: float) -> web.Response:
    """The caller's answer from the upstream's whole body, read within *idle* seconds."""
    try:
        if upstream.content.is_eof():  # all of it came with the head: no wait, no timer
            raw = await read_capped(upstream, ex.limits.max_response)
        else:
            async with asyncio.timeout(idle):
                raw = await read_capped(upstream, ex.limits.max_response)
    except TimeoutError:
        raise Failed(UpstreamTimeout("upstream stalled while sending its answer")) from None
    except aiohttp.ClientError:
        raise Failed(UpstreamError("upstream connection lost mid-answer")) from None
    raw = ex.scrubber.clean(raw)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Failed(UpstreamError("upstream answered with invalid JSON")) from None
    ex.usage = usage_from_body(leg.upstream, obj)  # type: ignore[arg-type]
    if ex.usage is None:
        ex.usage = Usage(ex.prompt_estimate, estimate_output_tokens(obj))
        ex.estimated = True
    body = leg.answer(raw, obj)
    ex.record.status = 200
    ex.record.ttfb_ms = (time.monotonic() - ex.started) * 1000
    return web.Response(body=body, content_type="application/json")


def read_capped(upstream: Response, limit: int) -> Awaitable[bytes]:
    """The whole upstream body; `UpstreamError` as soon as it passes *limit* bytes (after
    decompression: a small gzip body can inflate to gigabytes).

    A plain body with a Content-Length within *limit* is read as aiohttp reads it (its parser
    stops at that length), with no extra coroutine on the pass-through path.
    """
    length = upstream.content_length
    if length is not None and "Content-Encoding" not in upstream.headers:
        if length > limit:
            raise UpstreamError(f"upstream answer of {length} bytes is over the {limit} byte "
                                "limit")
        return upstream.read()
    return read_at_most(upstream.content, limit, UpstreamError, "upstream answer")


async def read_at_most(content: Any, limit: int, error: type[GatewayError], what: str) -> bytes:
    """All of *content* (a stream with ``iter_any``: a caller's body or an upstream's answer);
    *error* as soon as it passes *limit* bytes."""
    chunks = []
    size = 0
    async for chunk in content.iter_any():
        size += len(chunk)
        if size > limit:
            raise error(f"{what} is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
