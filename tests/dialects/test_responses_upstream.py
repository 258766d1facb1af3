"""A Responses-only upstream (``responses: only``, gpt-5-codex-class models) serving Claude
Code's Messages and the Chat Completions callers, end to end with the official SDKs.

The fake upstream answers /v1/responses; each test asserts the exact body it received and
what the caller got.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway, base_config
from tests.dialects.test_responses import ANSWER, OPENAI_STREAM
from tests.fakes import FakeUpstream


def sse(events: list[dict[str, Any]]) -> list[bytes]:
    """*events* as an OpenAI server writes them: an ``event:`` line, a ``data:`` line."""
    return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
            for e in events]


@pytest.fixture
async def gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                  tmp_path: Path) -> Running:
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["responses"] = "only"
    return await start_gateway(config)


@pytest.fixture
async def claude(gateway: Running) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=gateway.url, auth_token=ALICE, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def chat(gateway: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0)
    yield client
    await client.close()


SHELL = {"name": "shell", "description": "Run a command",
         "input_schema": {"type": "object", "properties": {
             "command": {"type": "array", "items": {"type": "string"}}}}}


class TestMessagesCaller:
    """Claude Code's dialect on a Responses-only channel."""

    async def test_text_stream(self, claude: anthropic.AsyncAnthropic, gateway: Running,
                               upstream: FakeUpstream) -> None:
        async with claude.messages.stream(
                model="smart", max_tokens=1000, system="Be brief.",
                messages=[{"role": "user", "content": "hi"}]) as stream:
            text = await stream.get_final_text()
            final = await stream.get_final_message()
        seen = upstream.seen[-1]
        assert seen.path == "/v1/responses"
        assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
        body = seen.json
        assert body.pop("prompt_cache_key").startswith("h:")  # the session, for the cache
        assert body == {
            "model": "upstream-model", "instructions": "Be brief.",
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "hi"}]}],
            "max_output_tokens": 1000, "store": False, "stream": True}
        assert text == "Hello from upstream!"
        assert final.stop_reason == "end_turn"
        assert (final.usage.input_tokens, final.usage.cache_read_input_tokens,
                final.usage.output_tokens) == (8, 3, 4)
        [row] = await gateway.rows()
        assert (row["endpoint"], row["status"], row["prompt_tokens"], row["cached_tokens"],
                row["completion_tokens"]) == ("/v1/messages", 200, 11, 3, 4)

    async def test_not_streamed_with_reasoning_and_tools(
            self, claude: anthropic.AsyncAnthropic, upstream: FakeUpstream) -> None:
        """An OpenAI answer with a reasoning item, text and a function call becomes thinking,
        text and tool_use blocks; the hosted web_search_call has no counterpart."""
        upstream.then(body=orjson.dumps(ANSWER))
        message = await claude.messages.create(
            model="smart", max_tokens=2000, tools=[SHELL],
            thinking={"type": "enabled", "budget_tokens": 4096},
            messages=[{"role": "user", "content": "list files"}])
        body = upstream.seen[-1].json
        assert body["tools"] == [{"type": "function", "name": "shell",
                                  "description": "Run a command", "strict": False,
                                  "parameters": SHELL["input_schema"]}]
        assert body["reasoning"] == {"effort": "high"}
        assert body["include"] == ["reasoning.encrypted_content"]
        assert (body["store"], body["stream"]) == (False, False)
        assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
        thinking, text, call = message.content
        assert thinking.thinking == "First.\n\nSecond."  # type: ignore[union-attr]
        assert text.text == "Calling."  # type: ignore[union-attr]
        assert (call.id, call.name, call.input) == (  # type: ignore[union-attr]
            "call_1", "shell", {"command": ["ls"]})
        assert message.stop_reason == "tool_use"
        assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
                message.usage.output_tokens) == (40, 60, 30)

    async def test_tool_call_stream(self, claude: anthropic.AsyncAnthropic,
                                    upstream: FakeUpstream) -> None:
        upstream.then(parts=sse(OPENAI_STREAM))
        async with claude.messages.stream(
                model="smart", max_tokens=2000, tools=[SHELL],
                thinking={"type": "enabled", "budget_tokens": 1024},
                messages=[{"role": "user", "content": "list files"}]) as stream:
            final = await stream.get_final_message()
        kinds = [block.type for block in final.content]
        assert kinds == ["thinking", "text", "tool_use"]
        thinking, text, call = final.content
        assert thinking.thinking == "Plan\n\nAct"  # type: ignore[union-attr]
        assert text.text == "On it."  # type: ignore[union-attr]
        assert (call.id, call.name, call.input) == (  # type: ignore[union-attr]
            "call_1", "shell", {"command": ["ls"]})
        assert final.stop_reason == "tool_use"
        assert (final.usage.input_tokens, final.usage.cache_read_input_tokens,
                final.usage.output_tokens) == (10, 80, 20)
        assert thinking.signature.startswith("crenv1.")  # type: ignore[union-attr]

        # Claude Code's next turn replays the thinking block: OpenAI gets its item back
        await claude.messages.create(
            model="smart", max_tokens=2000, tools=[SHELL],
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "list files"},
                      {"role": "assistant", "content": [b.model_dump() for b in final.content]},
                      {"role": "user", "content": [{"type": "tool_result",
                                                    "tool_use_id": "call_1",
                                                    "content": "a.py"}]}])
        assert upstream.seen[-1].json["input"][1:] == [
            {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAA", "summary": [
                {"type": "summary_text", "text": "Plan\n\nAct"}]},
            {"type": "message", "role": "assistant", "content": "On it."},
            {"type": "function_call", "call_id": "call_1", "name": "shell",
             "arguments": '{"command":["ls"]}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.py"}]


class TestChatCaller:
    """Chat Completions callers (opencode, aider, the openai SDK) on a Responses-only channel."""

    async def test_not_streamed(self, chat: openai.AsyncOpenAI,
                                upstream: FakeUpstream) -> None:
        completion = await chat.chat.completions.create(
            model="smart", messages=[{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "hi"}],
            max_completion_tokens=50, reasoning_effort="low")
        assert upstream.seen[-1].path == "/v1/responses"
        body = upstream.seen[-1].json
        assert body.pop("prompt_cache_key").startswith("h:")
        assert body == {
            "model": "upstream-model", "instructions": "Be brief.",
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "hi"}]}],
            "reasoning": {"effort": "low"}, "max_output_tokens": 50, "store": False,
            "include": ["reasoning.encrypted_content"], "stream": False}
        assert completion.choices[0].message.content == "Hello from upstream!"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 4)

    async def test_stream_with_tool_call(self, chat: openai.AsyncOpenAI,
                                         upstream: FakeUpstream) -> None:
        upstream.then(parts=sse(OPENAI_STREAM))
        stream = await chat.chat.completions.create(
            model="smart", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "list files"}],
            tools=[{"type": "function", "function": {
                "name": "shell", "parameters": SHELL["input_schema"]}}])
        text, arguments, calls, finish, usage = "", "", [], None, None
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    if call.id:
                        calls.append((call.id, call.function.name))  # type: ignore[union-attr]
                    arguments += call.function.arguments or ""  # type: ignore[union-attr]
                finish = choice.finish_reason or finish
        assert text == "On it."
        # Chat has no slot for reasoning state: it rides, sealed, on the first call's id
        [(call_id, name)] = calls
        assert call_id.startswith("call_1.crenv1.") and name == "shell"
        assert arguments == '{"command":["ls"]}'
        assert finish == "tool_calls"
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (90, 20)

        # the next turn gives OpenAI back its own reasoning item, byte for byte
        await chat.chat.completions.create(model="smart", messages=[
            {"role": "user", "content": "list files"},
            {"role": "assistant", "content": "On it.", "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "shell", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "a.py"}])
        assert upstream.seen[-1].json["input"] == [
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "list files"}]},
            {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAA", "summary": [
                {"type": "summary_text", "text": "Plan\n\nAct"}]},
            {"type": "message", "role": "assistant", "content": "On it."},
            {"type": "function_call", "call_id": "call_1", "name": "shell",
             "arguments": '{"command":["ls"]}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.py"}]

    async def test_upstream_error(self, chat: openai.AsyncOpenAI,
                                  upstream: FakeUpstream) -> None:
        upstream.then(status=400, body=orjson.dumps({"error": {
            "message": "Your input exceeds the context window of this model.",
            "type": "invalid_request_error", "param": "input",
            "code": "context_length_exceeded"}}))
        with pytest.raises(openai.BadRequestError) as caught:
            await chat.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "hi"}])
        assert "exceeds the context window" in str(caught.value)
