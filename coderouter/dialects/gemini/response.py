"""Gemini answers and usage: a ``GenerateContentResponse`` to `ir.Response` and back."""

from __future__ import annotations

from typing import Any

from .. import ir
from ..codec import CodecError
from .fields import Json, _args_text, _get, _int, _new_id, _signature
from .request import _model_parts

_FINISH_OUT: dict[ir.FinishReason, str] = {
    "stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS",
    "content_filter": "SAFETY", "error": "OTHER"}

_FINISH_IN: dict[str, ir.FinishReason] = {
    "STOP": "stop", "MAX_TOKENS": "length",
    "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter", "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error", "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error", "OTHER": "error",
}


# Answers


def decode_usage(raw: Any) -> ir.Usage | None:
    """``usageMetadata``: input counts the tool-use prompt, output counts the thoughts."""
    if not isinstance(raw, dict):
        return None
    thoughts = _int(_get(raw, "thoughtsTokenCount"))
    return ir.Usage(
        input_tokens=_int(_get(raw, "promptTokenCount")) + _int(_get(raw,
                                                                    "toolUsePromptTokenCount")),
        output_tokens=_int(_get(raw, "candidatesTokenCount")) + thoughts,
        cached_tokens=_int(_get(raw, "cachedContentTokenCount")),
        reasoning_tokens=thoughts)


def encode_usage(usage: ir.Usage) -> Json:
    out: Json = {"promptTokenCount": usage.input_tokens,
                 "candidatesTokenCount": max(0, usage.output_tokens - usage.reasoning_tokens),
                 "totalTokenCount": usage.total_tokens}
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def _candidate(body: Json) -> Json:
    candidates = body.get("candidates")
    if candidates is None:
        return {}
    if not isinstance(candidates, list):
        raise CodecError("candidates: must be a list")
    first = candidates[0] if candidates else {}
    if not isinstance(first, dict):
        raise CodecError("candidates[0]: must be an object")
    return first


def _candidate_parts(candidate: Json) -> list[Json]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if parts is None:
        return []
    if not isinstance(parts, list):
        raise CodecError("candidates[0].content.parts: must be a list")
    return [p for p in parts if isinstance(p, dict)]


def _finish(candidate: Json, body: Json, called: bool) -> ir.FinishReason:
    reason = _get(candidate, "finishReason")
    if reason is None:
        feedback = _get(body, "promptFeedback")
        blocked = isinstance(feedback, dict) and _get(feedback, "blockReason")
        return "content_filter" if blocked else ("tool_calls" if called else "stop")
    finish = _FINISH_IN.get(str(reason), "stop")
    return "tool_calls" if finish == "stop" and called else finish


def decode_response(body: Json) -> ir.Response:
    """A ``GenerateContentResponse`` (first candidate)."""
    if not isinstance(body, dict):
        raise CodecError("response body must be a JSON object")
    candidate = _candidate(body)
    prefix = _new_id()
    parts: list[ir.Part] = []
    calls = 0
    for part in _candidate_parts(candidate):
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                parts.append(ir.Reasoning(text=text, signature=_signature(part)))
            else:
                parts.append(ir.Text(text, signature=_signature(part)))
        elif isinstance(call := _get(part, "functionCall"), dict):
            parts.append(_tool_call(call, part, f"call_{prefix}_{calls}"))
            calls += 1
    response_id = _get(body, "responseId")
    return ir.Response(
        id=response_id if isinstance(response_id, str) and response_id else f"gemini-{prefix}",
        model=str(_get(body, "modelVersion") or ""), parts=parts,
        finish=_finish(candidate, body, calls > 0), usage=decode_usage(_get(body,
                                                                            "usageMetadata")))


def _tool_call(call: Json, part: Json, fallback_id: str) -> ir.ToolCall:
    name = call.get("name")
    if not isinstance(name, str):
        raise CodecError("functionCall: needs a string 'name'")
    given = call.get("id")
    return ir.ToolCall(id=given if isinstance(given, str) and given else fallback_id, name=name,
                       arguments=_args_text(call.get("args")), signature=_signature(part))


def encode_response(response: ir.Response, model: str) -> Json:
    """A ``GenerateContentResponse`` for a Gemini caller."""
    parts = _model_parts(response.parts, sign_first_call=False)
    candidate: Json = {"content": {"role": "model", "parts": parts},
                       "finishReason": _FINISH_OUT[response.finish], "index": 0}
    out: Json = {"candidates": [candidate]}
    if response.usage is not None:
        out["usageMetadata"] = encode_usage(response.usage)
    out["modelVersion"] = model
    out["responseId"] = response.id
    return out
