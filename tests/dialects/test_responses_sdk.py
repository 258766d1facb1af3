"""Responses callers (Codex, opencode with @ai-sdk/openai) on a Messages upstream and on a
chat-only OpenAI-compatible upstream, end to end: the official openai SDK's
``client.responses.create`` against the real gateway and a fake upstream of each dialect.

Each test asserts what the upstream received (its exact JSON body) and what the caller got
(every event, validated against the SDK's own types), plus the usage row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import ALICE, Running, StartGateway, coding_config
from tests.dialects.test_responses import validate_event
from tests.fake_anthropic import (
    MESSAGE_ID,
    ROW_USAGE,
    START_USAGE,
    TOOL_ID,
    TOOL_TEXT,
    WEATHER_TOOL,
    FakeAnthropic,
    event,
    row_usage,
)
from tests.fakes import FakeUpstream, chat_chunk

WEATHER = {"type": "function", "name": "get_weather", "strict": False,
           "description": WEATHER_TOOL["description"],
           "parameters": WEATHER_TOOL["input_schema"]}
ANTHROPIC_WEATHER = {"name": "get_weather", "description": WEATHER_TOOL["description"],
                     "input_schema": WEATHER_TOOL["input_schema"]}
RESPONSE_ID = "resp_" + MESSAGE_ID
#: Usage as the Responses caller sees the fake Anthropic upstream's (25 + 7 + 100 in, 15 out).
USAGE = {"input_tokens": 132, "output_tokens": 15, "total_tokens": 147,
         "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 7},
         "output_tokens_details": {"reasoning_tokens": 0}}


@pytest.fixture
async def sdk(coding_gateway: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=coding_gateway.url + "/v1", api_key=ALICE,
                                max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def chat_gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                       anthropic_upstream: FakeAnthropic, tmp_path: Any) -> Running:
    """The coding gateway plus group ``chatty`` on a chat-only channel (``responses: false``)."""
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"].append({"name": "chat-only", "type": "openai", "base_url": upstream.url,
                               "keys": ["sk-chat-only"], "responses": False})
    config["model_groups"].append({"name": "chatty", "targets": [
        {"channel": "chat-only", "model": "deepseek-chat"}]})
    return await start_gateway(config)


@pytest.fixture
async def chat_sdk(chat_gateway: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=chat_gateway.url + "/v1", api_key=ALICE,
                                max_retries=0)
    yield client
    await client.close()


async def stream(sdk: openai.AsyncOpenAI, model: str = "claude",
                 **body: Any) -> list[dict[str, Any]]:
    """Every event of a streamed ``responses.create``, each validated with the SDK's types."""
    events = []
    async with await sdk.responses.create(model=model, stream=True, **body) as response:
        async for item in response:
            data = item.to_dict()
            validate_event(data)
            events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def upstream_body(fake: FakeAnthropic, n: int = -1) -> dict[str, Any]:
    return orjson.loads(fake.seen[n].body)


def tool_stream(calls: list[tuple[str, str, str]]) -> list[bytes]:
    """An Anthropic stream answering with text and then one tool_use per (id, name, json)."""
    events = [event("message_start", {"type": "message_start", "message": {
        "id": MESSAGE_ID, "type": "message", "role": "assistant", "model": "claude-upstream",
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": START_USAGE}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}),
        event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": "Two calls."}}),
        event("content_block_stop", {"type": "content_block_stop", "index": 0})]
    for n, (call_id, name, arguments) in enumerate(calls, start=1):
        events += [
            event("content_block_start", {"type": "content_block_start", "index": n,
                                          "content_block": {"type": "tool_use", "id": call_id,
                                                            "name": name, "input": {}}}),
            event("content_block_delta", {"type": "content_block_delta", "index": n, "delta": {
                "type": "input_json_delta", "partial_json": arguments}}),
            event("content_block_stop", {"type": "content_block_stop", "index": n})]
    return [*events,
            event("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 15}}),
            event("message_stop", {"type": "message_stop"})]


class TestText:
    """Plain text, streamed and not."""

    async def test_stream(self, sdk: openai.AsyncOpenAI, coding_gateway: Running,
                          anthropic_upstream: FakeAnthropic) -> None:
        events = await stream(sdk, instructions="Be brief.", input="hi",
                              max_output_tokens=300)
        assert upstream_body(anthropic_upstream) == {  # the hub adds cache breakpoints
            "model": "claude-upstream", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
            "max_tokens": 300, "stream": True, "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]}
        assert [e["type"] for e in events] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta",
            "response.output_text.delta", "response.output_text.done",
            "response.content_part.done", "response.output_item.done", "response.completed"]
        assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
            "Hello", "!"]
        message = {"id": f"msg_{MESSAGE_ID}_0", "type": "message", "role": "assistant",
                   "status": "completed",
                   "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}
        assert events[8]["item"] == message
        completed = events[-1]["response"]
        assert completed["id"] == RESPONSE_ID and completed["model"] == "claude"
        assert completed["status"] == "completed" and completed["output"] == [message]
        assert completed["usage"] == USAGE
        [row] = await coding_gateway.rows()
        assert row_usage(row) == ROW_USAGE
        assert (row["endpoint"], row["status"], row["stream"]) == ("/v1/responses", 200, 1)

    async def test_not_streamed(self, sdk: openai.AsyncOpenAI, coding_gateway: Running,
                                anthropic_upstream: FakeAnthropic) -> None:
        response = await sdk.responses.create(model="claude", input=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hi"}])
        assert upstream_body(anthropic_upstream) == {
            "model": "claude-upstream", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
            "max_tokens": 4096, "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]}
        assert response.id == RESPONSE_ID and response.status == "completed"
        assert response.output_text == "Hello!"
        assert response.usage is not None
        assert response.usage.to_dict() == USAGE
        [row] = await coding_gateway.rows()
        assert row_usage(row) == ROW_USAGE


class TestTools:
    """Function calls and their results across turns, as Codex drives them."""

    async def test_round_trip(self, sdk: openai.AsyncOpenAI,
                              anthropic_upstream: FakeAnthropic) -> None:
        first = await stream(sdk, input="weather in SF?", tools=[WEATHER])
        assert upstream_body(anthropic_upstream)["tools"] == [
            {**ANTHROPIC_WEATHER, "cache_control": {"type": "ephemeral"}}]
        done = [e["item"] for e in first if e["type"] == "response.output_item.done"]
        assert done[1] == {
            "id": f"fc_{MESSAGE_ID}_1", "type": "function_call", "status": "completed",
            "call_id": TOOL_ID, "name": "get_weather",
            "arguments": "{\"location\": \"San Francisco, CA\"}"}
        assert [e["delta"] for e in first
                if e["type"] == "response.function_call_arguments.delta"] == [
            "{\"location\": \"San Fra", "ncisco, CA\"}"]
        assert first[-1]["response"]["output"] == done

        # Codex's next request replays the items and adds the tool's output
        second = await stream(sdk, input=[
            {"role": "user", "content": "weather in SF?"}, *done,
            {"type": "function_call_output", "call_id": TOOL_ID, "output": "Sunny, 21C"}],
            tools=[WEATHER])
        assert upstream_body(anthropic_upstream)["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "weather in SF?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": TOOL_TEXT},
                {"type": "tool_use", "id": TOOL_ID, "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "Sunny, 21C",
                 "cache_control": {"type": "ephemeral"}}]}]
        assert second[-1]["response"]["output"][0]["content"][0]["text"] == "Hello!"

    async def test_parallel_calls_merge_into_one_turn(
            self, sdk: openai.AsyncOpenAI, anthropic_upstream: FakeAnthropic) -> None:
        """Consecutive function_call items are one assistant turn upstream, and their
        outputs one user turn, as Anthropic requires."""
        anthropic_upstream.then(events=tool_stream([
            ("toolu_a", "get_weather", "{\"location\":\"Paris\"}"),
            ("toolu_b", "get_weather", "{\"location\":\"Rome\"}")]))
        first = await stream(sdk, input="Paris and Rome?", tools=[WEATHER],
                             parallel_tool_calls=True)
        calls = [e["item"] for e in first if e["type"] == "response.output_item.done"
                 and e["item"]["type"] == "function_call"]
        assert [(c["call_id"], c["arguments"]) for c in calls] == [
            ("toolu_a", "{\"location\":\"Paris\"}"), ("toolu_b", "{\"location\":\"Rome\"}")]
        assert first[-1]["response"]["status"] == "completed"

        await stream(sdk, tools=[WEATHER], input=[
            {"role": "user", "content": "Paris and Rome?"}, *calls,
            {"type": "function_call_output", "call_id": "toolu_a", "output": "rain"},
            {"type": "function_call_output", "call_id": "toolu_b", "output": "sun"}])
        assert upstream_body(anthropic_upstream)["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather",
                 "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather",
                 "input": {"location": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "rain"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "sun",
                 "cache_control": {"type": "ephemeral"}}]}]


class TestInputs:
    async def test_image(self, sdk: openai.AsyncOpenAI,
                         anthropic_upstream: FakeAnthropic) -> None:
        await stream(sdk, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=",
             "detail": "auto"}]}])
        assert upstream_body(anthropic_upstream)["messages"] == [{"role": "user", "content": [
            {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}}]}]

    async def test_previous_response_id_is_refused(
            self, sdk: openai.AsyncOpenAI, anthropic_upstream: FakeAnthropic) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(model="claude", input="hi",
                                       previous_response_id="resp_1")
        assert "previous_response_id: stored conversations are not available" in str(
            caught.value)
        assert anthropic_upstream.seen == []


class TestFailures:
    """Upstream errors before and during the stream reach the caller in its dialect."""

    async def test_upstream_error_keeps_its_message(
            self, sdk: openai.AsyncOpenAI, coding_gateway: Running,
            anthropic_upstream: FakeAnthropic) -> None:
        anthropic_upstream.then(status=400, body=orjson.dumps({
            "type": "error", "error": {"type": "invalid_request_error",
                                       "message": "prompt is too long: 210000 tokens"}}))
        with pytest.raises(openai.BadRequestError) as caught:
            await stream(sdk, input="hi")
        assert caught.value.status_code == 400
        # the code Codex reads as "context window exceeded" (it stops instead of retrying)
        assert caught.value.body == {"message": "prompt is too long: 210000 tokens",
                                     "type": "invalid_request_error", "param": None,
                                     "code": "context_length_exceeded"}
        [row] = await coding_gateway.rows()
        assert row["status"] == 400

    async def test_cut_stream_ends_with_response_failed(
            self, sdk: openai.AsyncOpenAI, coding_gateway: Running,
            anthropic_upstream: FakeAnthropic) -> None:
        anthropic_upstream.then(cut_after=4)
        events = await stream(sdk, input="hi")
        assert [e["type"] for e in events] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta",
            "response.failed"]
        failed = events[-1]["response"]
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "server_error"
        [row] = await coding_gateway.rows()
        assert row["status"] == 502

    async def test_upstream_error_event_mid_stream(
            self, sdk: openai.AsyncOpenAI, coding_gateway: Running,
            anthropic_upstream: FakeAnthropic) -> None:
        """An Anthropic ``error`` event mid-stream: the caller's stream goes on to
        ``response.failed`` in sequence, and the row records the failure."""
        anthropic_upstream.then(events=[*tool_stream([])[:3], event("error", {
            "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})])
        events = await stream(sdk, input="hi")
        assert [e["type"] for e in events] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta", "response.failed"]
        assert events[-1]["response"]["error"] == {
            "code": "server_error", "message": "upstream stream error: Overloaded"}
        [row] = await coding_gateway.rows()
        assert (row["status"], row["error"]) == (502, "upstream stream error: Overloaded")


def chat_tool_stream(calls: list[tuple[str, str, list[str]]]) -> list[bytes]:
    """A Chat stream answering with one tool call per (id, name, argument pieces)."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return chat_chunk([{"index": 0, "delta": delta, "finish_reason": finish}], usage=None)

    events = [chunk({"role": "assistant", "content": None})]
    for n, (call_id, name, pieces) in enumerate(calls):
        events.append(chunk({"tool_calls": [{"index": n, "id": call_id, "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
                   for piece in pieces]
    return [*events, chunk({}, "tool_calls"),
            chat_chunk([], usage={"prompt_tokens": 50, "completion_tokens": 9,
                                  "total_tokens": 59,
                                  "prompt_tokens_details": {"cached_tokens": 20},
                                  "completion_tokens_details": {"reasoning_tokens": 4}}),
            b"data: [DONE]\n\n"]


class TestOnChat:
    """A chat-only channel (DeepSeek, vLLM, Ollama ...) serving /v1/responses."""

    async def test_text(self, chat_sdk: openai.AsyncOpenAI, chat_gateway: Running,
                        upstream: FakeUpstream) -> None:
        events = await stream(chat_sdk, "chatty", instructions="Be brief.", input="hi",
                              max_output_tokens=300, reasoning={"effort": "high"})
        seen = upstream.seen[-1]
        assert seen.path == "/v1/chat/completions"
        assert seen.headers["Authorization"] == "Bearer sk-chat-only"
        assert seen.json == {
            "model": "deepseek-chat",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "hi"}],
            "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": 300, "reasoning_effort": "high"}
        assert [e["type"] for e in events] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", *["response.output_text.delta"] * 4,
            "response.output_text.done", "response.content_part.done",
            "response.output_item.done", "response.completed"]
        completed = events[-1]["response"]
        assert completed["id"] == "resp_chatcmpl-1" and completed["model"] == "chatty"
        assert completed["output"][0]["content"][0]["text"] == "Hello from upstream!"
        assert completed["usage"] == {
            "input_tokens": 11, "output_tokens": 4, "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0}}
        [row] = await chat_gateway.rows()
        assert (row["channel"], row["endpoint"], row["status"]) == (
            "chat-only", "/v1/responses", 200)
        assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (
            11, 4, 3)

    async def test_not_streamed(self, chat_sdk: openai.AsyncOpenAI,
                                upstream: FakeUpstream) -> None:
        response = await chat_sdk.responses.create(model="chatty", input="hi")
        assert upstream.seen[-1].json == {
            "model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
        assert response.output_text == "Hello from upstream!"
        assert response.id == "resp_chatcmpl-1"

    async def test_parallel_tool_round_trip(self, chat_sdk: openai.AsyncOpenAI,
                                            upstream: FakeUpstream) -> None:
        upstream.then(parts=chat_tool_stream([
            ("call_a", "shell", ['{"command":', '["ls"]}']),
            ("call_b", "shell", ['{"command":["pwd"]}'])]))
        shell = {"type": "function", "name": "shell", "strict": False,
                 "parameters": {"type": "object", "properties": {
                     "command": {"type": "array", "items": {"type": "string"}}}}}
        first = await stream(chat_sdk, "chatty", input="look around", tools=[shell],
                             parallel_tool_calls=True)
        assert upstream.seen[-1].json["tools"] == [{"type": "function", "function": {
            "name": "shell", "parameters": shell["parameters"], "strict": False}}]
        calls = [e["item"] for e in first if e["type"] == "response.output_item.done"]
        assert [(c["type"], c["call_id"], c["arguments"]) for c in calls] == [
            ("function_call", "call_a", '{"command":["ls"]}'),
            ("function_call", "call_b", '{"command":["pwd"]}')]
        assert first[-1]["response"]["usage"] == {
            "input_tokens": 50, "output_tokens": 9, "total_tokens": 59,
            "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 4}}

        await stream(chat_sdk, "chatty", tools=[shell], input=[
            {"role": "user", "content": "look around"}, *calls,
            {"type": "function_call_output", "call_id": "call_a", "output": "a.py"},
            {"type": "function_call_output", "call_id": "call_b", "output": "/w"}])
        assert upstream.seen[-1].json["messages"] == [
            {"role": "user", "content": "look around"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "shell", "arguments": '{"command":["ls"]}'}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "shell", "arguments": '{"command":["pwd"]}'}}]},
            {"role": "tool", "tool_call_id": "call_a", "content": "a.py"},
            {"role": "tool", "tool_call_id": "call_b", "content": "/w"}]

    async def test_upstream_error(self, chat_sdk: openai.AsyncOpenAI,
                                  upstream: FakeUpstream) -> None:
        upstream.then(status=400, body=orjson.dumps({"error": {
            "message": "This model's maximum context length is 65536 tokens",
            "type": "invalid_request_error", "code": "context_length_exceeded"}}))
        with pytest.raises(openai.BadRequestError) as caught:
            await stream(chat_sdk, "chatty", input="hi")
        assert caught.value.body == {
            "message": "This model's maximum context length is 65536 tokens",
            "type": "invalid_request_error", "param": None, "code": "context_length_exceeded"}

    async def test_cut_stream(self, chat_sdk: openai.AsyncOpenAI, chat_gateway: Running,
                              upstream: FakeUpstream) -> None:
        upstream.then(cut_after=3)
        events = await stream(chat_sdk, "chatty", input="hi")
        assert events[-1]["type"] == "response.failed"
        assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
            "Hello", " from"]
        [row] = await chat_gateway.rows()
        assert row["status"] == 502
