"""Gemini across dialects, end to end through the real server: Gemini callers (google-genai)
on Chat and Messages channels, and Chat, Messages and Responses callers (the openai and
anthropic SDKs) on a gemini channel. Each test asserts what the upstream received and what
the client got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import types

from tests.conftest import ALICE, Running, StartGateway, coding_config
from tests.fake_anthropic import COUNTED as ANTHROPIC_COUNTED
from tests.fake_anthropic import TOOL_ID, TOOL_TEXT, FakeAnthropic
from tests.fake_gemini import CALL, SIGNATURE, TEXT, THOUGHT, USAGE, FakeGemini, sse
from tests.fake_gemini import COUNTED as GEMINI_COUNTED
from tests.fake_gemini import chunk as gemini_chunk
from tests.fake_gemini import error as google_error
from tests.fakes import WORDS, FakeUpstream
from tests.test_gemini_routes import UPSTREAM_MODEL

WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather of a place",
    parameters_json_schema={"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]})
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}},
                  "required": ["location"]}


@pytest.fixture
async def gemini_upstream(aiohttp_server: Any) -> FakeGemini:
    fake = FakeGemini()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def gw(start_gateway: StartGateway, upstream: FakeUpstream,
             anthropic_upstream: FakeAnthropic, gemini_upstream: FakeGemini,
             tmp_path: Path) -> Running:
    """Groups: `smart` (Chat), `claude` (Messages), `gem` (Gemini)."""
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"].append({"name": "google", "type": "gemini",
                               "base_url": gemini_upstream.url, "keys": ["g-key"]})
    config["model_groups"].append(
        {"name": "gem", "targets": [{"channel": "google", "model": UPSTREAM_MODEL}]})
    return await start_gateway(config)


@dataclass
class Clients:
    gemini: genai.client.AsyncClient
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


@pytest.fixture
async def sdk(gw: Running) -> AsyncIterator[Clients]:
    """The three official SDKs on the gateway; google-genai as the Gemini CLI calls (v1beta)."""
    gemini = genai.Client(api_key=ALICE, http_options=types.HttpOptions(
        base_url=gw.url, api_version="v1beta",
        retry_options=types.HttpRetryOptions(attempts=1))).aio
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=ALICE, max_retries=0) as oai, \
            anthropic.AsyncAnthropic(base_url=gw.url, api_key=ALICE, max_retries=0) as claude:
        yield Clients(gemini, oai, claude)
    await gemini.aclose()


def tool_config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        system_instruction="Be brief.", tools=[types.Tool(function_declarations=[WEATHER])],
        max_output_tokens=300)


class TestGeminiCallerOnMessages:
    @pytest.mark.parametrize("stream", [False, True])
    async def test_tool_round_trip(self, gw: Running, sdk: Clients,
                                   anthropic_upstream: FakeAnthropic, stream: bool) -> None:
        """Claude's tool_use reaches the Gemini client as a functionCall with the tool_use id;
        the functionResponse goes back as a tool_result for that id."""
        contents: list[Any] = [types.Content(role="user", parts=[
            types.Part(text="Weather in SF?")])]
        if stream:
            got = [c async for c in await sdk.gemini.models.generate_content_stream(
                model="claude", contents=contents, config=tool_config())]
            text = "".join(c.text or "" for c in got)
            calls = [fc for c in got for fc in c.function_calls or []]
            last = got[-1]
        else:
            last = await sdk.gemini.models.generate_content(model="claude", contents=contents,
                                                     config=tool_config())
            text, calls = last.text or "", last.function_calls or []
        assert text == TOOL_TEXT
        assert [(c.id, c.name, c.args) for c in calls] == [
            (TOOL_ID, "get_weather", {"location": "San Francisco, CA"})]
        assert last.candidates is not None
        assert last.candidates[0].finish_reason == types.FinishReason.STOP
        assert last.usage_metadata is not None
        assert (last.usage_metadata.prompt_token_count,
                last.usage_metadata.candidates_token_count,
                last.usage_metadata.cached_content_token_count) == (132, 15, 100)
        breakpoint = {"cache_control": {"type": "ephemeral"}}  # the hub adds them
        assert anthropic_upstream.seen[0].json == {
            "model": "claude-upstream", "max_tokens": 300,
            "system": [{"type": "text", "text": "Be brief.", **breakpoint}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Weather in SF?", **breakpoint}]}],
            "tools": [{"name": "get_weather", "description": "Weather of a place",
                       "input_schema": WEATHER_SCHEMA, **breakpoint}],
            **({"stream": True} if stream else {})}

        # turn two: the Gemini CLI's shape of the answer, without the name-free ids it lacks
        contents += [
            types.Content(role="model", parts=[
                types.Part(text=TOOL_TEXT),
                types.Part(function_call=types.FunctionCall(
                    id=TOOL_ID, name="get_weather", args={"location": "San Francisco, CA"}))]),
            types.Content(role="user", parts=[types.Part(
                function_response=types.FunctionResponse(
                    id=TOOL_ID, name="get_weather", response={"output": "Sunny, 18C"}))])]
        answer = await sdk.gemini.models.generate_content(model="claude", contents=contents,
                                                   config=tool_config())
        assert answer.text == "Hello!"
        second = anthropic_upstream.seen[1].json
        assert second["messages"][1:] == [
            {"role": "assistant", "content": [
                {"type": "text", "text": TOOL_TEXT},
                {"type": "tool_use", "id": TOOL_ID, "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": TOOL_ID, "content": "Sunny, 18C",
                 **breakpoint}]}]
        rows = await gw.rows()
        assert [(r["endpoint"], r["channel"], r["status"]) for r in rows] == [
            (f"/v1beta/models/claude:{'streamGenerateContent' if stream else 'generateContent'}",
             "claude", 200),
            ("/v1beta/models/claude:generateContent", "claude", 200)]
        assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"],
                rows[0]["cached_tokens"]) == (132, 15, 100)

    async def test_upstream_error_in_googles_shape(self, gw: Running, sdk: Clients,
                                                   anthropic_upstream: FakeAnthropic) -> None:
        anthropic_upstream.then(status=400)
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1beta/models/claude:generateContent",
                                   headers={"x-goog-api-key": ALICE},
                                   json={"contents": [{"parts": [{"text": "hi"}]}]})
            assert resp.status == 400
            assert await resp.json() == {"error": {
                "code": 400, "message": "messages: at least one message is required",
                "status": "INVALID_ARGUMENT"}}

    async def test_stream_cut_ends_with_a_google_error(
            self, gw: Running, anthropic_upstream: FakeAnthropic) -> None:
        anthropic_upstream.then(cut_after=4, tool=False)
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                f"{gw.url}/v1beta/models/claude:streamGenerateContent?alt=sse",
                headers={"x-goog-api-key": ALICE},
                json={"contents": [{"parts": [{"text": "hi"}]}]})
            raw = await resp.read()
        events = [orjson.loads(e[6:]) for e in raw.split(b"\r\n\r\n") if e]
        assert events[0]["candidates"][0]["content"]["parts"] == [{"text": "Hello"}]
        assert events[-1]["error"]["code"] == 500
        assert events[-1]["error"]["status"] == "INTERNAL"
        assert events[-1]["error"]["message"] == "upstream connection lost mid-stream"
        assert "finishReason" not in raw.decode()


class TestGeminiCallerOnChat:
    async def test_stream_text(self, gw: Running, sdk: Clients, upstream: FakeUpstream) -> None:
        got = [c async for c in await sdk.gemini.models.generate_content_stream(
            model="smart", contents="hi",
            config=types.GenerateContentConfig(temperature=0.5, top_p=0.9))]
        assert "".join(c.text or "" for c in got) == "".join(WORDS)
        assert got[-1].usage_metadata is not None
        assert (got[-1].usage_metadata.prompt_token_count,
                got[-1].usage_metadata.candidates_token_count,
                got[-1].usage_metadata.cached_content_token_count) == (11, 4, 3)
        body = upstream.seen[0].json
        assert body["model"] == "upstream-model" and body["stream"] is True
        assert body["messages"] == [{"role": "user", "content": "hi"}]
        assert (body["temperature"], body["top_p"]) == (0.5, 0.9)
        [row] = await gw.rows()
        assert (row["prompt_tokens"], row["completion_tokens"], row["status"]) == (11, 4, 200)


class TestOthersOnGemini:
    @pytest.mark.parametrize("stream", [False, True])
    async def test_chat_caller_tool_round_trip(self, gw: Running, sdk: Clients,
                                               gemini_upstream: FakeGemini, stream: bool) -> None:
        """The openai SDK on a gemini channel: the functionCall comes back as a tool call
        (id synthesised, the call's thoughtSignature sealed onto it), the tool message goes to
        Gemini as a functionResponse named after its call, the signature back on the call."""
        messages: list[Any] = [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Weather in Paris?"}]
        tools: list[Any] = [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a place",
            "parameters": WEATHER_SCHEMA}}]
        if stream:
            parts = [c async for c in await sdk.openai.chat.completions.create(
                model="gem", messages=messages, tools=tools, stream=True,
                stream_options={"include_usage": True})]
            deltas = [tc for c in parts if c.choices for tc in c.choices[0].delta.tool_calls or []]
            call_id, name = deltas[0].id, deltas[0].function.name  # type: ignore[union-attr]
            arguments = "".join(d.function.arguments or "" for d in deltas)  # type: ignore[union-attr]
            finish = [c.choices[0].finish_reason for c in parts if c.choices][-1]
            usage = parts[-1].usage
        else:
            answer = await sdk.openai.chat.completions.create(model="gem", messages=messages,
                                                          tools=tools)
            [call] = answer.choices[0].message.tool_calls or []
            call_id, name = call.id, call.function.name  # type: ignore[union-attr]
            arguments = call.function.arguments  # type: ignore[union-attr]
            finish, usage = answer.choices[0].finish_reason, answer.usage
        assert (name, orjson.loads(arguments), finish) == (
            "get_weather", CALL["args"], "tool_calls")
        assert call_id
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (30, 27)
        seen = gemini_upstream.seen[0]
        assert seen.path == f"/v1beta/models/{UPSTREAM_MODEL}:" + (
            "streamGenerateContent" if stream else "generateContent")
        assert seen.query == ("alt=sse" if stream else "")
        assert seen.headers["x-goog-api-key"] == "g-key"
        assert seen.json == {
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [{
                "name": "get_weather", "description": "Weather of a place",
                "parametersJsonSchema": WEATHER_SCHEMA}]}]}

        messages += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "get_weather", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "Sunny"}]
        answer = await sdk.openai.chat.completions.create(model="gem", messages=messages,
                                                      tools=tools)
        assert answer.choices[0].message.content == "".join(TEXT)
        own_id, _, sealed = call_id.partition(".")
        assert sealed.startswith("crenv1.")
        assert gemini_upstream.seen[1].json["contents"][1:] == [
            {"role": "model", "parts": [
                {"functionCall": {"id": own_id, "name": "get_weather", "args": CALL["args"]},
                 "thoughtSignature": SIGNATURE}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": own_id, "name": "get_weather",
                                      "response": {"output": "Sunny"}}}]}]

    async def test_messages_caller_stream_with_thoughts(self, gw: Running, sdk: Clients,
                                                        gemini_upstream: FakeGemini) -> None:
        """The anthropic SDK with thinking on: Gemini's thought part is a thinking block,
        its functionCall a tool_use."""
        async with sdk.anthropic.messages.stream(
                model="gem", max_tokens=2000,
                thinking={"type": "enabled", "budget_tokens": 1024},
                tools=[{"name": "get_weather", "description": "Weather of a place",
                        "input_schema": WEATHER_SCHEMA}],
                messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
            message = await stream.get_final_message()
        kinds = [(b.type, getattr(b, "thinking", None) or getattr(b, "input", None))
                 for b in message.content]
        assert kinds == [("thinking", THOUGHT), ("tool_use", CALL["args"])]
        assert message.stop_reason == "tool_use"
        assert (message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0),
                message.usage.output_tokens) == (30, 27)
        sent = gemini_upstream.seen[0].json
        assert sent["generationConfig"]["maxOutputTokens"] == 2000
        assert sent["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
        assert sent["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 1024

    async def test_responses_caller_stream(self, gw: Running, sdk: Clients,
                                           gemini_upstream: FakeGemini) -> None:
        events = [e async for e in await sdk.openai.responses.create(
            model="gem", input="hi", instructions="Be brief.", stream=True)]
        assert events[0].type == "response.created"
        assert events[-1].type == "response.completed"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == "".join(TEXT)
        usage = events[-1].response.usage  # type: ignore[union-attr]
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens,
                usage.input_tokens_details.cached_tokens,
                usage.output_tokens_details.reasoning_tokens) == (30, 27, 10, 20)
        assert gemini_upstream.seen[0].json["systemInstruction"] == {
            "parts": [{"text": "Be brief."}]}

    async def test_gemini_error_reaches_a_chat_caller_in_openai_shape(
            self, gw: Running, sdk: Clients, gemini_upstream: FakeGemini) -> None:
        gemini_upstream.then(status=400, body=google_error(
            400, "Function calling config is invalid", "INVALID_ARGUMENT"))
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.openai.chat.completions.create(
                model="gem", messages=[{"role": "user", "content": "hi"}])
        assert "Function calling config is invalid" in str(caught.value)

    async def test_gemini_stream_cut_reaches_a_chat_caller_as_an_error(
            self, gw: Running, gemini_upstream: FakeGemini) -> None:
        gemini_upstream.then(tool=False, events=[sse(gemini_chunk([{"text": "Hel"}]))])
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1/chat/completions",
                                   headers={"Authorization": f"Bearer {ALICE}"},
                                   json={"model": "gem", "stream": True, "messages": [
                                       {"role": "user", "content": "hi"}]})
            raw = await resp.read()
        assert b'"content":"Hel"' in raw
        assert b'"error"' in raw and b"finish_reason\":\"stop" not in raw
        [row] = await gw.rows()
        assert row["status"] == 502

    async def test_signature_and_usage(self, gw: Running, sdk: Clients,
                                       gemini_upstream: FakeGemini) -> None:
        """The signature Gemini put on its call is not handed to a Chat caller (it has no
        slot for it); usage is exact."""
        answer = await sdk.openai.chat.completions.create(
            model="gem", messages=[{"role": "user", "content": "Weather?"}],
            tools=[{"type": "function", "function": {"name": "get_weather",
                                                     "parameters": WEATHER_SCHEMA}}])
        assert SIGNATURE not in answer.model_dump_json()
        [row] = await gw.rows()
        assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (
            USAGE["promptTokenCount"], 27, 10)


class TestCountingAcross:
    async def test_gemini_count_tokens_on_a_messages_channel(
            self, gw: Running, sdk: Clients, anthropic_upstream: FakeAnthropic) -> None:
        """countTokens is answered by Anthropic's count_tokens, not estimated."""
        counted = await sdk.gemini.models.count_tokens(
            model="claude", contents=[types.Content(role="user", parts=[
                types.Part(text="How many?")])])
        assert counted.total_tokens == ANTHROPIC_COUNTED
        seen = anthropic_upstream.seen[0]
        assert seen.path == "/v1/messages/count_tokens"
        assert seen.json == {"model": "claude-upstream", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "How many?"}]}]}
        [row] = await gw.rows()
        assert (row["endpoint"], row["channel"], row["total_tokens"], row["usage_source"]) == (
            "/v1beta/models/claude:countTokens", "claude", 0, "upstream")

    async def test_messages_count_tokens_on_a_gemini_channel(
            self, gw: Running, sdk: Clients, gemini_upstream: FakeGemini) -> None:
        counted = await sdk.anthropic.messages.count_tokens(
            model="gem", system="Be brief.", messages=[{"role": "user", "content": "How many?"}],
            tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA}])
        assert counted.input_tokens == GEMINI_COUNTED
        seen = gemini_upstream.seen[0]
        assert seen.path == f"/v1beta/models/{UPSTREAM_MODEL}:countTokens"
        assert seen.json == {"generateContentRequest": {
            "model": f"models/{UPSTREAM_MODEL}",
            "contents": [{"role": "user", "parts": [{"text": "How many?"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [
                {"name": "get_weather", "parametersJsonSchema": WEATHER_SCHEMA}]}]}}
        [row] = await gw.rows()
        assert (row["channel"], row["total_tokens"], row["usage_source"]) == (
            "google", 0, "upstream")

    async def test_count_error_in_the_callers_shape(self, gw: Running, sdk: Clients,
                                                    gemini_upstream: FakeGemini) -> None:
        gemini_upstream.then(status=400, body=google_error(400, "bad contents",
                                                           "INVALID_ARGUMENT"))
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.anthropic.messages.count_tokens(
                model="gem", messages=[{"role": "user", "content": "x"}])
        assert caught.value.body == {"type": "error", "error": {
            "type": "invalid_request_error", "message": "bad contents"}}


class TestGeminiCallerOnMock:
    @pytest.mark.parametrize("stream", [False, True])
    async def test_the_demo_channel_answers_gemini(self, gw: Running, sdk: Clients,
                                                   stream: bool) -> None:
        """The mock channel (the example config's) serves a Gemini caller too."""
        if stream:
            got = [c async for c in await sdk.gemini.models.generate_content_stream(
                model="mocked", contents="Say something")]
            text = "".join(c.text or "" for c in got)
            last = got[-1]
        else:
            last = await sdk.gemini.models.generate_content(model="mocked",
                                                            contents="Say something")
            text = last.text or ""
        assert text == "Hello from the Code Router mock channel. You said: Say something"
        assert last.candidates is not None
        assert last.candidates[0].finish_reason == types.FinishReason.STOP
        assert last.usage_metadata is not None and last.usage_metadata.total_token_count
        [row] = await gw.rows()
        assert (row["channel"], row["status"]) == ("mock", 200)
