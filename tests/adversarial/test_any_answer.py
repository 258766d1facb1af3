"""Whatever a translated upstream answers, the caller gets its own dialect's answer or error:
property-based, against the real `coderouter serve` process and the real fake upstreams.

Hypothesis takes a real answer of each upstream dialect (Chat, Messages, Responses, Gemini;
whole bodies and stream events) and replaces one part of it by an
arbitrary value or removes it; the upstream answers that to a caller of another dialect.
No answer may be a 500, no stream may end in the relay's internal failure, and the process
stays up.
"""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ALICE, UPSTREAM_KEY, MakeUpstream, base_config
from tests.fake_anthropic import FakeAnthropic, message_body
from tests.fake_gemini import FakeGemini
from tests.service import serving
from tests.test_any_body import mutate

CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [{
    "index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me look.", "reasoning_content": "Think.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"location": "Paris"}'}}]}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
              "prompt_tokens_details": {"cached_tokens": 1}}}
CHAT_CHUNKS = [
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"role": "assistant", "reasoning_content": "Think."}}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                               "function": {"name": "get_weather",
                                                            "arguments": '{"loc'}}]}}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
            "arguments": 'ation": "Paris"}'}}]}, "finish_reason": "tool_calls"}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}]
MESSAGE = {**message_body("m", tool=True)}
MESSAGE["content"] = [{"type": "thinking", "thinking": "Think.", "signature": "sig"},
                      *MESSAGE["content"]]
MESSAGE_EVENTS = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
        "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "thinking", "thinking": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "thinking_delta", "thinking": "Think."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "signature_delta", "signature": "sig"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": '{"location": "Paris"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                       "usage": {"output_tokens": 9}}),
    ("message_stop", {"type": "message_stop"})]
RESPONSE = {
    "id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
    "output": [
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA",
         "summary": [{"type": "summary_text", "text": "Think."}]},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"location": "Paris"}', "status": "completed"}],
    "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
              "input_tokens_details": {"cached_tokens": 1},
              "output_tokens_details": {"reasoning_tokens": 2}}}
GEMINI = {"candidates": [{"index": 0, "finishReason": "STOP", "content": {
    "role": "model", "parts": [
    {"text": "Think.", "thought": True},
    {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
     "thoughtSignature": "c2ln"},
    {"text": "Let me look."}]}}],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
    "modelVersion": "gemini-2.5-flash", "responseId": "r1"}
RESPONSE_EVENTS = [
    {"type": "response.created", "response": {"id": "resp_1", "model": "m",
                                              "status": "in_progress", "output": []}},
    {"type": "response.output_item.added", "output_index": 0,
     "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
    {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0,
     "delta": "Think."},
    {"type": "response.output_item.done", "output_index": 0, "item": RESPONSE["output"][0]},
    {"type": "response.output_item.added", "output_index": 1, "item": {
        "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
        "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "output_index": 1,
     "delta": '{"location": "Paris"}'},
    {"type": "response.output_item.done", "output_index": 1, "item": RESPONSE["output"][2]},
    {"type": "response.completed", "response": RESPONSE}]
GEMINI_CHUNKS = [
    {"candidates": [{"index": 0, "content": {"role": "model", "parts": [
        {"text": "Think.", "thought": True}]}}],
     "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}},
    {"candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
         "thoughtSignature": "c2ln"}]}}],
     "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7,
                       "totalTokenCount": 12}}]
ASK = [{"role": "user", "content": "Weather in Paris?"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}
#: (upstream, caller path, caller body) for each case.
CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "chat": ("chat", "/v1/messages", {"model": "chat", "max_tokens": 50, "messages": ASK}),
    "chat-stream": ("chat", "/v1/responses", {"model": "chat", "input": "Weather?",
                                              "stream": True}),
    "messages": ("messages", "/v1/chat/completions", {"model": "claude", "messages": ASK,
                                                      "tools": [TOOL]}),
    "messages-stream": ("messages", "/v1/chat/completions", {
        "model": "claude", "messages": ASK, "tools": [TOOL], "stream": True}),
    "responses": ("responses", "/v1/messages", {"model": "gpt", "max_tokens": 50,
                                                "messages": ASK}),
    "responses-stream": ("responses", "/v1/messages", {"model": "gpt", "max_tokens": 50,
                                                       "messages": ASK, "stream": True}),
    "gemini": ("gemini", "/v1/chat/completions", {"model": "gem", "messages": ASK}),
    "gemini-stream": ("gemini", "/v1/chat/completions", {"model": "gem", "messages": ASK,
                                                         "stream": True}),
}
BASES: dict[str, Any] = {"chat": CHAT, "chat-stream": CHAT_CHUNKS, "messages": MESSAGE,
                         "messages-stream": MESSAGE_EVENTS, "responses": RESPONSE,
                         "responses-stream": RESPONSE_EVENTS, "gemini": GEMINI,
                         "gemini-stream": GEMINI_CHUNKS}


def answer_bytes(case: str, value: Any) -> bytes:
    if case.endswith("-stream"):
        chunks = value if isinstance(value, list) else [value]
        return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) \
            + (b"data: [DONE]\n\n" if case == "chat-stream" else b"")
    return orjson.dumps(value)


def message_events(value: Any) -> list[bytes]:
    events = value if isinstance(value, list) else [value]
    out = []
    for item in events:
        name, data = item if isinstance(item, list | tuple) and len(item) == 2 \
            else ("message_delta", item)
        out.append(b"event: " + str(name).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
    return out


async def test_no_upstream_answer_is_a_500(
        make_upstream: MakeUpstream, anthropic_upstream: FakeAnthropic, aiohttp_server: Any,
        tmp_path: Path) -> None:
    chat, gpt = await make_upstream(), await make_upstream()
    gemini = FakeGemini()
    gemini_url = str((await aiohttp_server(gemini.app)).make_url("")).rstrip("/")
    config = base_config(chat.url, tmp_path)
    config["channels"] = [
        {"name": "chat", "type": "openai", "base_url": chat.url, "keys": [UPSTREAM_KEY]},
        {"name": "gpt", "type": "openai", "base_url": gpt.url, "keys": [UPSTREAM_KEY],
         "responses": "only"},
        {"name": "claude", "type": "anthropic", "base_url": anthropic_upstream.url,
         "keys": [UPSTREAM_KEY]},
        {"name": "gem", "type": "gemini", "base_url": gemini_url, "keys": [UPSTREAM_KEY]}]
    config["model_groups"] = [
        {"name": name, "targets": [{"channel": name, "model": "m"}], "retry": {"attempts": 1},
         "reasoning": True} for name in ("chat", "gpt", "claude", "gem")]
    config["tokens"][0]["rate_limit"] = {"rpm": 10**6, "tpm": 10**12, "concurrent": 100}

    def queue(case: str, value: Any) -> None:
        upstream = CALLS[case][0]
        if upstream in ("chat", "responses"):
            fake = chat if upstream == "chat" else gpt
            fake.then(body=answer_bytes(case, value), content_type="text/event-stream"
                      if case.endswith("stream") else "application/json")
        elif case == "messages-stream":
            anthropic_upstream.then(events=message_events(value))
        elif upstream == "messages":
            anthropic_upstream.then(body=answer_bytes(case, value))
        elif case == "gemini-stream":
            gemini.then(events=[answer_bytes(case, [chunk]) for chunk in
                                (value if isinstance(value, list) else [value])])
        else:
            gemini.then(body=answer_bytes(case, value))

    async with serving(config, tmp_path) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        await asyncio.to_thread(run_examples, port, queue)
        assert gateway.proc.returncode is None


def run_examples(port: int, queue: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data(), case=st.sampled_from(sorted(CALLS)))
    def example(data: st.DataObject, case: str) -> None:
        base = BASES[case]
        if case == "messages-stream":
            base = [list(pair) for pair in base]
        value = mutate(data, base)
        queue(case, value)
        _, path, body = CALLS[case]
        connection.request("POST", path, body=orjson.dumps(body), headers={
            "Authorization": f"Bearer {ALICE}", "Content-Type": "application/json",
            "anthropic-version": "2023-06-01"})
        response = connection.getresponse()
        answer = response.read()
        assert response.status != 500, (case, value, answer[:500])
        assert b"relay failed" not in answer, (case, value, answer[:500])

    try:
        example()
    finally:
        connection.close()
