"""A real fake Anthropic upstream: an aiohttp app speaking the Messages API on loopback.

Answers are shaped as the public API reference shows them, byte for byte as the real service
writes them (compact JSON, ``event:`` and ``data:`` lines, a blank line after each event, and a
``ping`` after the first content block starts). It records every request (`Seen`), and answers
each by the next queued `Reply`, else the default: a tool_use when the request offers tools and
its last turn is not a tool_result, a text answer otherwise.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import Seen

MESSAGE_ID = "msg_01XFDUDYJgAACzvnptvVoYEL"
TOOL_ID = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
TEXT = ["Hello", "!"]
TOOL_TEXT = "Okay, let's check the weather for San Francisco, CA:"
TOOL_JSON = ["", '{"location": "San Fra', 'ncisco, CA"}']
#: Input usage as message_start reports it; message_delta then reports the final output_tokens.
START_USAGE = {"input_tokens": 25, "cache_creation_input_tokens": 7,
               "cache_read_input_tokens": 100, "output_tokens": 1,
               "cache_creation": {"ephemeral_5m_input_tokens": 3,
                                  "ephemeral_1h_input_tokens": 4}}
OUTPUT_TOKENS = 15
COUNTED = 42
WEATHER_TOOL = {"name": "get_weather", "description": "Get the current weather in a location",
                "input_schema": {"type": "object",
                                 "properties": {"location": {"type": "string"}},
                                 "required": ["location"]}}
#: The usage row of one default answer: 25 fresh + 7 cache-creation (3 kept 5 minutes, 4 kept
#: an hour) + 100 cache-read input tokens, 15 output tokens.
ROW_USAGE = {"prompt_tokens": 132, "completion_tokens": OUTPUT_TOKENS, "total_tokens": 147,
             "cached_tokens": 100, "cache_write_5m_tokens": 3, "cache_write_1h_tokens": 4,
             "usage_source": "upstream"}
ERROR = {"type": "error", "error": {"type": "invalid_request_error",
                                    "message": "messages: at least one message is required"}}
#: What an Anthropic-compatible third-party API (DeepSeek, Kimi, GLM, MiniMax) takes: any other
#: field is refused as their validators refuse it, "Extra inputs are not permitted".
COMPATIBLE_FIELDS = frozenset((
    "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking"))
COMPATIBLE_TOOL_FIELDS = frozenset(("name", "description", "input_schema", "cache_control",
                                    "type"))


def extra_input(payload: dict[str, Any]) -> str | None:
    """The first field an Anthropic-compatible third-party API would refuse, or None."""
    for name in payload:
        if name not in COMPATIBLE_FIELDS:
            return name
    for i, tool in enumerate(payload.get("tools") or ()):
        for name in tool:
            if name not in COMPATIBLE_TOOL_FIELDS:
                return f"tools.{i}.{name}"
    return None


def row_usage(row: dict[str, Any]) -> dict[str, Any]:
    """The usage columns of a usage row, to compare with ROW_USAGE."""
    return {k: row[k] for k in ROW_USAGE}


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None        # answer these exact bytes instead
    tool: bool | None = None         # force a tool_use (True) or text (False) answer
    cut_after: int | None = None     # close the connection after this many stream events
    events: list[bytes] | None = None  # stream exactly these events
    hold: asyncio.Event | None = None  # wait for this event before answering
    pause: asyncio.Event | None = None  # streams: wait for this event after the first one


def event(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event as the Messages API writes it."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def _message(model: str, content: list[dict[str, Any]], stop: str | None,
             usage: dict[str, int]) -> dict[str, Any]:
    return {"id": MESSAGE_ID, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def wants_tool(payload: dict[str, Any]) -> bool:
    """Whether the default answer to *payload* is a tool_use."""
    messages = payload.get("messages") or [{}]
    content = messages[-1].get("content")
    answered = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    return bool(payload.get("tools")) and not answered


def message_body(model: str, tool: bool) -> dict[str, Any]:
    """The non-stream answer."""
    usage = {**START_USAGE, "output_tokens": OUTPUT_TOKENS}
    if tool:
        return _message(model, [
            {"type": "text", "text": TOOL_TEXT},
            {"type": "tool_use", "id": TOOL_ID, "name": "get_weather",
             "input": {"location": "San Francisco, CA"}}], "tool_use", usage)
    return _message(model, [{"type": "text", "text": "".join(TEXT)}], "end_turn", usage)


def stream_events(model: str, tool: bool) -> list[bytes]:
    """The stream answer, event by event, as in the Messages streaming reference."""
    events = [event("message_start", {"type": "message_start",
                                      "message": _message(model, [], None, START_USAGE)})]
    if tool:
        events += [
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
            PING,
            event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": TOOL_TEXT}}),
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event("content_block_start", {"type": "content_block_start", "index": 1,
                                          "content_block": {"type": "tool_use", "id": TOOL_ID,
                                                            "name": "get_weather",
                                                            "input": {}}}),
        ]
        events += [event("content_block_delta", {
            "type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": part}}) for part in TOOL_JSON]
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": 1}))
        stop = "tool_use"
    else:
        events += [
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
            PING,
        ]
        events += [event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}) for text in TEXT]
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        stop = "end_turn"
    events += [
        event("message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": OUTPUT_TOKENS}}),
        event("message_stop", {"type": "message_stop"}),
    ]
    return events


class FakeAnthropic:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.queue: deque[Reply] = deque()
        self.url = ""  # set once served: http://127.0.0.1:PORT (no /v1, as the SDK takes it)
        #: Refuse fields beyond `COMPATIBLE_FIELDS`, as third-party Anthropic-compatible APIs do.
        self.strict = False
        self.app = web.Application()
        self.app.router.add_post("/v1/messages", self.messages)
        self.app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    def then(self, **kwargs: Any) -> FakeAnthropic:
        """Answer the next request so (in the order queued)."""
        self.queue.append(Reply(**kwargs))
        return self

    async def _take(self, request: web.Request) -> tuple[dict[str, Any], Reply]:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, request.query_string,
                              request.headers, body))
        how = self.queue.popleft() if self.queue else Reply()
        if how.hold is not None:
            await how.hold.wait()
        return orjson.loads(body), how

    async def count_tokens(self, request: web.Request) -> web.Response:
        _, how = await self._take(request)
        if how.body is not None or how.status != 200:
            return self._error(how)
        return web.Response(body=b'{"input_tokens":%d}' % COUNTED,
                            content_type="application/json")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        payload, how = await self._take(request)
        if how.body is not None or how.status != 200:
            return self._error(how)
        if self.strict and (extra := extra_input(payload)):
            message = f"{extra}: Extra inputs are not permitted"
            return self._error(Reply(status=400, body=orjson.dumps({
                "type": "error", "error": {"type": "invalid_request_error", "message": message}})))
        tool = wants_tool(payload) if how.tool is None else how.tool
        model = payload["model"]
        if not payload.get("stream"):
            return web.Response(body=orjson.dumps(message_body(model, tool)),
                                content_type="application/json")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8",
                     "Cache-Control": "no-cache"})
        await response.prepare(request)
        for n, data in enumerate(how.events or stream_events(model, tool)):
            if how.cut_after is not None and n == how.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            if n == 1 and how.pause is not None:
                await how.pause.wait()
            await response.write(data)
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    @staticmethod
    def _error(how: Reply) -> web.Response:
        return web.Response(status=how.status, content_type="application/json",
                            body=how.body if how.body is not None else orjson.dumps(ERROR))
