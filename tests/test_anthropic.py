"""Anthropic channels pass /v1/messages and count_tokens through: official SDK in front, a
fake Anthropic upstream behind; exact bytes, headers, query strings and usage rows."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from tests.conftest import ALICE, UPSTREAM_KEY, Running
from tests.fake_anthropic import (
    COUNTED,
    ERROR,
    OUTPUT_TOKENS,
    ROW_USAGE,
    TEXT,
    TOOL_ID,
    WEATHER_TOOL,
    FakeAnthropic,
    message_body,
    row_usage,
    stream_events,
)

# per million: 32 fresh input at 3.0, 100 cached at 0.3, 15 output at 15.0
#: At claude's price: fresh input 3.0, cache reads 0.3, 5-minute writes 1.25 x input, 1-hour
#: writes 2 x input, output 15.0 (USD per 1M tokens).
ROW_COST = (25 * 3.0 + 100 * 0.3 + 3 * 3.75 + 4 * 6.0 + 15 * 15.0) / 1_000_000


def sdk(gateway: Running, key: str = ALICE) -> anthropic.AsyncAnthropic:
    """The official client, configured as a user would: the gateway's URL without /v1."""
    return anthropic.AsyncAnthropic(base_url=gateway.url, auth_token=key, max_retries=0)


async def post(gateway: Running, path: str, body: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, data=orjson.dumps(body), headers=headers) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.read()


HELLO = {"model": "claude", "max_tokens": 1024,
         "messages": [{"role": "user", "content": "Hello, Claude"}]}


async def test_messages_pass_through_with_anthropic_headers_and_query(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """Body with only model rewritten, x-api-key swapped, anthropic-* and ?beta=true kept."""
    status, _, body = await post(coding_gateway, "/v1/messages?beta=true", HELLO, {
        "x-api-key": ALICE, "anthropic-version": "2023-06-01",
        "anthropic-beta": "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14",
        "anthropic-dangerous-direct-browser-access": "true", "X-Custom": "kept"})
    assert status == 200
    assert body == orjson.dumps(message_body("claude-upstream", tool=False))
    [seen] = anthropic_upstream.seen
    assert (seen.path, seen.query) == ("/v1/messages", "beta=true")
    assert seen.body == orjson.dumps({**HELLO, "model": "claude-upstream"})
    headers = seen.headers
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    assert headers["anthropic-dangerous-direct-browser-access"] == "true"
    assert "X-Custom" not in headers  # not on the Anthropic allow-list
    assert "Authorization" not in headers
    assert ALICE not in str(dict(headers))
    [row] = await coding_gateway.rows()
    assert {k: row[k] for k in ("endpoint", "model", "channel", "upstream_model", "status",
                                "stream", "attempts", "error")} == {
        "endpoint": "/v1/messages", "model": "claude", "channel": "claude",
        "upstream_model": "claude-upstream", "status": 200, "stream": 0, "attempts": 1,
        "error": None}
    assert row_usage(row) == ROW_USAGE
    assert row["cost"] == pytest.approx(ROW_COST, abs=1e-12)


async def test_anthropic_version_is_defaulted_when_absent(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """A caller that sends no anthropic-version gets the default one upstream."""
    status, _, _ = await post(coding_gateway, "/v1/messages", HELLO,
                              {"Authorization": f"Bearer {ALICE}"})
    assert status == 200
    assert anthropic_upstream.seen[0].headers["anthropic-version"] == "2023-06-01"
    assert anthropic_upstream.seen[0].query == ""


async def test_sdk_message(coding_gateway: Running) -> None:
    """AsyncAnthropic.messages.create answers with the upstream's message and usage."""
    async with sdk(coding_gateway) as client:
        message = await client.messages.create(**HELLO)
    assert message.content[0].type == "text" and message.content[0].text == "".join(TEXT)
    assert message.model == "claude-upstream"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens, message.usage.output_tokens) == (
        25, 100, 7, OUTPUT_TOKENS)


async def test_sdk_stream_is_relayed_byte_for_byte(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """The caller receives exactly the upstream's events; the row holds message_start and
    message_delta usage, cache tokens included."""
    async with aiohttp.ClientSession() as http, http.post(
            coding_gateway.url + "/v1/messages", data=orjson.dumps({**HELLO, "stream": True}),
            headers={"x-api-key": ALICE}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["X-Accel-Buffering"] == "no"
        raw = await resp.read()
    assert raw == b"".join(stream_events("claude-upstream", tool=False))
    async with sdk(coding_gateway) as client:
        async with client.messages.stream(**HELLO) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert texts == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == OUTPUT_TOKENS
    rows = await coding_gateway.rows()
    assert [(r["stream"], r["status"]) for r in rows] == [(1, 200), (1, 200)]
    assert [row_usage(r) for r in rows] == [ROW_USAGE, ROW_USAGE]


async def test_sdk_tool_use_round_trip_streamed(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """A streamed tool_use with input_json_delta, then the tool_result turn, pass through."""
    ask = {**HELLO, "tools": [WEATHER_TOOL],
           "messages": [{"role": "user", "content": "What's the weather in San Francisco?"}]}
    async with sdk(coding_gateway) as client:
        async with client.messages.stream(**ask) as stream:
            first = await stream.get_final_message()
        tool_use = first.content[1]
        assert first.stop_reason == "tool_use"
        assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input) == (
            "tool_use", TOOL_ID, "get_weather", {"location": "San Francisco, CA"})
        turns = [*ask["messages"], {"role": "assistant", "content": first.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": TOOL_ID,
                                               "content": "15 degrees"}]}]
        second = await client.messages.create(**{**ask, "messages": turns})
    assert second.content[0].text == "".join(TEXT)
    sent = anthropic_upstream.seen[1].json
    assert sent["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "15 degrees"}]}
    assert sent["messages"][1]["content"][1] == {
        "type": "tool_use", "id": TOOL_ID, "name": "get_weather",
        "input": {"location": "San Francisco, CA"}}


async def test_sync_sdk_streams_through(coding_gateway: Running) -> None:
    """The synchronous Anthropic client works unchanged (run in a thread)."""
    def call() -> str:
        with anthropic.Anthropic(base_url=coding_gateway.url, api_key=ALICE,
                                 max_retries=0) as client:
            reply = client.messages.create(**HELLO)
            with client.messages.stream(**HELLO) as stream:
                streamed = "".join(stream.text_stream)
        assert reply.content[0].type == "text"
        return reply.content[0].text + "|" + streamed
    assert await asyncio.to_thread(call) == "".join(TEXT) + "|" + "".join(TEXT)


async def test_count_tokens_passes_through_and_uses_no_tokens(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """count_tokens reaches the upstream (query kept); its row has zero tokens and no cost."""
    async with sdk(coding_gateway) as client:
        counted = await client.messages.count_tokens(
            model="claude", messages=HELLO["messages"], tools=[WEATHER_TOOL],
            extra_query={"beta": "true"})
    assert counted.input_tokens == COUNTED
    [seen] = anthropic_upstream.seen
    assert (seen.path, seen.query, seen.headers["x-api-key"]) == (
        "/v1/messages/count_tokens", "beta=true", UPSTREAM_KEY)
    assert seen.json == {"model": "claude-upstream", "messages": HELLO["messages"],
                         "tools": [WEATHER_TOOL]}
    [row] = await coding_gateway.rows()
    assert {k: row[k] for k in ("endpoint", "channel", "status", "attempts", "prompt_tokens",
                                "completion_tokens", "total_tokens", "cost",
                                "usage_source")} == {
        "endpoint": "/v1/messages/count_tokens", "channel": "claude", "status": 200,
        "attempts": 1, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
        "cost": 0.0, "usage_source": "upstream"}


async def test_upstream_4xx_is_passed_through_as_it_came(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """An upstream 400 reaches the caller unchanged, Anthropic-shaped, with no failover."""
    anthropic_upstream.then(status=400)
    status, content_type, body = await post(coding_gateway, "/v1/messages", HELLO,
                                            {"x-api-key": ALICE})
    assert (status, content_type, body) == (400, "application/json", orjson.dumps(ERROR))
    async with sdk(coding_gateway) as client:
        anthropic_upstream.then(status=400)
        with pytest.raises(anthropic.BadRequestError) as raised:
            await client.messages.create(**HELLO)
    assert raised.value.body == ERROR
    assert len(anthropic_upstream.seen) == 2
    assert [(r["status"], r["error"]) for r in await coding_gateway.rows()] == [
        (400, "upstream answered 400")] * 2


async def test_upstream_key_refusal_is_an_anthropic_shaped_502(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """An upstream 401 (the channel's key) is our 502 api_error, none of its words."""
    anthropic_upstream.then(status=401, body=b'{"type":"error","error":{"type":'
                                             b'"authentication_error","message":"bad key"}}')
    status, _, body = await post(coding_gateway, "/v1/messages", HELLO, {"x-api-key": ALICE})
    assert status == 502
    assert orjson.loads(body) == {"type": "error", "error": {
        "type": "api_error",
        "message": "upstream refused the channel key (401) (after 1 attempt)"}}


async def test_mid_stream_failure_ends_with_an_anthropic_error_event(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """An upstream that hangs up mid-stream: the caller's stream ends with event: error."""
    anthropic_upstream.then(cut_after=4)
    status, _, raw = await post(coding_gateway, "/v1/messages", {**HELLO, "stream": True},
                                {"x-api-key": ALICE})
    assert status == 200
    events = stream_events("claude-upstream", tool=False)
    error = (b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
             b'"message":"upstream connection lost mid-stream"}}\n\n')
    assert raw == b"".join(events[:4]) + error
    [row] = await coding_gateway.rows()
    assert row["status"] == 502
    assert (row["prompt_tokens"], row["cached_tokens"]) == (132, 100)
