"""The Anthropic Messages dialect: ``/v1/messages`` bodies, answers and events.

Spoken by Claude Code and Anthropic's API. Thinking blocks carry a ``signature`` (redacted
ones their ``data``): opaque state issued by "messages", returned byte for byte. Fields only
Anthropic understands (``context_management``, ``output_config``, beta tool fields, server
tools) are not part of the neutral request, so no other dialect ever sees them.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from .. import effort as efforts
from .. import ir
from ..codec import CodecError
from ..hub import register
from ..wire import (
    Json,
    Kind,
    arguments_object,
    count,
    dumps,
    error_body,
    error_message,
    estimate_output,
    kind_of_status,
    loads_event,
    need_dict,
    need_list,
    need_str,
    opt_int,
    opt_number,
    split_data_uri,
    sse,
)

DEFAULT_MAX_TOKENS = 4096
#: Anthropic's ``error.type`` by HTTP status (api.anthropic.com's table).
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}
_TYPE_OF_KIND = {"invalid_request": "invalid_request_error",
                 "authentication": "authentication_error", "rate_limit": "rate_limit_error",
                 "overloaded": "overloaded_error", "context_length": "invalid_request_error",
                 "server_error": "api_error"}
_KIND_OF_TYPE: dict[str, Kind] = {
    "invalid_request_error": "invalid_request", "authentication_error": "authentication",
    "permission_error": "authentication", "rate_limit_error": "rate_limit",
    "overloaded_error": "overloaded", "api_error": "server_error",
    "timeout_error": "server_error", "request_too_large": "invalid_request"}
_STOP_IN: dict[str, ir.FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls",
    "refusal": "content_filter"}
_STOP_OUT = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
             "content_filter": "refusal", "error": "end_turn"}
_CHOICE_IN = {"auto": "auto", "any": "required", "none": "none"}
_CHOICE_OUT = {"auto": "auto", "required": "any", "none": "none"}
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: Anthropic refuses more than four cache_control breakpoints in one request.
_MAX_BREAKPOINTS = 4
_CHARS_PER_TOKEN = 4


def _signature(value: Any) -> ir.Opaque | None:
    return ir.Opaque("messages", value) if isinstance(value, str) and value else None


# Requests


def _decode_source(block: Json, where: str) -> ir.Image | ir.File:
    source = need_dict(block.get("source"), f"{where}.source")
    kind = source.get("type")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if kind == "base64":
        media_type = need_str(source.get("media_type"), f"{where}.source.media_type")
        data = need_str(source.get("data"), f"{where}.source.data")
        if block.get("type") == "image":
            return ir.Image(media_type=media_type, data=data)
        return ir.File(media_type=media_type, data=data, filename=title)
    if kind == "url":
        url = need_str(source.get("url"), f"{where}.source.url")
        return ir.Image(url=url) if block.get("type") == "image" else ir.File(url=url,
                                                                              filename=title)
    if kind == "file" and block.get("type") == "document":
        return ir.File(file_id=need_str(source.get("file_id"), f"{where}.source.file_id"),
                       filename=title)
    raise CodecError(f"{where}.source: unsupported {block.get('type')} source {kind!r}")


def _decode_result_content(content: Any, where: str) -> str | list[ir.Text | ir.Image]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[ir.Text | ir.Image] = []
    for i, block in enumerate(need_list(content, where)):
        block = need_dict(block, f"{where}[{i}]")
        if block.get("type") == "text":
            parts.append(ir.Text(need_str(block.get("text"), f"{where}[{i}].text")))
        elif block.get("type") == "image":
            image = _decode_source(block, f"{where}[{i}]")
            if isinstance(image, ir.Image):
                parts.append(image)
    return parts


def _decode_block(block: Json, where: str) -> ir.Part | None:
    kind = block.get("type")
    cache = isinstance(block.get("cache_control"), dict)
    if kind == "text":
        return ir.Text(need_str(block.get("text"), f"{where}.text"), cache=cache)
    if kind in ("image", "document"):
        if kind == "document" and isinstance(block.get("source"), dict) \
                and block["source"].get("type") == "text":
            return ir.Text(need_str(block["source"].get("data"), f"{where}.source.data"),
                           cache=cache)
        return _decode_source(block, where)
    if kind == "tool_use":
        return ir.ToolCall(need_str(block.get("id"), f"{where}.id"),
                           need_str(block.get("name"), f"{where}.name"),
                           dumps(block.get("input") or {}))
    if kind == "tool_result":
        return ir.ToolResult(
            need_str(block.get("tool_use_id"), f"{where}.tool_use_id"),
            _decode_result_content(block.get("content"), f"{where}.content"),
            is_error=block.get("is_error") is True, cache=cache)
    if kind == "thinking":
        return ir.Reasoning(block.get("thinking") if isinstance(block.get("thinking"), str)
                            else "", signature=_signature(block.get("signature")))
    if kind == "redacted_thinking":
        return ir.Reasoning(signature=_signature(block.get("data")), redacted=True)
    return None  # server tool blocks and types this gateway does not know: skipped


def _decode_content(content: Any, where: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.Text(content)] if content else []
    parts = []
    for i, block in enumerate(need_list(content, where)):
        part = _decode_block(need_dict(block, f"{where}[{i}]"), f"{where}[{i}]")
        if part is not None:
            parts.append(part)
    return parts


def _decode_system(system: Any) -> list[ir.Message]:
    if not system:
        return []
    if isinstance(system, str):
        return [ir.Message("system", [ir.Text(system)])]
    parts: list[ir.Part] = []
    for i, block in enumerate(need_list(system, "system")):
        block = need_dict(block, f"system[{i}]")
        if block.get("type") != "text":
            continue  # a block type newer than this gateway
        parts.append(ir.Text(need_str(block.get("text"), f"system[{i}].text"),
                             cache=isinstance(block.get("cache_control"), dict)))
    return [ir.Message("system", parts)]


def _decode_messages(body: Json) -> list[ir.Message]:
    out = _decode_system(body.get("system"))
    for i, message in enumerate(need_list(body.get("messages"), "messages")):
        where = f"messages[{i}]"
        message = need_dict(message, where)
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            raise CodecError(
                f"{where}.role: expected 'user', 'assistant' or 'system', got {role!r}")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise CodecError(f"{where}.content: expected a string or a list of blocks, "
                             f"got {type(content).__name__}")
        out.append(ir.Message(role, _decode_content(content, f"{where}.content")))
    return out


def _decode_tools(body: Json) -> list[ir.Tool]:
    tools = []
    for i, tool in enumerate(need_list(body.get("tools") or [], "tools")):
        tool = need_dict(tool, f"tools[{i}]")
        cache = isinstance(tool.get("cache_control"), dict)
        if tool.get("type") in (None, "custom"):
            schema = tool.get("input_schema")
            tools.append(ir.Tool(need_str(tool.get("name"), f"tools[{i}].name"),
                                 description=tool.get("description") or None,
                                 parameters=schema if isinstance(schema, dict) else None,
                                 cache=cache))
        else:  # a server tool (web_search_*, web_fetch_*, code_execution_*, bash_*, ...)
            tools.append(ir.Tool(str(tool.get("name") or tool.get("type")), kind="builtin",
                                 raw=tool, dialect="messages", cache=cache))
    return tools


def _decode_tool_choice(body: Json) -> tuple[ir.ToolChoice | None, bool | None]:
    choice = body.get("tool_choice")
    if choice is None:
        return None, None
    choice = need_dict(choice, "tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind in _CHOICE_IN:
        return ir.ToolChoice(_CHOICE_IN[kind]), parallel  # type: ignore[arg-type]
    if kind == "tool":
        return ir.ToolChoice("tool", need_str(choice.get("name"), "tool_choice.name")), parallel
    raise CodecError(f"tool_choice.type: unsupported value {kind!r}")


def _decode_reasoning(body: Json) -> ir.ReasoningConfig | None:
    thinking = body.get("thinking")
    output = body.get("output_config")
    effort = output.get("effort") if isinstance(output, dict) else None
    effort = effort if effort in _EFFORTS else None
    if not isinstance(thinking, dict):
        return ir.ReasoningConfig(effort=effort) if effort else None
    kind = thinking.get("type")
    summary = thinking.get("display") == "summarized"
    if kind == "disabled":
        return ir.ReasoningConfig(enabled=False)
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return ir.ReasoningConfig(effort=effort or "medium", summary=summary)
        return ir.ReasoningConfig(effort=effort, budget=budget, summary=summary)
    if kind == "adaptive":
        return ir.ReasoningConfig(effort=effort, summary=summary)
    return None


def hashed_user(user_id: str) -> str:
    """A short stable stand-in for a caller's ``metadata.user_id`` (Claude Code's is ~150
    characters of JSON: longer than some servers allow in ``user``, and not theirs to read)."""
    return "user_" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def session_of(user_id: str) -> str | None:
    """The session id inside Claude Code's ``metadata.user_id``: a JSON object with
    ``session_id``, or the older ``user_<hash>_account_<id>_session_<uuid>``."""
    if user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        session = parsed.get("session_id") if isinstance(parsed, dict) else None
        return session if isinstance(session, str) and session else None
    _, sep, session = user_id.rpartition("_session_")
    return session if sep and session else None


def decode_request(body: dict[str, Any]) -> ir.Request:
    body = need_dict(body, "body")
    choice, parallel = _decode_tool_choice(body)
    stops = body.get("stop_sequences")
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return ir.Request(
        model=str(body.get("model") or ""),
        messages=_decode_messages(body),
        tools=_decode_tools(body),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        stream=body.get("stream") is True,
        max_tokens=opt_int(body, "max_tokens"),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        top_k=opt_int(body, "top_k"),
        stop=[need_str(s, "stop_sequences[]") for s in need_list(stops, "stop_sequences")]
        if stops else [],
        reasoning=_decode_reasoning(body),
        cache_key=session_of(user_id) if isinstance(user_id, str) else None,
        user=hashed_user(user_id) if isinstance(user_id, str) and user_id else None)


def _cache(block: Json, on: bool) -> Json:
    if on:
        block["cache_control"] = {"type": "ephemeral"}
    return block


def _encode_source(part: ir.Image | ir.File) -> Json | None:
    if part.data is not None:
        return {"type": "base64", "media_type": part.media_type or
                ("image/png" if isinstance(part, ir.Image) else "application/pdf"),
                "data": part.data}
    if part.url:
        if part.url.startswith("data:"):
            media_type, data = split_data_uri(part.url, "image.url")
            return {"type": "base64", "media_type": media_type, "data": data}
        return {"type": "url", "url": part.url}
    if isinstance(part, ir.File) and part.file_id:
        return {"type": "file", "file_id": part.file_id}
    return None


def _encode_result(result: ir.ToolResult) -> Json:
    block: Json = {"type": "tool_result", "tool_use_id": result.call_id}
    if isinstance(result.content, str):
        block["content"] = result.content
    else:
        block["content"] = [b for p in result.content if (b := _encode_block(p)) is not None]
    if result.is_error:
        block["is_error"] = True
    return _cache(block, result.cache)


def _encode_block(part: ir.Part) -> Json | None:
    """One content block; None for what Messages cannot or must not carry."""
    if isinstance(part, ir.Text):
        return _cache({"type": "text", "text": part.text}, part.cache) if part.text else None
    if isinstance(part, ir.Image):
        source = _encode_source(part)
        return {"type": "image", "source": source} if source else None
    if isinstance(part, ir.File):
        source = _encode_source(part)
        if source is None:
            return None
        block: Json = {"type": "document", "source": source}
        if part.filename:
            block["title"] = part.filename
        return block
    if isinstance(part, ir.ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name,
                "input": arguments_object(part.arguments)}
    if isinstance(part, ir.ToolResult):
        return _encode_result(part)
    # Reasoning: only thinking Anthropic signed goes back; anything else would be refused.
    if part.signature is None or part.signature.issuer != "messages":
        return None
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.signature.data}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature.data}


def _encode_turns(messages: list[ir.Message]) -> list[Json]:
    """User and assistant turns: same-role messages merged, tool results first in a turn."""
    turns: list[Json] = []
    for message in messages:
        if message.role == "system":
            continue
        blocks = [b for p in message.parts if (b := _encode_block(p)) is not None]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
    for turn in turns:
        blocks = turn["content"]
        blocks.sort(key=lambda block: block["type"] != "tool_result")
        if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
            turn["content"] = blocks[0]["text"]
    return turns


def _encode_system(messages: list[ir.Message]) -> str | list[Json] | None:
    texts = [p for m in messages if m.role == "system" for p in m.parts
             if isinstance(p, ir.Text) and p.text]
    if not texts:
        return None
    if not any(t.cache for t in texts):
        return "\n".join(t.text for t in texts)
    return [_cache({"type": "text", "text": t.text}, t.cache) for t in texts]


def _encode_tool(tool: ir.Tool) -> Json | None:
    if tool.kind == "builtin":
        return dict(tool.raw) if tool.dialect == "messages" and tool.raw else None
    out: Json = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    if tool.kind == "custom":
        out["input_schema"] = {"type": "object", "properties": {"input": {"type": "string"}},
                               "required": ["input"]}
    else:
        out["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
    return _cache(out, tool.cache)


def _limit_breakpoints(body: Json) -> None:
    """Keep the last four cache_control breakpoints (Anthropic refuses a fifth)."""
    places: list[Json] = []
    for tool in body.get("tools", []):
        places.append(tool)
    if isinstance(body.get("system"), list):
        places.extend(body["system"])
    for turn in body["messages"]:
        if isinstance(turn["content"], list):
            places.extend(turn["content"])
    marked = [p for p in places if "cache_control" in p]
    for place in marked[:-_MAX_BREAKPOINTS]:
        del place["cache_control"]


def _encode_thinking(request: ir.Request, body: Json) -> None:
    reasoning = request.reasoning
    if reasoning is None:
        return
    budget = efforts.budget(reasoning)
    if budget is None:
        body["thinking"] = {"type": "disabled"}
        return
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if body["max_tokens"] <= budget:
        body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    # Thinking refuses changed sampling: temperature and top_k go, top_p only from 0.95 up.
    body.pop("temperature", None)
    body.pop("top_k", None)
    if body.get("top_p", 1.0) < 0.95:
        del body["top_p"]


def encode_request(request: ir.Request) -> dict[str, Any]:
    body: Json = {"model": request.model, "messages": _encode_turns(request.messages),
                  "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
    system = _encode_system(request.messages)
    if system is not None:
        body["system"] = system
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.stream:
        body["stream"] = True
    if request.user:
        body["metadata"] = {"user_id": request.user}
    tools = [t for tool in request.tools if (t := _encode_tool(tool)) is not None]
    if tools:
        body["tools"] = tools
    choice: Json | None = None
    if request.tool_choice is not None:
        mode = request.tool_choice.mode
        choice = {"type": "tool", "name": request.tool_choice.name} if mode == "tool" \
            else {"type": _CHOICE_OUT[mode]}
    if request.parallel_tool_calls is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        body["tool_choice"] = choice
    _encode_thinking(request, body)
    _limit_breakpoints(body)
    return body


# Answers


def decode_usage(raw: Any) -> ir.Usage:
    """Anthropic usage; the neutral input counts all three input kinds."""
    if not isinstance(raw, dict):
        return ir.Usage()
    read = count(raw.get("cache_read_input_tokens"))
    write = count(raw.get("cache_creation_input_tokens"))
    return ir.Usage(input_tokens=count(raw.get("input_tokens")) + read + write,
                    output_tokens=count(raw.get("output_tokens")),
                    cached_tokens=read, cache_write_tokens=write)


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
                       finish=_STOP_IN.get(body.get("stop_reason") or "end_turn", "stop"),
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


# Streams


class MessagesStreamDecoder:
    """Messages SSE events in, neutral events out."""

    def __init__(self) -> None:
        self._done = False
        self._usage: Json = {}  # the raw usage so far: message_delta's fields update start's
        self._stop: ir.FinishReason = "stop"
        self._stop_sequence: str | None = None
        self._parts: dict[int, int] = {}  # Anthropic block index -> part index

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        if self._done:
            return []
        obj = need_dict(loads_event(data, name or "event"), f"{name or 'event'} data")
        kind = name or str(obj.get("type") or "")
        if kind == "error":
            self._done = True
            error = obj.get("error")
            error = error if isinstance(error, dict) else {}
            message = error.get("message")
            return [ir.Failure(message if isinstance(message, str) and message
                               else "upstream stream error",
                               _KIND_OF_TYPE.get(str(error.get("type")), "server_error"))]
        handler = self._HANDLERS.get(kind)
        return handler(self, obj) if handler else []

    def close(self) -> list[ir.Event]:
        if self._done:
            return []
        self._done = True
        return [ir.Failure("upstream closed the stream before it was complete")]

    def _on_message_start(self, obj: Json) -> list[ir.Event]:
        message = obj.get("message") if isinstance(obj.get("message"), dict) else {}
        self._merge(message.get("usage"))
        return [ir.Start(str(message.get("id") or uuid.uuid4().hex),
                         str(message.get("model") or ""), decode_usage(self._usage))]

    def _merge(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _on_block_start(self, obj: Json) -> list[ir.Event]:
        block = obj.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        index = len(self._parts)
        part: ir.Text | ir.Reasoning | ir.ToolCall
        initial = ""
        if kind == "text":
            part, initial = ir.Text(""), str(block.get("text") or "")
        elif kind == "thinking":
            part, initial = ir.Reasoning(), str(block.get("thinking") or "")
        elif kind == "redacted_thinking":
            part = ir.Reasoning(signature=_signature(block.get("data")), redacted=True)
        elif kind == "tool_use":
            part = ir.ToolCall(str(block.get("id") or ""), str(block.get("name") or ""))
            initial = dumps(block["input"]) if block.get("input") else ""
        else:
            return []  # server tool blocks: not part of the neutral answer
        self._parts[int(obj.get("index") or 0)] = index
        out: list[ir.Event] = [ir.PartStart(index, part)]
        if initial:
            out.append(ir.PartDelta(index, initial))
        return out

    def _on_block_delta(self, obj: Json) -> list[ir.Event]:
        index = self._parts.get(int(obj.get("index") or 0))
        delta = obj.get("delta")
        if index is None or not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        text = {"text_delta": "text", "thinking_delta": "thinking",
                "input_json_delta": "partial_json"}.get(str(kind))
        if text is not None:
            value = delta.get(text)
            return [ir.PartDelta(index, value)] if isinstance(value, str) and value else []
        if kind == "signature_delta" and (signature := _signature(delta.get("signature"))):
            return [ir.PartSignature(index, signature)]
        return []

    def _on_block_stop(self, obj: Json) -> list[ir.Event]:
        index = self._parts.get(int(obj.get("index") or 0))
        return [ir.PartEnd(index)] if index is not None else []

    def _on_message_delta(self, obj: Json) -> list[ir.Event]:
        delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
        if delta.get("stop_reason"):
            self._stop = _STOP_IN.get(delta["stop_reason"], "stop")
        if isinstance(delta.get("stop_sequence"), str):
            self._stop_sequence = delta["stop_sequence"]
        if not isinstance(obj.get("usage"), dict):
            return []
        self._merge(obj["usage"])
        return [ir.UsageUpdate(decode_usage(self._usage))]

    def _on_message_stop(self, obj: Json) -> list[ir.Event]:
        self._done = True
        return [ir.Finish(self._stop, decode_usage(self._usage), self._stop_sequence)]

    _HANDLERS = {
        "message_start": _on_message_start,
        "content_block_start": _on_block_start,
        "content_block_delta": _on_block_delta,
        "content_block_stop": _on_block_stop,
        "message_delta": _on_message_delta,
        "message_stop": _on_message_stop,
    }


class MessagesStreamEncoder:
    """Neutral events in, Messages SSE events out. Blocks are sequential: a block starting
    ends the open one; thinking is its own block, never inside a text block."""

    def __init__(self, model: str, estimated_input_tokens: int) -> None:
        self.model = model
        self.estimated_input_tokens = estimated_input_tokens
        self._started = False
        self._ended = False
        self._next = 0
        self._blocks: dict[int, tuple[int, str]] = {}  # part index -> (block index, kind)
        self._open: int | None = None  # the part index whose block is open
        self._redacted: dict[int, ir.Opaque | None] = {}
        self._usage: ir.Usage | None = None
        self._output_chars = 0

    def feed(self, event: ir.Event) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, ir.Start):
            return self._start(event.id, event.usage)
        out = self._start(uuid.uuid4().hex, None)
        if isinstance(event, ir.PartStart):
            return out + self._part_start(event)
        if isinstance(event, ir.PartDelta):
            return out + self._part_delta(event)
        if isinstance(event, ir.PartSignature):
            return out + self._signature(event)
        if isinstance(event, ir.PartEnd):
            return out + self._part_end(event.index)
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return out
        if isinstance(event, ir.Finish):
            return out + self._finish(event)
        self._ended = True
        return out + error_event(event.message, event.kind)

    def close(self) -> bytes:
        return b""

    def _start(self, answer_id: str, usage: ir.Usage | None) -> bytes:
        if self._started:
            return b""
        self._started = True
        shown = encode_usage(usage) if usage is not None and usage.input_tokens else {
            "input_tokens": self.estimated_input_tokens, "output_tokens": 0,
            "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        message = {"id": _message_id(answer_id), "type": "message", "role": "assistant",
                   "model": self.model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": shown}
        return sse("message_start", {"type": "message_start", "message": message})

    def _part_start(self, event: ir.PartStart) -> bytes:
        out = self._part_end(self._open) if self._open is not None else b""
        part = event.part
        if isinstance(part, ir.Reasoning) and part.redacted:
            # its data may come later as a PartSignature: the whole block goes out at its end
            self._redacted[event.index] = part.signature
            self._blocks[event.index] = (-1, "redacted")
            self._open = event.index
            return out
        block: Json
        if isinstance(part, ir.ToolCall):
            kind = "tool"
            block = {"type": "tool_use", "id": part.id, "name": part.name, "input": {}}
        elif isinstance(part, ir.Reasoning):
            kind = "thinking"
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            kind = "text"
            block = {"type": "text", "text": ""}
        index = self._next
        self._next += 1
        self._blocks[event.index] = (index, kind)
        self._open = event.index
        out += sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": block})
        initial = part.arguments if isinstance(part, ir.ToolCall) else part.text
        if initial:
            out += self._part_delta(ir.PartDelta(event.index, initial))
        return out

    def _part_delta(self, event: ir.PartDelta) -> bytes:
        index, kind = self._blocks.get(event.index, (-1, ""))
        if not event.text or index < 0 or event.index != self._open:
            return b""
        self._output_chars += len(event.text)
        delta = {"text": {"type": "text_delta", "text": event.text},
                 "thinking": {"type": "thinking_delta", "thinking": event.text},
                 "tool": {"type": "input_json_delta", "partial_json": event.text}}[kind]
        return sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": delta})

    def _signature(self, event: ir.PartSignature) -> bytes:
        index, kind = self._blocks.get(event.index, (-1, ""))
        if event.signature.issuer != "messages":
            return b""
        if kind == "redacted":
            self._redacted[event.index] = event.signature
            return b""
        if kind != "thinking" or event.index != self._open:
            return b""
        return sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                           "delta": {"type": "signature_delta",
                                                     "signature": event.signature.data}})

    def _part_end(self, part_index: int) -> bytes:
        if part_index != self._open:
            return b""
        self._open = None
        index, kind = self._blocks[part_index]
        if kind == "redacted":
            signature = self._redacted.pop(part_index, None)
            if signature is None or signature.issuer != "messages":
                return b""
            index = self._next
            self._next += 1
            block = {"type": "redacted_thinking", "data": signature.data}
            return sse("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": block}) \
                + sse("content_block_stop", {"type": "content_block_stop", "index": index})
        return sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _finish(self, event: ir.Finish) -> bytes:
        self._ended = True
        out = self._part_end(self._open) if self._open is not None else b""
        usage = event.usage or self._usage
        shown = encode_usage(usage) if usage is not None else {
            "output_tokens": estimate_output(self._output_chars, _CHARS_PER_TOKEN)}
        return out + sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(event.reason, event.stop_sequence),
                      "stop_sequence": event.stop_sequence},
            "usage": shown}) + sse("message_stop", {"type": "message_stop"})


# Errors


def decode_error(status: int, body: bytes) -> tuple[str, str]:
    parsed = error_body(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    kind = _KIND_OF_TYPE.get(str(error.get("type"))) if isinstance(error, dict) else None
    message = error_message(status, body, parsed)
    if "prompt is too long" in message:
        kind = "context_length"
    return message, kind or kind_of_status(status)


def encode_error(status: int, message: str, kind: str) -> bytes:
    kind_type = ERROR_TYPES.get(status) or _TYPE_OF_KIND.get(kind) or (
        "api_error" if status >= 500 else "invalid_request_error")
    return dumps({"type": "error", "error": {"type": kind_type, "message": message}}).encode()


def error_event(message: str, kind: str) -> bytes:
    return sse("error", {"type": "error", "error": {
        "type": _TYPE_OF_KIND.get(kind, "api_error"), "message": message}})


class MessagesCodec:
    name: ir.WireDialect = "messages"
    custom_tools = False
    max_tool_name = 64

    decode_request = staticmethod(decode_request)
    encode_request = staticmethod(encode_request)
    decode_response = staticmethod(decode_response)
    encode_response = staticmethod(encode_response)
    decode_error = staticmethod(decode_error)
    encode_error = staticmethod(encode_error)
    error_event = staticmethod(error_event)

    def stream_decoder(self) -> MessagesStreamDecoder:
        return MessagesStreamDecoder()

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> MessagesStreamEncoder:
        return MessagesStreamEncoder(model, estimated_input_tokens)


CODEC = MessagesCodec()
register(CODEC)
