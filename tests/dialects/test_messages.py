"""The Anthropic Messages codec on its own: thinking and signatures, Claude Code's fields,
cache breakpoints, usage, errors. Shapes follow Anthropic's API reference and what Claude Code
sends; encoded answers and events are validated against the official anthropic SDK's types."""

from __future__ import annotations

from typing import Any

import anthropic.types
import orjson
import pydantic
import pytest

from coderouter.dialects import ir
from coderouter.dialects.chat import CODEC as CHAT
from coderouter.dialects.messages import CODEC as MESSAGES
from coderouter.dialects.messages.request import hashed_user, session_of

EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
CLAUDE_CODE_USER = ('{"device_id":"5b1f0a8e9c","account_uuid":"","session_id":'
                    '"8f2c1d4e-aaaa-bbbb-cccc-0123456789ab"}')


def parse(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in raw.removesuffix(b"\n\n").split(b"\n\n"):
        name, data = frame.split(b"\n")
        obj = orjson.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + obj["type"].encode()
        if obj["type"] == "error":
            anthropic.types.ErrorResponse.model_validate(obj)
        else:
            EVENT.validate_python(obj)
        events.append(obj)
    return events


def claude_code_body() -> dict[str, Any]:
    """A Claude Code turn: billing block, cached system, thinking, a tool cycle, a
    mid-conversation system message, beta fields and a server tool."""
    return {
        "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
                   {"type": "text", "text": "You are Claude Code.",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "fix it"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Look first.", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "tool_use", "id": "toolu_1", "name": "Read",
                 "input": {"file_path": "/a.py"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print(1)",
                 "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "The user changed a file."},
        ],
        "tools": [
            {"name": "Read", "description": "Read a file", "strict": True,
             "defer_loading": False, "input_examples": [{"file_path": "/x"}],
             "cache_control": {"type": "ephemeral"},
             "input_schema": {"type": "object", "properties": {
                 "file_path": {"type": "string"}}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "metadata": {"user_id": CLAUDE_CODE_USER},
    }


def test_claude_code_turn_decodes_with_thinking_signatures_and_session() -> None:
    """Thinking keeps its signature as messages-issued opaque state; redacted thinking its
    data; the system message stays in place; effort, session and a hashed user decode."""
    request = MESSAGES.decode_request(claude_code_body())
    assert [m.role for m in request.messages] == [
        "system", "user", "assistant", "user", "system"]
    assert request.messages[0].parts == [
        ir.Text("x-anthropic-billing-header: cc_version=2.1"),
        ir.Text("You are Claude Code.", cache=True)]
    assert request.messages[2].parts == [
        ir.Reasoning("Look first.", ir.Opaque("messages", SIGNATURE)),
        ir.Reasoning(signature=ir.Opaque("messages", "EmwKAhgB"), redacted=True),
        ir.ToolCall("toolu_1", "Read", '{"file_path":"/a.py"}')]
    assert request.messages[3].parts == [ir.ToolResult("toolu_1", "print(1)", cache=True)]
    assert request.reasoning == ir.ReasoningConfig(effort="high")
    assert request.cache_key == "8f2c1d4e-aaaa-bbbb-cccc-0123456789ab"
    assert request.user == hashed_user(CLAUDE_CODE_USER)
    assert len(request.user) == 37
    assert [t.kind for t in request.tools] == ["function", "builtin"]


def test_anthropic_only_fields_never_reach_a_chat_upstream() -> None:
    """context_management, output_config, beta tool fields, cache_control, server tools,
    signatures and the raw user id stay behind; thinking text goes as reasoning_content."""
    sent = CHAT.encode_request(MESSAGES.decode_request(claude_code_body()))
    raw = orjson.dumps(sent)
    for absent in (b"context_management", b"output_config", b"strict", b"defer_loading",
                   b"input_examples", b"cache_control", b"web_search", b"max_uses",
                   SIGNATURE.encode(), b"EmwKAhgB", b"device_id", b"thinking"):
        assert absent not in raw, absent
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "Read", "description": "Read a file", "parameters": {
            "type": "object", "properties": {"file_path": {"type": "string"}}}}}]
    assert sent["reasoning_effort"] == "high"
    assert sent["user"] == hashed_user(CLAUDE_CODE_USER)
    assert sent["messages"][2] == {
        "role": "assistant", "content": None, "reasoning_content": "Look first.",
        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
            "name": "Read", "arguments": '{"file_path":"/a.py"}'}}]}
    assert sent["messages"][-1] == {"role": "system", "content": "The user changed a file."}


def test_only_anthropic_signed_thinking_goes_to_a_messages_upstream_first_in_its_turn() -> None:
    """Thinking with a messages-issued signature is sent back verbatim; reasoning with no
    signature or another issuer's is dropped (Anthropic would refuse it)."""
    request = ir.Request("claude", messages=[
        ir.Message("user", [ir.Text("go")]),
        ir.Message("assistant", [
            ir.Reasoning("mine", ir.Opaque("messages", SIGNATURE)),
            ir.Reasoning("foreign", ir.Opaque("responses", "gAAAA")),
            ir.Reasoning("plain"),
            ir.Reasoning(signature=ir.Opaque("messages", "RED"), redacted=True),
            ir.ToolCall("toolu_2", "ls", "{}")]),
        ir.Message("user", [ir.ToolResult("toolu_2", "a b")])])
    sent = MESSAGES.encode_request(request)
    assert sent["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "mine", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "RED"},
        {"type": "tool_use", "id": "toolu_2", "name": "ls", "input": {}}]


def test_effort_becomes_a_thinking_budget_and_sampling_fits_thinking() -> None:
    """A Chat caller's reasoning_effort becomes thinking.budget_tokens; max_tokens grows past
    the budget; temperature and top_k go (thinking refuses them)."""
    request = CHAT.decode_request({"model": "m", "reasoning_effort": "high", "max_tokens": 1000,
                                   "temperature": 0.2, "messages": [
                                       {"role": "user", "content": "hi"}]})
    sent = MESSAGES.encode_request(request)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["max_tokens"] == 4096 + 4096
    assert "temperature" not in sent
    request.reasoning = ir.ReasoningConfig(enabled=False)
    assert MESSAGES.encode_request(request)["thinking"] == {"type": "disabled"}


def test_at_most_four_cache_breakpoints_the_last_ones_kept() -> None:
    """Anthropic refuses a fifth cache_control: the earliest ones are dropped."""
    request = ir.Request("c", tools=[ir.Tool("a", cache=True), ir.Tool("b", cache=True)],
                         messages=[ir.Message("system", [ir.Text("s", cache=True)]),
                                   ir.Message("user", [ir.Text("u1", cache=True)]),
                                   ir.Message("assistant", [ir.Text("a1", cache=True)])])
    sent = MESSAGES.encode_request(request)
    assert "cache_control" not in sent["tools"][0]
    assert [bool(b.get("cache_control")) for b in (
        sent["tools"][1], sent["system"][0], sent["messages"][0]["content"][0],
        sent["messages"][1]["content"][0])] == [True, True, True, True]


def test_thinking_streams_before_text_as_its_own_block_with_its_signature() -> None:
    """Reasoning then text: a thinking block (thinking_delta, signature_delta) closes before
    the text block opens; a redacted part becomes one whole redacted_thinking block."""
    encoder = MESSAGES.stream_encoder("alias", ir.Request("m"), 42)
    raw = b"".join(encoder.feed(e) for e in [
        ir.Start("abc", "up"), ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Hm."),
        ir.PartSignature(0, ir.Opaque("messages", SIGNATURE)),
        ir.PartSignature(0, ir.Opaque("gemini", "foreign")),
        ir.PartStart(1, ir.Reasoning(redacted=True)),
        ir.PartSignature(1, ir.Opaque("messages", "RED")), ir.PartEnd(1),
        ir.PartStart(2, ir.Text("")), ir.PartDelta(2, "Hi"),
        ir.PartStart(3, ir.ToolCall("toolu_9", "ls")), ir.PartDelta(3, "{}"), ir.PartEnd(3),
        ir.Finish("tool_calls", ir.Usage(50, 9, cached_tokens=20, cache_write_tokens=5))])
    events = parse(raw + encoder.close())
    assert [(e["type"], e.get("index"), (e.get("content_block") or e.get("delta") or {}).get(
        "type")) for e in events] == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "redacted_thinking"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "text"), ("content_block_delta", 2, "text_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"), ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None), ("message_stop", None, None)]
    assert events[0]["message"]["id"] == "msg_abc"
    assert events[0]["message"]["usage"]["input_tokens"] == 42
    assert events[3]["delta"] == {"type": "signature_delta", "signature": SIGNATURE}
    assert events[5]["content_block"] == {"type": "redacted_thinking", "data": "RED"}
    assert b"foreign" not in raw
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"] == {"input_tokens": 25, "output_tokens": 9,
                                   "cache_read_input_tokens": 20,
                                   "cache_creation_input_tokens": 5}


def test_upstream_thinking_stream_decodes_with_signature() -> None:
    """Anthropic's thinking_delta and signature_delta decode to a Reasoning part and its
    signature; a server tool block is skipped; usage merges start and delta counts."""
    def ev(obj: dict[str, Any]) -> tuple[str, bytes]:
        return obj["type"], orjson.dumps(obj)
    decoder = MESSAGES.stream_decoder()
    stream = [
        {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90,
                      "cache_creation_input_tokens": 0, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "thinking_delta", "thinking": "Let me"}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "signature_delta", "signature": SIGNATURE}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2,
         "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2,
         "delta": {"type": "text_delta", "text": "Done"}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 30}},
        {"type": "message_stop"}]
    events = [e for obj in stream for e in decoder.feed(*ev(obj))] + decoder.close()
    final = ir.Usage(100, 30, cached_tokens=90)
    assert events == [
        ir.Start("msg_1", "claude", ir.Usage(100, 1, cached_tokens=90)),
        ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Let me"),
        ir.PartSignature(0, ir.Opaque("messages", SIGNATURE)), ir.PartEnd(0),
        ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "Done"), ir.PartEnd(1),
        ir.UsageUpdate(final), ir.Finish("stop", final)]


def test_answer_with_thinking_keeps_it_first_and_signed() -> None:
    """An answer's reasoning comes first; a signature from another issuer is not written."""
    answer = MESSAGES.encode_response(ir.Response("r1", "up", [
        ir.Text("ok"), ir.Reasoning("why", ir.Opaque("messages", SIGNATURE)),
        ir.Reasoning("other", ir.Opaque("responses", "enc"))], usage=ir.Usage(3, 4)), "alias")
    assert answer["content"] == [
        {"type": "thinking", "thinking": "why", "signature": SIGNATURE},
        {"type": "thinking", "thinking": "other", "signature": ""},
        {"type": "text", "text": "ok"}]
    anthropic.types.Message.model_validate(answer)
    decoded = MESSAGES.decode_response(answer)
    assert decoded.parts[0] == ir.Reasoning("why", ir.Opaque("messages", SIGNATURE))


@pytest.mark.parametrize(("user_id", "session"), [
    (CLAUDE_CODE_USER, "8f2c1d4e-aaaa-bbbb-cccc-0123456789ab"),
    ("user_abc123_account_42_session_1234-5678", "1234-5678"),
    ("plain", None),
    ("{not json", None),
])
def test_session_of_claude_code_user_ids(user_id: str, session: str | None) -> None:
    assert session_of(user_id) == session


def test_errors_decode_to_kinds_and_encode_in_anthropic_shape() -> None:
    """Anthropic error types give kinds; encode uses the status table, else the kind."""
    assert MESSAGES.decode_error(529, b'{"type":"error","error":{"type":"overloaded_error",'
                                      b'"message":"Overloaded"}}') == ("Overloaded",
                                                                       "overloaded")
    assert MESSAGES.decode_error(400, b'{"type":"error","error":{"type":'
                                      b'"invalid_request_error","message":"prompt is too long:'
                                      b' 300000 tokens"}}')[1] == "context_length"
    assert orjson.loads(MESSAGES.encode_error(503, "busy", "overloaded")) == {
        "type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert parse(MESSAGES.error_event("late", "rate_limit")) == [
        {"type": "error", "error": {"type": "rate_limit_error", "message": "late"}}]
