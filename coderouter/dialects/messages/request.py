"""Messages requests: a caller's body to `ir.Request` and back; Claude Code's session id."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .. import effort as efforts
from .. import ir
from ..codec import CodecError
from ..wire import (
    Json,
    arguments_object,
    dumps,
    need_dict,
    need_list,
    need_str,
    opt_int,
    opt_number,
    split_data_uri,
    typed,
)

DEFAULT_MAX_TOKENS = 4096
_CHOICE_IN = {"auto": "auto", "any": "required", "none": "none"}
_CHOICE_OUT = {"auto": "auto", "required": "any", "none": "none"}
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: Anthropic refuses more than four cache_control breakpoints in one request.
_MAX_BREAKPOINTS = 4


def _signature(value: Any) -> ir.Opaque | None:
    return ir.Opaque("messages", value) if isinstance(value, str) and value else None


# Requests


def _decode_source(block: Json, where: str) -> ir.Image | ir.File:
    source = need_dict(block.get("source"), f"{where}.source")
    kind = source.get("type")
    title = typed(block.get("title"), str, None)
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
        return ir.Reasoning(typed(block.get("thinking"), str, ""),
                            signature=_signature(block.get("signature")))
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
    kind = need_str(choice.get("type"), "tool_choice.type")
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
        # always blocks, never a lone text's string: a turn reads the same bytes whether or
        # not it is the last (the one with the cache breakpoint), so the prefix stays cached
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
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


def _encode_tool_choice(request: ir.Request, tools: bool) -> Json | None:
    choice: Json | None = None
    if request.tool_choice is not None:
        mode = request.tool_choice.mode
        choice = {"type": "tool", "name": request.tool_choice.name} if mode == "tool" \
            else {"type": _CHOICE_OUT[mode]}
    if request.parallel_tool_calls is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def encode_request(request: ir.Request) -> dict[str, Any]:
    leading, conversation = ir.split_system(request.messages)
    body: Json = {"model": request.model, "messages": _encode_turns(conversation),
                  "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
    system = _encode_system(leading)
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
    choice = _encode_tool_choice(request, bool(tools))
    if choice is not None:
        body["tool_choice"] = choice
    _encode_thinking(request, body)
    _limit_breakpoints(body)
    return body
