"""A stream's row says what the caller got: its end event reached it (200, the upstream's
usage), or it left before (499), whatever the upstream does after.

Codex reads a Responses stream to ``response.completed`` and closes at once, while the
upstream may keep its connection open a moment longer (Gemini after its ``finishReason``
chunk). Every caller dialect is tried on every upstream kind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway

PROMPT, COMPLETION = 21, 5
_DONE = b"data: [DONE]\n\n"


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _data(obj: dict[str, Any], sep: bytes = b"\n\n") -> bytes:
    return b"data: " + orjson.dumps(obj) + sep


def _chat_chunk(choices: list[Any], **extra: Any) -> bytes:
    return _data({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                  "model": "m", "choices": choices, **extra})


_CHAT = (
    _chat_chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hello"},
                  "finish_reason": None}]),
    _chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    + _chat_chunk([], usage={"prompt_tokens": PROMPT, "completion_tokens": COMPLETION,
                             "total_tokens": PROMPT + COMPLETION})
    + _DONE)

_MESSAGES = (
    _sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": PROMPT, "output_tokens": 1}}})
    + _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})
    + _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": "Hello"}}),
    _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    + _sse("message_delta", {"type": "message_delta",
                             "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": COMPLETION}})
    + _sse("message_stop", {"type": "message_stop"}))

_GEMINI = (
    _data({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]},
                           "index": 0}],
           "usageMetadata": {"promptTokenCount": PROMPT, "totalTokenCount": PROMPT},
           "modelVersion": "m", "responseId": "r1"}, b"\r\n\r\n"),
    _data({"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]},
                           "finishReason": "STOP", "index": 0}],
           "usageMetadata": {"promptTokenCount": PROMPT, "candidatesTokenCount": COMPLETION,
                             "totalTokenCount": PROMPT + COMPLETION},
           "modelVersion": "m", "responseId": "r1"}, b"\r\n\r\n"))

_MESSAGE_ITEM = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}


def _response(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": status,
            "model": "m", **extra}


_RESPONSES = (
    _sse("response.created", {"type": "response.created", "sequence_number": 0,
                               "response": _response("in_progress", output=[])})
    + _sse("response.output_item.added", {
        "type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
        "item": {**_MESSAGE_ITEM, "status": "in_progress", "content": []}})
    + _sse("response.content_part.added", {
        "type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1",
        "output_index": 0, "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": []}})
    + _sse("response.output_text.delta", {
        "type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "delta": "Hello"}),
    _sse("response.output_item.done", {"type": "response.output_item.done",
                                       "sequence_number": 4, "output_index": 0,
                                       "item": _MESSAGE_ITEM})
    + _sse("response.completed", {"type": "response.completed", "sequence_number": 5,
                                  "response": _response("completed", output=[_MESSAGE_ITEM],
                                                        usage={
                                                            "input_tokens": PROMPT,
                                                            "output_tokens": COMPLETION,
                                                            "total_tokens": PROMPT + COMPLETION})}))


class LingeringUpstream:
    """Streams a canned answer in each upstream dialect and then keeps the connection open
    until the gateway drops it; with ``stop_short``, it holds before the answer's end."""

    def __init__(self) -> None:
        self.stop_short = False
        self.app = web.Application()
        for path, parts in (("/chat/v1/chat/completions", _CHAT),
                            ("/anthropic/v1/messages", _MESSAGES),
                            ("/gemini/v1beta/models/m:streamGenerateContent", _GEMINI),
                            ("/responses/v1/responses", _RESPONSES)):
            self.app.router.add_post(path, self._serve(parts))

    def _serve(self, parts: tuple[bytes, bytes]) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            await request.read()
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(parts[0])
            if not self.stop_short:
                await response.write(parts[1])
            for _ in range(500):  # until the gateway hangs up (10 s at most)
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.02)
            return response
        return handler


_CHANNELS = {
    "chat": {"type": "openai", "base_url": "/chat/v1", "responses": False},
    "responses": {"type": "openai", "base_url": "/responses/v1", "responses": "only"},
    "anthropic": {"type": "anthropic", "base_url": "/anthropic"},
    "gemini": {"type": "gemini", "base_url": "/gemini"},
}

#: caller dialect -> (path, body, the bytes that end its stream)
_CALLERS: dict[str, tuple[str, dict[str, Any], bytes]] = {
    "chat": ("/v1/chat/completions",
             {"stream": True, "messages": [{"role": "user", "content": "hi"}]}, b"[DONE]"),
    "messages": ("/v1/messages",
                 {"stream": True, "max_tokens": 64,
                  "messages": [{"role": "user", "content": "hi"}]}, b"message_stop"),
    "responses": ("/v1/responses", {"stream": True, "input": "hi"}, b"response.completed"),
    "gemini": ("/v1beta/models/{model}:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, b'"finishReason"'),
}


@pytest.fixture
async def lingering(aiohttp_server: Any, start_gateway: StartGateway,
                    tmp_path: Path) -> tuple[LingeringUpstream, Running]:
    fake = LingeringUpstream()
    server = await aiohttp_server(fake.app)
    base = str(server.make_url("")).rstrip("/")
    config = {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [{"name": kind, **spec, "base_url": base + str(spec["base_url"]),
                      "keys": [UPSTREAM_KEY]} for kind, spec in _CHANNELS.items()],
        "model_groups": [{"name": f"on-{kind}", "targets": [{"channel": kind, "model": "m"}]}
                         for kind in _CHANNELS],
        "tokens": [{"name": "alice", "key": ALICE}],
    }
    return fake, await start_gateway(config)


async def _read_then_leave(gateway: Running, caller: str, upstream: str, until: bytes) -> bytes:
    """Stream from *caller*'s endpoint, close the connection as soon as *until* arrived."""
    path, body, _ = _CALLERS[caller]
    model = f"on-{upstream}"
    if caller != "gemini":
        body = {**body, "model": model}
    got = b""
    async with aiohttp.ClientSession() as http:
        resp = await http.post(gateway.url + path.format(model=model), json=body,
                               headers={"Authorization": f"Bearer {ALICE}",
                                        "x-goog-api-key": ALICE})
        assert resp.status == 200, await resp.text()
        while until not in got:
            chunk = await resp.content.readany()
            assert chunk, f"the stream ended without {until!r}: {got!r}"
            got += chunk
        resp.close()
    return got


async def _row(gateway: Running) -> dict[str, Any]:
    for _ in range(500):
        rows = await gateway.rows()
        if rows:
            [row] = rows
            return row
        await asyncio.sleep(0.02)
    raise AssertionError("no usage row was written")


@pytest.mark.parametrize("upstream", _CHANNELS)
@pytest.mark.parametrize("caller", _CALLERS)
async def test_caller_that_leaves_after_the_end_is_a_200_with_upstream_usage(
        lingering: tuple[LingeringUpstream, Running], caller: str, upstream: str) -> None:
    """The caller read its stream's end event and hung up while the upstream lingered."""
    _, gateway = lingering
    await _read_then_leave(gateway, caller, upstream, _CALLERS[caller][2])
    row = await _row(gateway)
    assert (row["status"], row["error"], row["usage_source"]) == (200, None, "upstream")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT, COMPLETION)


@pytest.mark.parametrize("upstream", _CHANNELS)
@pytest.mark.parametrize("caller", _CALLERS)
async def test_caller_that_leaves_before_the_end_is_a_499(
        lingering: tuple[LingeringUpstream, Running], caller: str, upstream: str) -> None:
    """The caller hung up after the first words, before its stream's end event."""
    fake, gateway = lingering
    fake.stop_short = True
    got = await _read_then_leave(gateway, caller, upstream, b"Hello")
    assert _CALLERS[caller][2] not in got
    row = await _row(gateway)
    assert (row["status"], row["error"]) == (499, "client disconnected")
