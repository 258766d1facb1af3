"""A real fake upstream: an aiohttp app speaking the OpenAI wire format on loopback.

It records every request it receives (method, path, query, headers, exact body bytes) and
answers each one by the next queued `Behaviour`, or the default: a well-formed answer whose
text is ``WORDS``, streamed one word per SSE event when asked to stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

WORDS = ["Hello", " from", " upstream", "!"]
USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
         "prompt_tokens_details": {"cached_tokens": 3}}
CREATED = 1_700_000_000


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Behaviour:
    status: int = 200
    body: bytes | None = None           # answer these exact bytes instead
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0                  # before the response headers
    hold: asyncio.Event | None = None   # wait for this event before the response headers
    chunk_delay: float = 0.0            # between stream events
    first_chunk_delay: float = 0.0      # after the headers, before the first event
    usage: bool = True                  # report usage (in the body, or when asked on streams)
    cut_after: int | None = None        # close the connection after this many events
    stall_after: int | None = None      # go silent after this many events
    done: bool = True                   # end the stream with its terminal event
    parts: list[bytes] | None = None    # stream exactly these bytes, one write each
    pause: asyncio.Event | None = None  # streams: wait for this event after the first one


class FakeClock:
    """A settable clock: ``clock.now`` is what the limiter (or the gateway) sees."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeUpstream:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.queue: deque[Behaviour] = deque()
        self.default = Behaviour()
        self.in_flight = 0
        self.cancelled = 0
        self.url = ""  # set once served: http://127.0.0.1:PORT/v1
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    def then(self, **kwargs: Any) -> FakeUpstream:
        """Answer the next request so (in the order queued)."""
        self.queue.append(Behaviour(**kwargs))
        return self

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, request.query_string,
                              request.headers, body))
        how = self.queue.popleft() if self.queue else self.default
        self.in_flight += 1
        try:
            if how.hold is not None:
                await how.hold.wait()
            if how.delay:
                await asyncio.sleep(how.delay)
            if how.body is not None or how.status != 200:
                return web.Response(status=how.status, headers=how.headers,
                                    body=how.body if how.body is not None else orjson.dumps(
                                        {"error": {"message": "fake failure", "type": "x"}}),
                                    content_type=how.content_type or "application/json")
            payload = orjson.loads(body) if body else {}
            if payload.get("stream"):
                return await self.stream(request, payload, how)
            return web.Response(body=orjson.dumps(self.answer(request.path, payload, how)),
                                content_type="application/json", headers=how.headers)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    def answer(self, path: str, payload: dict[str, Any], how: Behaviour) -> dict[str, Any]:
        model = payload.get("model")
        text = "".join(WORDS)
        if path.endswith("/embeddings"):
            out: dict[str, Any] = {"object": "list", "model": model, "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}]}
            if how.usage:
                out["usage"] = {"prompt_tokens": 3, "total_tokens": 3}
            return out
        if path.endswith("/responses"):
            out = {"id": "resp_1", "object": "response", "created_at": CREATED,
                   "status": "completed", "model": model, "output": [
                       {"id": "msg_1", "type": "message", "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}]}
            if how.usage:
                out["usage"] = {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15,
                                "input_tokens_details": {"cached_tokens": 3},
                                "output_tokens_details": {"reasoning_tokens": 0}}
            return out
        if path.endswith("/completions") and not path.endswith("/chat/completions"):
            out = {"id": "cmpl-1", "object": "text_completion", "created": CREATED,
                   "model": model, "choices": [
                       {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}]}
        else:
            out = {"id": "chatcmpl-1", "object": "chat.completion", "created": CREATED,
                   "model": model, "choices": [{
                       "index": 0, "message": {"role": "assistant", "content": text},
                       "logprobs": None, "finish_reason": "stop"}]}
        if how.usage:
            out["usage"] = USAGE
        return out

    async def stream(self, request: web.Request, payload: dict[str, Any],
                     how: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **how.headers})
        await response.prepare(request)
        if how.first_chunk_delay:
            await asyncio.sleep(how.first_chunk_delay)
        events = how.parts or stream_events(request.path, payload, how)
        for n, event in enumerate(events):
            if how.cut_after is not None and n == how.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            if how.stall_after is not None and n == how.stall_after:
                await asyncio.sleep(3600)
            if n and how.chunk_delay:
                await asyncio.sleep(how.chunk_delay)
            if n == 1 and how.pause is not None:
                await how.pause.wait()
            await response.write(event)
        await response.write_eof()
        return response


def chat_chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": CREATED,
           "model": "upstream-model", "choices": choices, **extra}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def stream_events(path: str, payload: dict[str, Any], how: Behaviour) -> list[bytes]:
    """The exact events an OpenAI upstream sends for *payload*."""
    options = payload.get("stream_options") or {}
    with_usage = how.usage and options.get("include_usage") is True
    if path.endswith("/responses"):
        return responses_events(how)
    null_usage = {"usage": None} if with_usage else {}
    events = [chat_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                           "finish_reason": None}], **null_usage)]
    events += [chat_chunk([{"index": 0, "delta": {"content": w}, "finish_reason": None}],
                          **null_usage) for w in WORDS]
    events.append(chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}],
                             **null_usage))
    if with_usage:
        events.append(chat_chunk([], usage=USAGE))
    if how.done:
        events.append(b"data: [DONE]\n\n")
    return events


def responses_events(how: Behaviour) -> list[bytes]:
    def event(name: str, **data: Any) -> bytes:
        return (f"event: {name}\n".encode() + b"data: "
                + orjson.dumps({"type": name, **data}) + b"\n\n")

    base = {"id": "resp_1", "object": "response", "created_at": CREATED, "model": "m"}
    usage = {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15,
             "input_tokens_details": {"cached_tokens": 3},
             "output_tokens_details": {"reasoning_tokens": 0}} if how.usage else None
    events = [event("response.created", response={**base, "status": "in_progress",
                                                   "output": [], "usage": None})]
    events += [event("response.output_text.delta", item_id="msg_1", output_index=0,
                     content_index=0, delta=w) for w in WORDS]
    if how.done:
        events.append(event("response.completed", response={
            **base, "status": "completed", "output": [], "usage": usage}))
    return events
