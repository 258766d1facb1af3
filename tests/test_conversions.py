"""Translation both ways, end to end: the official Anthropic SDK on OpenAI-compatible and mock
channels, and the official OpenAI SDK on an Anthropic channel."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import anthropic.types
import openai
import orjson
import pydantic

from coderouter.dialects.framing import events as sse_events
from coderouter.dialects.hub import bridge
from coderouter.estimate import estimate_tokens
from tests.conftest import ALICE, UPSTREAM_KEY, Running
from tests.fake_anthropic import (
    OUTPUT_TOKENS,
    PING,
    ROW_USAGE,
    START_USAGE,
    TEXT,
    TOOL_ID,
    TOOL_TEXT,
    WEATHER_TOOL,
    FakeAnthropic,
    event,
    row_usage,
)
from tests.fakes import USAGE, WORDS, FakeUpstream, chat_chunk

ANTHROPIC_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
    anthropic.types.RawMessageStreamEvent)
CHAT_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": WEATHER_TOOL["description"],
    "parameters": WEATHER_TOOL["input_schema"]}}
ARGUMENTS = ['{"location": "San Fra', 'ncisco, CA"}']


def claude_sdk(gateway: Running) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, auth_token=ALICE, max_retries=0)


def openai_sdk(gateway: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0)


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Anthropic SSE bytes as (name, data), each checked against the SDK's event types."""
    events = []
    for frame in raw.removesuffix(b"\n\n").split(b"\n\n"):
        name, data = frame.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        obj = orjson.loads(data[6:])
        assert obj["type"] == name[7:].decode()
        ANTHROPIC_EVENT.validate_python(obj)
        events.append((obj["type"], obj))
    return events


async def post_raw(gateway: Running, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, data=orjson.dumps(body), headers={"x-api-key": ALICE}) as resp:
        return resp.status, await resp.read()


def tool_call_stream() -> list[bytes]:
    """An OpenAI upstream streaming one tool call, as chat.completion chunks."""
    def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
        return chat_chunk([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}])
    call = {"index": 0, "id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}
    return [delta({"role": "assistant", "content": None, "tool_calls": [call]}),
            *[delta({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
              for part in ARGUMENTS],
            delta({}, "tool_calls"), chat_chunk([], usage=USAGE), b"data: [DONE]\n\n"]


# Anthropic Messages callers on an OpenAI-compatible channel


async def test_messages_on_openai_channel(coding_gateway: Running,
                                          upstream: FakeUpstream) -> None:
    """System and text become chat messages; the chat answer comes back as a message."""
    async with claude_sdk(coding_gateway) as client:
        message = await client.messages.create(
            model="smart", max_tokens=1024, system="Be brief.", extra_body={"temperature": 0.5},
            stop_sequences=["END"], messages=[{"role": "user", "content": "Hello"}],
            extra_query={"beta": "true"})
    [seen] = upstream.seen
    assert (seen.path, seen.query) == ("/v1/chat/completions", "")
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen.json == {"model": "upstream-model", "max_tokens": 1024, "temperature": 0.5,
                         "stop": ["END"], "messages": [
                             {"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Hello"}]}
    assert message.model_dump(exclude_none=True) == {
        "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "smart",
        "content": [{"type": "text", "text": "".join(WORDS)}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 8, "output_tokens": 4, "cache_read_input_tokens": 3,
                  "cache_creation_input_tokens": 0}}
    [row] = await coding_gateway.rows()
    assert {k: row[k] for k in ("endpoint", "channel", "status", "prompt_tokens",
                                "completion_tokens", "cached_tokens", "usage_source")} == {
        "endpoint": "/v1/messages", "channel": "up", "status": 200, "prompt_tokens": 11,
        "completion_tokens": 4, "cached_tokens": 3, "usage_source": "upstream"}


async def test_messages_stream_on_openai_channel(coding_gateway: Running,
                                                 upstream: FakeUpstream) -> None:
    """chat.completion chunks become the full Messages event sequence, usage at the end."""
    body = {"model": "smart", "max_tokens": 1024, "stream": True,
            "messages": [{"role": "user", "content": "Hello"}]}
    status, raw = await post_raw(coding_gateway, "/v1/messages", body)
    assert status == 200
    assert upstream.seen[0].json["stream_options"] == {"include_usage": True}
    events = parse_events(raw)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", *["content_block_delta"] * len(WORDS),
        "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert (start["model"], start["content"], start["usage"]["input_tokens"]) == (
        "smart", [], estimate_tokens(body))
    assert [data["delta"]["text"] for name, data in events if name == "content_block_delta"] \
        == WORDS
    assert events[-2][1] == {"type": "message_delta",
                             "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"input_tokens": 8, "output_tokens": 4,
                                       "cache_read_input_tokens": 3,
                                       "cache_creation_input_tokens": 0}}
    async with claude_sdk(coding_gateway) as client:
        async with client.messages.stream(**{k: v for k, v in body.items()
                                             if k != "stream"}) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert texts == WORDS
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", 4)
    rows = await coding_gateway.rows()
    assert [(r["stream"], r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"])
            for r in rows] == [(1, 11, 4, 3)] * 2


async def test_messages_tool_use_round_trip_on_openai_channel(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """Tools, tool_choice, a streamed tool call and the tool_result turn, both ways."""
    upstream.then(parts=tool_call_stream())
    ask: dict[str, Any] = {
        "model": "smart", "max_tokens": 1024, "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "What's the weather in San Francisco?"}]}
    async with claude_sdk(coding_gateway) as client:
        async with client.messages.stream(**ask) as stream:
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use"
        [tool_use] = first.content
        assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input) == (
            "tool_use", "call_abc", "get_weather", {"location": "San Francisco, CA"})
        turns = [*ask["messages"], {"role": "assistant", "content": first.content},
                 {"role": "user", "content": [
                     {"type": "tool_result", "tool_use_id": "call_abc",
                      "content": "15 degrees"}]}]
        second = await client.messages.create(**{**ask, "messages": turns})
    assert second.content[0].type == "text" and second.content[0].text == "".join(WORDS)
    asked, answered = upstream.seen[0].json, upstream.seen[1].json
    assert (asked["tools"], asked["tool_choice"]) == ([CHAT_TOOL], "auto")
    assert answered["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"location":"San Francisco, CA"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "15 degrees"}]


async def test_messages_image_becomes_an_image_url_part(coding_gateway: Running,
                                                        upstream: FakeUpstream) -> None:
    """A base64 image block reaches the chat upstream as a data: URI image_url part."""
    async with claude_sdk(coding_gateway) as client:
        await client.messages.create(model="smart", max_tokens=10, messages=[
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}},
                {"type": "text", "text": "What is this?"}]}])
    assert upstream.seen[0].json["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "text", "text": "What is this?"}]}]


async def test_openai_upstream_error_reaches_an_anthropic_caller_anthropic_shaped(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """An upstream's OpenAI-shaped 400 is the caller's 400, in the Anthropic error shape."""
    upstream.then(status=400, body=b'{"error":{"message":"bad messages","type":"invalid"}}')
    status, raw = await post_raw(coding_gateway, "/v1/messages", {
        "model": "smart", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert (status, orjson.loads(raw)) == (400, {"type": "error", "error": {
        "type": "invalid_request_error", "message": "bad messages"}})
    [row] = await coding_gateway.rows()
    assert (row["status"], row["error"]) == (400, "upstream answered 400")


async def test_untranslatable_request_is_an_anthropic_400(coding_gateway: Running,
                                                          upstream: FakeUpstream) -> None:
    """A body the translator cannot read is the caller's 400 and never leaves the gateway."""
    status, raw = await post_raw(coding_gateway, "/v1/messages", {
        "model": "smart", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]})
    assert (status, orjson.loads(raw)) == (400, {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "messages[0].role: expected 'user', 'assistant' or 'system', got 'tool'"}})
    assert upstream.seen == []


async def test_count_tokens_without_an_anthropic_target_is_estimated(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """No upstream call: the estimate is answered, the row says estimated and uses nothing."""
    body = {"model": "smart", "system": "Be brief.", "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "Hello, Claude"}]}
    async with claude_sdk(coding_gateway) as client:
        counted = await client.messages.count_tokens(**body, extra_query={"beta": "true"})
    assert counted.input_tokens == estimate_tokens(body) > 0
    assert upstream.seen == []
    [row] = await coding_gateway.rows()
    assert {k: row[k] for k in ("endpoint", "model", "channel", "status", "attempts",
                                "total_tokens", "cost", "usage_source", "error")} == {
        "endpoint": "/v1/messages/count_tokens", "model": "smart", "channel": None,
        "status": 200, "attempts": 0, "total_tokens": 0, "cost": 0.0,
        "usage_source": "estimated", "error": None}


async def test_translated_stream_failure_ends_with_an_anthropic_error_event(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """An OpenAI upstream that hangs up mid-stream: translated events, then event: error."""
    upstream.then(cut_after=3)
    status, raw = await post_raw(coding_gateway, "/v1/messages", {
        "model": "smart", "max_tokens": 5, "stream": True,
        "messages": [{"role": "user", "content": "x"}]})
    assert status == 200
    body, _, last = raw.removesuffix(b"\n\n").rpartition(b"\n\n")
    assert [name for name, _ in parse_events(body + b"\n\n")] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    assert last == (b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
                    b'"message":"upstream connection lost mid-stream"}}')
    [row] = await coding_gateway.rows()
    assert (row["status"], row["error"]) == (502, "upstream connection lost mid-stream")


async def test_mock_channel_serves_messages(coding_gateway: Running) -> None:
    """The mock channel answers /v1/messages, streamed and not, through translation."""
    ask = {"model": "mocked", "max_tokens": 100,
           "messages": [{"role": "user", "content": "hi there"}]}
    expected = "Hello from the Code Router mock channel. You said: hi there"
    async with claude_sdk(coding_gateway) as client:
        message = await client.messages.create(**ask)
        async with client.messages.stream(**ask) as stream:
            streamed = "".join([text async for text in stream.text_stream])
            final = await stream.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == expected
    assert streamed == expected
    assert (message.stop_reason, final.stop_reason) == ("end_turn", "end_turn")
    assert message.usage.output_tokens == final.usage.output_tokens == len(expected.split())
    rows = await coding_gateway.rows()
    assert [(r["channel"], r["status"], r["usage_source"]) for r in rows] == [
        ("mock", 200, "upstream")] * 2


# OpenAI chat callers on an Anthropic channel


async def test_chat_on_anthropic_channel(coding_gateway: Running,
                                         anthropic_upstream: FakeAnthropic) -> None:
    """A chat request is sent as Messages; the message comes back as a chat.completion."""
    async with openai_sdk(coding_gateway) as client:
        reply = await client.chat.completions.create(
            model="claude", max_tokens=300, messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"}])
    [seen] = anthropic_upstream.seen
    assert (seen.path, seen.query, seen.headers["x-api-key"],
            seen.headers["anthropic-version"]) == ("/v1/messages", "", UPSTREAM_KEY,
                                                   "2023-06-01")
    assert "Authorization" not in seen.headers
    breakpoint = {"cache_control": {"type": "ephemeral"}}  # added: Chat callers send none
    assert seen.json == {"model": "claude-upstream", "max_tokens": 300,
                         "system": [{"type": "text", "text": "Be brief.", **breakpoint}],
                         "messages": [{"role": "user", "content": [
                             {"type": "text", "text": "Hello", **breakpoint}]}]}
    assert reply.choices[0].message.content == "".join(TEXT)
    assert (reply.choices[0].finish_reason, reply.model) == ("stop", "claude")
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens,
            reply.usage.total_tokens) == (132, OUTPUT_TOKENS, 147)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 100
    [row] = await coding_gateway.rows()
    assert (row["endpoint"], row["channel"]) == ("/v1/chat/completions", "claude")
    assert row_usage(row) == ROW_USAGE


async def test_chat_stream_on_anthropic_channel(coding_gateway: Running,
                                                anthropic_upstream: FakeAnthropic) -> None:
    """Messages events become chat chunks; the usage chunk only when the caller asked."""
    async with openai_sdk(coding_gateway) as client:
        stream = await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "Hello"}], stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
        plain = await client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "Hello"}], stream=True)
        plain_chunks = [chunk async for chunk in plain]
    assert anthropic_upstream.seen[0].json == {
        "model": "claude-upstream", "max_tokens": 4096, "stream": True,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]}]}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(TEXT)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        132, OUTPUT_TOKENS)
    assert all(c.usage is None for c in plain_chunks)
    rows = await coding_gateway.rows()
    assert [row_usage(r) for r in rows] == [ROW_USAGE, ROW_USAGE]


async def test_chat_tools_on_anthropic_channel(coding_gateway: Running,
                                               anthropic_upstream: FakeAnthropic) -> None:
    """Tools and tool_choice become Anthropic tools; tool_use comes back as tool_calls,
    streamed and not, and the tool turn goes back as a tool_result."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "What's the weather in San Francisco?"}]
    async with openai_sdk(coding_gateway) as client:
        reply = await client.chat.completions.create(
            model="claude", messages=messages, tools=[CHAT_TOOL], tool_choice="required")
        stream = await client.chat.completions.create(
            model="claude", messages=messages, tools=[CHAT_TOOL], stream=True)
        chunks = [chunk async for chunk in stream]
        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        answer = await client.chat.completions.create(model="claude", tools=[CHAT_TOOL],
                                                      messages=[
            *messages, reply.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "15 degrees"}])
    sent = anthropic_upstream.seen[0].json
    assert (sent["tools"], sent["tool_choice"]) == (
        [{**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}}], {"type": "any"})
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.content == TOOL_TEXT
    assert (call.id, call.type, call.function.name, call.function.arguments) == (
        TOOL_ID, "function", "get_weather", '{"location":"San Francisco, CA"}')
    streamed = "".join(tc.function.arguments or "" for c in chunks if c.choices
                       for tc in c.choices[0].delta.tool_calls or [] if tc.function)
    assert orjson.loads(streamed) == {"location": "San Francisco, CA"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert answer.choices[0].message.content == "".join(TEXT)
    assert anthropic_upstream.seen[2].json["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": TOOL_TEXT},
            {"type": "tool_use", "id": TOOL_ID, "name": "get_weather",
             "input": {"location": "San Francisco, CA"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "15 degrees",
             "cache_control": {"type": "ephemeral"}}]}]


async def test_anthropic_upstream_error_reaches_a_chat_caller_openai_shaped(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """An upstream's Anthropic-shaped 400 is the caller's 400, in the OpenAI error shape."""
    anthropic_upstream.then(status=400)
    async with openai_sdk(coding_gateway) as client:
        try:
            await client.chat.completions.create(model="claude", messages=[])
        except openai.BadRequestError as exc:
            error = exc
    assert error.status_code == 400
    assert error.body == {"message": "messages: at least one message is required",
                          "type": "invalid_request_error", "code": None, "param": None}


async def test_anthropic_error_event_ends_a_chat_stream_with_an_error(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """An upstream error event mid-stream ends the chat stream with an error chunk (then the
    chat codec's ``[DONE]``, which clients stop at too), never a clean finish."""
    start = event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-upstream",
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": START_USAGE}})
    overloaded = event("error", {"type": "error", "error": {"type": "overloaded_error",
                                                            "message": "Overloaded"}})
    anthropic_upstream.then(events=[start, PING, overloaded])
    async with aiohttp.ClientSession() as http, http.post(
            coding_gateway.url + "/v1/chat/completions", headers={"x-api-key": ALICE},
            data=orjson.dumps({"model": "claude", "stream": True,
                               "messages": [{"role": "user", "content": "x"}]})) as resp:
        raw = await resp.read()
    frames = raw.removesuffix(b"\n\n").split(b"\n\n")
    assert orjson.loads(frames[0].removeprefix(b"data: "))["choices"][0]["delta"] == {
        "role": "assistant", "content": ""}
    assert frames[1:] == [b'data: {"error":{"message":"upstream stream error: Overloaded",'
                          b'"type":"upstream_error","code":"upstream_error"}}',
                          b"data: [DONE]"]
    assert b"\"finish_reason\":\"stop\"" not in raw
    [row] = await coding_gateway.rows()
    assert (row["status"], row["error"], row["prompt_tokens"]) == (
        502, "upstream stream error: Overloaded", 132)


# The adapters on their own


def test_sse_events_reads_crlf_multiline_data_and_a_tail_without_blank_line() -> None:
    """Events are split on blank lines (LF or CRLF); data lines join; comments are skipped."""
    block = (b": keep-alive\r\n\r\nevent: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
             b"data: [DONE]\n\ndata: {\"a\":\ndata: 1}")
    assert list(sse_events(block)) == [("ping", b'{"type": "ping"}'), ("", b"[DONE]"),
                                       ("", b'{"a":\n1}')]


def test_error_bodies_change_shape_and_keep_the_message() -> None:
    """OpenAI errors become Anthropic ones and back; a non-JSON body keeps its text."""
    messages_via_chat = bridge("messages", ("chat",))
    chat_via_messages = bridge("chat", ("messages",))
    assert messages_via_chat is not None and chat_via_messages is not None
    assert orjson.loads(messages_via_chat.error(404, b'{"error":{"message":"no such model"}}')) \
        == {"type": "error", "error": {"type": "not_found_error", "message": "no such model"}}
    assert orjson.loads(messages_via_chat.error(422, b"<html>Unprocessable</html>")) == {
        "type": "error", "error": {"type": "invalid_request_error",
                                   "message": "<html>Unprocessable</html>"}}
    assert orjson.loads(chat_via_messages.error(413, b'{"type":"error","error":{"type":'
                                                     b'"request_too_large","message":"big"}}')) \
        == {"error": {"message": "big", "type": "invalid_request_error", "code": None,
                      "param": None}}
