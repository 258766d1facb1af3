"""Messages answers and usage: an upstream body to `ir.Response` and back."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from .. import ir
from ..wire import Json, count, need_dict, need_list, typed
from .request import _decode_content, _encode_block

_STOP_IN: dict[str, ir.FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls",
    "refusal": "content_filter"}

_STOP_OUT = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
             "content_filter": "refusal", "error": "end_turn"}


# Answers


def fold_usage(raw: Any, so_far: ir.Usage | None) -> ir.Usage | None:
    """Anthropic usage on top of what a stream said before (message_delta's on
    message_start's), or *so_far* when *raw* is not a usage object.

    The neutral input counts all three input kinds; cache writes split into their 1-hour part
    (``cache_creation.ephemeral_1h_input_tokens``) and the rest, written for 5 minutes. Input
    counts absent or 0 keep the earlier
    ones (some servers send 0 in message_delta), an ``output_tokens`` given replaces.
    """
    if not isinstance(raw, dict):
        return so_far
    usage = ir.Usage() if so_far is None else replace(so_far)
    read = count(raw.get("cache_read_input_tokens"))
    write = count(raw.get("cache_creation_input_tokens"))
    fresh = count(raw.get("input_tokens"))
    parts = raw.get("cache_creation")
    hour = count(parts.get("ephemeral_1h_input_tokens")) if isinstance(parts, dict) else 0
    if isinstance(parts, dict) and not write:
        write = hour + count(parts.get("ephemeral_5m_input_tokens"))
    if fresh or read or write:
        usage.input_tokens = fresh + read + write
        usage.cached_tokens, usage.cache_write_tokens = read, write
        usage.cache_write_1h_tokens = min(hour, write)
    if raw.get("output_tokens") is not None:
        usage.output_tokens = count(raw.get("output_tokens"))
    return usage


def decode_usage(raw: Any) -> ir.Usage:
    """Anthropic usage; the neutral input counts all three input kinds."""
    return fold_usage(raw, None) or ir.Usage()


def encode_usage(usage: ir.Usage) -> Json:
    return {"input_tokens": max(usage.input_tokens - usage.cached_tokens
                                - usage.cache_write_tokens, 0),
            "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens}


def decode_response(body: dict[str, Any]) -> ir.Response:
    body = need_dict(body, "response")
    parts = _decode_content(need_list(body.get("content"), "response.content"),
                            "response.content")
    parts = [p for p in parts if isinstance(p, ir.Text | ir.Reasoning | ir.ToolCall)]
    stop = body.get("stop_sequence")
    return ir.Response(id=str(body.get("id") or uuid.uuid4().hex),
                       model=str(body.get("model") or ""), parts=parts,
                       finish=_STOP_IN.get(typed(body.get("stop_reason"), str, "end_turn"),
                                           "stop"),
                       usage=decode_usage(body.get("usage")),
                       stop_sequence=stop if isinstance(stop, str) else None)


def _message_id(answer_id: str) -> str:
    return answer_id if answer_id.startswith("msg_") else f"msg_{answer_id}"


def _stop_reason(finish: ir.FinishReason, stop_sequence: str | None) -> str:
    return "stop_sequence" if stop_sequence and finish == "stop" else _STOP_OUT[finish]


def _answer_block(part: ir.Part) -> Json | None:
    if isinstance(part, ir.Reasoning):
        if part.redacted:
            if part.signature is None or part.signature.issuer != "messages":
                return None
            return {"type": "redacted_thinking", "data": part.signature.data}
        signature = part.signature.data if part.signature is not None \
            and part.signature.issuer == "messages" else ""
        return {"type": "thinking", "thinking": part.text, "signature": signature}
    if isinstance(part, ir.Text):
        return {"type": "text", "text": part.text}
    return _encode_block(part)


def encode_response(response: ir.Response, model: str) -> dict[str, Any]:
    # Thinking first: Anthropic clients replay it ahead of the turn's tool_use.
    ordered = sorted(response.parts, key=lambda p: not isinstance(p, ir.Reasoning))
    return {
        "id": _message_id(response.id), "type": "message", "role": "assistant",
        "model": model,
        "content": [b for p in ordered if (b := _answer_block(p)) is not None],
        "stop_reason": _stop_reason(response.finish, response.stop_sequence),
        "stop_sequence": response.stop_sequence,
        "usage": encode_usage(response.usage or ir.Usage()),
    }
