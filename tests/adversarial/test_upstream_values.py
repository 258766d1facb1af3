"""A translated answer whose finish or stop reason is not a string (a list, an object) is an
unknown reason, not a 500: the caller is answered and its row written."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ALICE, Running
from tests.fake_anthropic import FakeAnthropic, event, stream_events
from tests.fakes import FakeUpstream, chat_chunk

ODD = ["stop"]


async def post(gateway: Running, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, json=body, headers={"Authorization": f"Bearer {ALICE}",
                                                    "anthropic-version": "2023-06-01"}) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_upstreams_odd_finish_reason(coding_gateway: Running,
                                                  upstream: FakeUpstream, stream: bool) -> None:
    if stream:
        chunks = [chat_chunk([{"index": 0, "delta": {"content": "hi"}}]),
                  chat_chunk([{"index": 0, "delta": {}, "finish_reason": ODD}])]
        upstream.then(body=b"".join(chunks) + b"data: [DONE]\n\n",
                      content_type="text/event-stream")
    else:
        upstream.then(body=orjson.dumps({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": ODD}]}), content_type="application/json")
    status, answer = await post(coding_gateway, "/v1/messages", {
        "model": "smart", "max_tokens": 5, "stream": stream,
        "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, answer
    assert b"end_turn" in answer
    assert [r["status"] for r in await coding_gateway.rows()] == [200]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_anthropic_upstreams_odd_stop_reason(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic, stream: bool) -> None:
    if stream:
        events = stream_events("m", tool=False)
        events[-2] = event("message_delta", {"type": "message_delta", "usage": {
            "output_tokens": 3}, "delta": {"stop_reason": ODD, "stop_sequence": None}})
        anthropic_upstream.then(events=events)
    else:
        anthropic_upstream.then(body=orjson.dumps({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": ODD,
            "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}}))
    status, answer = await post(coding_gateway, "/v1/chat/completions", {
        "model": "claude", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, answer
    assert b'"finish_reason":"stop"' in answer
    assert [r["status"] for r in await coding_gateway.rows()] == [200]
