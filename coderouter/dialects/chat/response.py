"""Chat Completions answers and usage: an upstream body to `ir.Response` and back."""

from __future__ import annotations

import time
import uuid
from typing import Any

from .. import ir
from ..codec import CodecError
from ..wire import (
    Json,
    count,
    need_dict,
    need_list,
)
from .request import _decode_assistant, _encode_tool_call

_FINISH_IN: dict[str, ir.FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "function_call": "tool_calls", "content_filter": "content_filter"}
_FINISH_OUT: dict[str, str] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "error": "stop"}


# Answers


def _finish(reason: Any, has_tool_calls: bool) -> ir.FinishReason:
    """Tool calls win over the plain "stop" some servers send with them."""
    if has_tool_calls and reason in (None, "stop"):
        return "tool_calls"
    return _FINISH_IN.get(reason, "stop") if isinstance(reason, str) else "stop"


def decode_usage(raw: Any) -> ir.Usage | None:
    """Chat usage, None when absent. DeepSeek reports its cache hits as
    ``prompt_cache_hit_tokens``; a server reporting only ``total_tokens`` answered
    ``total - prompt`` tokens."""
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens_details")
    completion = raw.get("completion_tokens_details")
    cached = count(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0
    input_tokens = count(raw.get("prompt_tokens"))
    output_tokens = count(raw.get("completion_tokens")) \
        or max(0, count(raw.get("total_tokens")) - input_tokens)
    return ir.Usage(
        input_tokens=input_tokens, output_tokens=output_tokens,
        cached_tokens=cached or count(raw.get("prompt_cache_hit_tokens")),
        reasoning_tokens=count(completion.get("reasoning_tokens"))
        if isinstance(completion, dict) else 0)


def encode_usage(usage: ir.Usage) -> Json:
    out: Json = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                 "total_tokens": usage.total_tokens,
                 "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def decode_response(body: dict[str, Any]) -> ir.Response:
    body = need_dict(body, "response")
    choices = need_list(body.get("choices"), "response.choices")
    if not choices:
        raise CodecError("response.choices: expected at least one choice")
    choice = need_dict(choices[0], "response.choices[0]")
    message = need_dict(choice.get("message"), "response.choices[0].message")
    parts = _decode_assistant(message, "response.choices[0].message")
    if not any(isinstance(p, ir.Text) for p in parts) and isinstance(message.get("refusal"), str):
        parts.insert(0, ir.Text(message["refusal"]))
    has_calls = any(isinstance(p, ir.ToolCall) for p in parts)
    return ir.Response(id=str(body.get("id") or uuid.uuid4().hex),
                       model=str(body.get("model") or ""), parts=parts,
                       finish=_finish(choice.get("finish_reason"), has_calls),
                       usage=decode_usage(body.get("usage")))


def _chat_id(answer_id: str) -> str:
    return answer_id if answer_id.startswith("chatcmpl-") else f"chatcmpl-{answer_id}"


def encode_response(response: ir.Response, model: str) -> dict[str, Any]:
    texts = [p.text for p in response.parts if isinstance(p, ir.Text)]
    calls = [_encode_tool_call(p) for p in response.parts if isinstance(p, ir.ToolCall)]
    reasoning = [p.text for p in response.parts if isinstance(p, ir.Reasoning) and p.text]
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": _chat_id(response.id), "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _FINISH_OUT[response.finish]}],
        "usage": encode_usage(response.usage or ir.Usage()),
    }
