"""The Chat Completions codec on its own: reasoning_content both ways, usage, tools, errors.
Shapes follow the OpenAI API reference and what DeepSeek, Qwen and vLLM send; encoded answers
are validated against the official openai SDK's types."""

from __future__ import annotations

from typing import Any

import openai.types.chat
import orjson
import pytest

from coderouter.dialects import ir
from coderouter.dialects.chat import CODEC as CHAT
from coderouter.dialects.codec import CodecError


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return orjson.dumps({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
                         "model": "deepseek-reasoner", "choices": [
                             {"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}], **extra})


def decode_stream(chunks: list[bytes]) -> list[ir.Event]:
    decoder = CHAT.stream_decoder()
    events = [e for c in chunks for e in decoder.feed("", c)]
    return events + decoder.close()


def parse_chunks(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for frame in raw.removesuffix(b"\n\n").split(b"\n\n"):
        payload = frame.removeprefix(b"data: ")
        if payload == b"[DONE]":
            out.append("[DONE]")
            continue
        obj = orjson.loads(payload)
        if "error" not in obj:
            openai.types.chat.ChatCompletionChunk.model_validate(obj)
        out.append(obj)
    return out


def test_reasoning_content_streams_as_a_reasoning_part_before_the_text() -> None:
    """DeepSeek's reasoning_content deltas open a Reasoning part; content then opens a Text
    part, ending the reasoning one; [DONE] finishes with the usage chunk's counts."""
    usage = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
             "prompt_tokens_details": {"cached_tokens": 10},
             "completion_tokens_details": {"reasoning_tokens": 8}}
    events = decode_stream([
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        chunk({"reasoning_content": "Think"}), chunk({"reasoning_content": "ing."}),
        chunk({"content": "Answer"}), chunk({}, "stop"),
        orjson.dumps({"id": "chatcmpl-9", "choices": [], "usage": usage}), b"[DONE]"])
    expected_usage = ir.Usage(30, 12, cached_tokens=10, reasoning_tokens=8)
    assert events == [
        ir.Start("chatcmpl-9", "deepseek-reasoner"),
        ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Think"), ir.PartDelta(0, "ing."),
        ir.PartEnd(0), ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "Answer"), ir.PartEnd(1),
        ir.UsageUpdate(expected_usage), ir.Finish("stop", expected_usage)]


def test_vllm_reasoning_field_and_empty_tool_calls_list() -> None:
    """vLLM's ``reasoning`` field counts as reasoning; ``tool_calls: []`` opens nothing."""
    events = decode_stream([chunk({"reasoning": "r", "tool_calls": []}),
                            chunk({"content": "t", "tool_calls": []}), b"[DONE]"])
    parts = [e.part for e in events if isinstance(e, ir.PartStart)]
    assert parts == [ir.Reasoning(), ir.Text("")]


def test_cut_stream_fails_and_error_chunk_fails_with_its_kind() -> None:
    """No [DONE]: a Failure, never a Finish. An error object: a Failure with its kind."""
    assert decode_stream([chunk({"content": "a"})])[-1] == ir.Failure(
        "upstream closed the stream before it was complete")
    error = orjson.dumps({"error": {"message": "too long", "code": "context_length_exceeded"}})
    assert decode_stream([error])[-1] == ir.Failure("too long", "context_length")


def test_reasoning_encodes_as_reasoning_content_deltas_and_message_field() -> None:
    """Reasoning parts reach a Chat caller as reasoning_content, streamed and not."""
    request = ir.Request("m", hints={"include_usage": True})
    encoder = CHAT.stream_encoder("alias", request, 0)
    usage = ir.Usage(5, 7, reasoning_tokens=3)
    raw = b"".join(encoder.feed(e) for e in [
        ir.Start("x", "up"), ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "hmm"),
        ir.PartSignature(0, ir.Opaque("messages", "sig")), ir.PartEnd(0),
        ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "ok"), ir.PartEnd(1),
        ir.Finish("stop", usage)]) + encoder.close()
    chunks = parse_chunks(raw)
    assert [c["choices"][0]["delta"] for c in chunks[:-2]] == [
        {"role": "assistant", "content": ""}, {"reasoning_content": "hmm"}, {"content": "ok"},
        {}]
    assert chunks[-2]["usage"] == {"prompt_tokens": 5, "completion_tokens": 7,
                                   "total_tokens": 12,
                                   "prompt_tokens_details": {"cached_tokens": 0},
                                   "completion_tokens_details": {"reasoning_tokens": 3}}
    assert chunks[-1] == "[DONE]"
    assert b"sig" not in raw  # Chat has no slot for opaque state: the hub carries it
    answer = CHAT.encode_response(ir.Response("x", "up", [
        ir.Reasoning("hmm", ir.Opaque("messages", "sig")), ir.Text("ok")]), "alias")
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "ok",
                                               "reasoning_content": "hmm"}
    openai.types.chat.ChatCompletion.model_validate(answer)


def test_assistant_reasoning_content_decodes_first_and_goes_back_on_tool_turns() -> None:
    """reasoning_content of a history turn is a Reasoning part; encoded for a reasoning
    request, every tool-call turn carries reasoning_content (DeepSeek's thinking mode
    refuses one without), empty when the turn had none; a request without reasoning sends
    none where there was none (strict servers refuse the field)."""
    body = {"model": "m", "reasoning_effort": "high", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "reasoning_content": "plan",
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "ls", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c2", "type": "function",
                         "function": {"name": "ls", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "b"}]}
    request = CHAT.decode_request(body)
    assert request.messages[1].parts[0] == ir.Reasoning("plan")
    assert request.reasoning == ir.ReasoningConfig(effort="high")
    sent = CHAT.encode_request(request)
    assert [m.get("reasoning_content") for m in sent["messages"]] == [
        None, "plan", None, "", None]
    assert sent["reasoning_effort"] == "high"
    request.reasoning = None
    assert [m.get("reasoning_content") for m in CHAT.encode_request(request)["messages"]] == [
        None, "plan", None, None, None]


@pytest.mark.parametrize(("config", "effort"), [
    (ir.ReasoningConfig(budget=1024), "low"),
    (ir.ReasoningConfig(budget=2048), "medium"),
    (ir.ReasoningConfig(budget=31999), "high"),
    (ir.ReasoningConfig(budget=100), "low"),
    (ir.ReasoningConfig(effort="max"), "high"),
    (ir.ReasoningConfig(effort="minimal"), "low"),
    (ir.ReasoningConfig(enabled=False), None),
    (ir.ReasoningConfig(), None),
])
def test_reasoning_config_becomes_reasoning_effort(config: ir.ReasoningConfig,
                                                   effort: str | None) -> None:
    """Budgets map by LiteLLM's buckets, then onto what every Chat server accepts."""
    sent = CHAT.encode_request(ir.Request("m", reasoning=config))
    assert sent.get("reasoning_effort") == effort


def test_deepseek_thinking_switch_decodes() -> None:
    """DeepSeek's and GLM's thinking {type} switch decodes to the neutral setting."""
    assert CHAT.decode_request({"model": "m", "messages": [],
                                "thinking": {"type": "disabled"}}).reasoning == \
        ir.ReasoningConfig(enabled=False)
    assert CHAT.decode_request({"model": "m", "messages": [],
                                "thinking": {"type": "enabled"}}).reasoning == \
        ir.ReasoningConfig()


def test_custom_tools_and_calls_round_trip() -> None:
    """Chat's own custom (freeform) tools and calls decode to kind "custom" and back."""
    body = {"model": "m", "tools": [{"type": "custom", "custom": {
        "name": "apply_patch", "description": "Patch",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}}}],
        "tool_choice": {"type": "custom", "custom": {"name": "apply_patch"}},
        "messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "custom", "custom": {"name": "apply_patch",
                                                     "input": "*** Begin"}}]}]}
    request = CHAT.decode_request(body)
    assert request.tools[0].kind == "custom"
    assert request.messages[0].parts == [ir.ToolCall("c", "apply_patch", "*** Begin",
                                                     kind="custom")]
    sent = CHAT.encode_request(request)
    assert (sent["tools"], sent["tool_choice"]) == (body["tools"], body["tool_choice"])
    assert sent["messages"] == body["messages"]


def test_tool_choice_naming_a_dropped_tool_is_left_out() -> None:
    """A tool choice naming a tool Chat cannot carry (a server tool) is not sent."""
    request = ir.Request("m", tools=[
        ir.Tool("web_search", kind="builtin", raw={"type": "web_search_20250305"},
                dialect="messages"), ir.Tool("ls")],
        tool_choice=ir.ToolChoice("tool", "web_search"))
    sent = CHAT.encode_request(request)
    assert [t["function"]["name"] for t in sent["tools"]] == ["ls"]
    assert "tool_choice" not in sent


def test_usage_decodes_cached_and_reasoning_tokens() -> None:
    """OpenAI's details and DeepSeek's prompt_cache_hit_tokens both give cached tokens."""
    answer = {"id": "x", "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "a"}}]}
    openai_usage = {"prompt_tokens": 10, "completion_tokens": 5,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 2}}
    deepseek_usage = {"prompt_tokens": 10, "completion_tokens": 5,
                      "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4}
    assert CHAT.decode_response({**answer, "usage": openai_usage}).usage == ir.Usage(
        10, 5, cached_tokens=4, reasoning_tokens=2)
    assert CHAT.decode_response({**answer, "usage": deepseek_usage}).usage == ir.Usage(
        10, 5, cached_tokens=6)


def test_errors_decode_to_kinds_and_encode_in_openai_shape() -> None:
    """Upstream bodies give (message, kind); encode gives the OpenAI error object."""
    assert CHAT.decode_error(429, b'{"error":{"message":"slow down"}}') == (
        "slow down", "rate_limit")
    assert CHAT.decode_error(400, b'{"error":{"message":"long",'
                                  b'"code":"context_length_exceeded"}}') == (
        "long", "context_length")
    assert CHAT.decode_error(502, b"<html>bad gateway</html>") == (
        "<html>bad gateway</html>", "server_error")
    assert orjson.loads(CHAT.encode_error(401, "no", "authentication")) == {"error": {
        "message": "no", "type": "authentication_error", "code": None, "param": None}}
    assert CHAT.error_event("gone", "server_error") == (
        b'data: {"error":{"message":"gone","type":"upstream_error","code":"upstream_error"}}'
        b"\n\ndata: [DONE]\n\n")


@pytest.mark.parametrize(("body", "where"), [
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": 1}]}]},
     "messages[0].tool_calls[0].id"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a"}}]}]}, "messages[0].content[0].file"),
    ({"model": "m", "messages": [], "stop": [1]}, "stop[]"),
])
def test_structural_errors_name_the_place(body: dict[str, Any], where: str) -> None:
    with pytest.raises(CodecError, match=where.replace("[", r"\[").replace("]", r"\]")):
        CHAT.decode_request(body)


def test_unknown_part_types_are_skipped() -> None:
    """A content part type newer than this gateway is skipped, not refused."""
    request = CHAT.decode_request({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "hologram", "x": 1}, {"type": "text", "text": "hi"}]}]})
    assert request.messages[0].parts == [ir.Text("hi")]
