"""Chat Completions requests: a caller's body to `ir.Request` and back."""

from __future__ import annotations

from typing import Any, Literal

from .. import effort as efforts
from .. import ir
from ..codec import CodecError
from ..wire import (
    Json,
    data_uri,
    dumps,
    need_dict,
    need_list,
    need_str,
    opt_int,
    opt_number,
    split_data_uri,
    typed,
)

_CHOICE_IN: dict[str, Literal["auto", "none", "required"]] = {
    "auto": "auto", "none": "none", "required": "required"}
_EFFORTS_IN = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
#: What every Chat server that reasons accepts: low, medium, high.
_EFFORTS_OUT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
                "xhigh": "high", "max": "high"}


def _text_of(content: Any, where: str) -> str:
    """A string, or the text parts of a list joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(need_list(content, where)):
        part = need_dict(part, f"{where}[{i}]")
        if part.get("type") not in ("text", "input_text", "output_text"):
            raise CodecError(
                f"{where}[{i}]: expected a text part, got type {part.get('type')!r}")
        texts.append(need_str(part.get("text"), f"{where}[{i}].text"))
    return "\n".join(texts)


def _reasoning_of(message: Json) -> str | None:
    """``reasoning_content`` (DeepSeek, Qwen, Kimi, GLM) or ``reasoning`` (vLLM, OpenRouter)."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str):
            return value
    return None


# Requests


def _decode_user_part(part: Json, where: str) -> ir.Part | None:
    kind = part.get("type")
    if kind == "text":
        text = need_str(part.get("text"), f"{where}.text")
        return ir.Text(text) if text else None
    if kind == "image_url":
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        url = need_str(url, f"{where}.image_url.url")
        detail = image_url.get("detail") if isinstance(image_url, dict) else None
        detail = detail if isinstance(detail, str) else None
        if url.startswith("data:"):
            media_type, data = split_data_uri(url, f"{where}.image_url.url")
            return ir.Image(media_type=media_type, data=data, detail=detail)
        if url.startswith(("http://", "https://")):
            return ir.Image(url=url, detail=detail)
        raise CodecError(f"{where}.image_url.url: expected a data: URI or an http(s) URL")
    if kind == "file":
        file = need_dict(part.get("file"), f"{where}.file")
        filename = typed(file.get("filename"), str, None)
        if isinstance(file.get("file_data"), str):
            media_type, data = split_data_uri(file["file_data"], f"{where}.file.file_data")
            return ir.File(media_type=media_type, data=data, filename=filename)
        if isinstance(file.get("file_id"), str):
            return ir.File(file_id=file["file_id"], filename=filename)
        raise CodecError(f"{where}.file: expected file_data or file_id")
    if kind in ("input_audio", "audio"):
        raise CodecError(f"{where}: unsupported content part type {kind!r}")
    return None  # a part type this gateway does not know: skipped


def _decode_user(message: Json, where: str) -> list[ir.Part]:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return [ir.Text(content)] if content else []
    parts = []
    for i, part in enumerate(need_list(content, f"{where}.content")):
        decoded = _decode_user_part(need_dict(part, f"{where}.content[{i}]"),
                                    f"{where}.content[{i}]")
        if decoded is not None:
            parts.append(decoded)
    return parts


def _decode_tool_call(call: Any, where: str) -> ir.ToolCall:
    call = need_dict(call, where)
    call_id = need_str(call.get("id"), f"{where}.id")
    if call.get("type") == "custom":
        custom = need_dict(call.get("custom"), f"{where}.custom")
        return ir.ToolCall(call_id, need_str(custom.get("name"), f"{where}.custom.name"),
                           str(custom.get("input") or ""), kind="custom")
    function = need_dict(call.get("function"), f"{where}.function")
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        arguments = dumps(arguments)
    elif not isinstance(arguments, str) or not arguments:
        arguments = "{}"
    return ir.ToolCall(call_id, need_str(function.get("name"), f"{where}.function.name"),
                       arguments)


def _assistant_text(part: Any, where: str) -> str:
    """The text of an assistant content part (``text`` or ``refusal``); other parts are ''."""
    if not isinstance(part, dict):
        return ""
    for key in ("text", "refusal"):
        if part.get(key) is not None:
            return need_str(part[key], f"{where}.{key}")
    return ""


def _decode_assistant(message: Json, where: str) -> list[ir.Part]:
    parts: list[ir.Part] = []
    reasoning = _reasoning_of(message)
    if reasoning:
        parts.append(ir.Reasoning(reasoning))
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(_assistant_text(part, f"{where}.content[{i}]")
                          for i, part in enumerate(content))
    if content:
        parts.append(ir.Text(need_str(content, f"{where}.content")))
    calls = need_list(message.get("tool_calls") or [], f"{where}.tool_calls")
    parts.extend(_decode_tool_call(call, f"{where}.tool_calls[{i}]")
                 for i, call in enumerate(calls))
    return parts


def _decode_tool_result(message: Json, where: str) -> ir.ToolResult:
    return ir.ToolResult(
        need_str(message.get("tool_call_id"), f"{where}.tool_call_id"),
        _text_of(message.get("content"), f"{where}.content"))


def _decode_messages(body: Json) -> list[ir.Message]:
    out: list[ir.Message] = []
    for i, message in enumerate(need_list(body.get("messages"), "messages")):
        where = f"messages[{i}]"
        message = need_dict(message, where)
        role = message.get("role")
        if role in ("system", "developer"):
            out.append(ir.Message("system", [
                ir.Text(_text_of(message.get("content"), f"{where}.content"))]))
        elif role == "user":
            out.append(ir.Message("user", _decode_user(message, where)))
        elif role == "assistant":
            out.append(ir.Message("assistant", _decode_assistant(message, where)))
        elif role == "tool":
            result = _decode_tool_result(message, where)
            previous = out[-1] if out else None
            if previous and previous.role == "user" and previous.parts and all(
                    isinstance(p, ir.ToolResult) for p in previous.parts):
                previous.parts.append(result)  # one turn of results, as the caller meant it
            else:
                out.append(ir.Message("user", [result]))
        else:
            raise CodecError(f"{where}.role: unsupported role {role!r} "
                             "(expected system, developer, user, assistant or tool)")
    return out


def _decode_function(function: Json, where: str) -> ir.Tool:
    parameters = function.get("parameters")
    strict = function.get("strict")
    return ir.Tool(need_str(function.get("name"), f"{where}.name"),
                   description=function.get("description") or None,
                   parameters=parameters if isinstance(parameters, dict) else None,
                   strict=strict if isinstance(strict, bool) else None)


def _decode_tools(body: Json) -> list[ir.Tool]:
    tools = []
    for i, tool in enumerate(need_list(body.get("tools") or [], "tools")):
        tool = need_dict(tool, f"tools[{i}]")
        kind = tool.get("type", "function")
        if kind == "function":
            tools.append(_decode_function(need_dict(tool.get("function"), f"tools[{i}].function"),
                                          f"tools[{i}].function"))
        elif kind == "custom":
            custom = need_dict(tool.get("custom"), f"tools[{i}].custom")
            fmt = custom.get("format")
            tools.append(ir.Tool(need_str(custom.get("name"), f"tools[{i}].custom.name"),
                                 description=custom.get("description") or None, kind="custom",
                                 format=fmt if isinstance(fmt, dict) else None))
        else:
            tools.append(ir.Tool(str(kind), kind="builtin", raw=tool, dialect="chat"))
    for i, function in enumerate(need_list(body.get("functions") or [], "functions")):
        tools.append(_decode_function(need_dict(function, f"functions[{i}]"), f"functions[{i}]"))
    return tools


def _decode_tool_choice(choice: Any) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICE_IN:
        return ir.ToolChoice(_CHOICE_IN[choice])
    if isinstance(choice, dict):
        kind = choice.get("type")
        named = choice.get(kind) if kind in ("function", "custom") else choice
        if isinstance(named, dict) and isinstance(named.get("name"), str):
            return ir.ToolChoice("tool", named["name"])
    raise CodecError(f"tool_choice: unsupported value {choice!r}")


def _decode_reasoning(body: Json) -> ir.ReasoningConfig | None:
    effort = body.get("reasoning_effort")
    thinking = body.get("thinking")  # DeepSeek / GLM: {"type": "enabled" | "disabled"}
    if isinstance(thinking, dict) and thinking.get("type") == "disabled":
        return ir.ReasoningConfig(enabled=False)
    if isinstance(effort, str) and effort in _EFFORTS_IN:
        return ir.ReasoningConfig(enabled=effort != "none", effort=effort)  # type: ignore[arg-type]
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return ir.ReasoningConfig()
    return None


def _decode_response_format(value: Any) -> Json | None:
    if not isinstance(value, dict):
        return None
    if value.get("type") == "json_object":
        return {"type": "json"}
    schema = value.get("json_schema")
    if value.get("type") == "json_schema" and isinstance(schema, dict):
        return {k: schema[k] for k in ("name", "schema", "strict") if k in schema}
    return None


def decode_request(body: dict[str, Any]) -> ir.Request:
    body = need_dict(body, "body")
    stop = body.get("stop")
    options = body.get("stream_options")
    request = ir.Request(
        model=str(body.get("model") or ""),
        messages=_decode_messages(body),
        tools=_decode_tools(body),
        tool_choice=_decode_tool_choice(body.get("tool_choice", body.get("function_call"))),
        parallel_tool_calls=body.get("parallel_tool_calls")
        if isinstance(body.get("parallel_tool_calls"), bool) else None,
        stream=body.get("stream") is True,
        max_tokens=opt_int(body, "max_completion_tokens") or opt_int(body, "max_tokens"),
        temperature=opt_number(body, "temperature"),
        top_p=opt_number(body, "top_p"),
        stop=[stop] if isinstance(stop, str) else
        [need_str(s, "stop[]") for s in need_list(stop, "stop")] if stop else [],
        seed=opt_int(body, "seed"),
        reasoning=_decode_reasoning(body),
        response_format=_decode_response_format(body.get("response_format")),
        cache_key=body.get("prompt_cache_key")
        if isinstance(body.get("prompt_cache_key"), str) else None,
        user=body.get("user") if isinstance(body.get("user"), str) and body["user"] else None)
    if isinstance(options, dict) and options.get("include_usage") is True:
        request.hints["include_usage"] = True
    return request


def _encode_part(part: ir.Part) -> Json | None:
    if isinstance(part, ir.Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ir.Image):
        url = part.url or data_uri(part.media_type or "image/png", part.data or "")
        image: Json = {"url": url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, ir.File):
        file: Json = {}
        if part.data is not None:
            file["filename"] = part.filename or "document.pdf"
            file["file_data"] = data_uri(part.media_type or "application/pdf", part.data)
        elif part.file_id:
            file["file_id"] = part.file_id
        else:
            return {"type": "text", "text": part.url or ""}
        return {"type": "file", "file": file}
    return None


def _collapse(parts: list[Json]) -> str | list[Json]:
    """Text-only content as one string (what every server takes), else the parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _encode_tool_result(result: ir.ToolResult) -> tuple[Json, list[Json]]:
    """The ``tool`` message of a result, and the images it held (for a user message)."""
    if isinstance(result.content, str):
        text, images = result.content, []
    else:
        text = "\n".join(p.text for p in result.content if isinstance(p, ir.Text))
        images = [e for p in result.content if isinstance(p, ir.Image)
                  if (e := _encode_part(p)) is not None]
    if result.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": result.call_id, "content": text}, images


def _encode_user(message: ir.Message) -> list[Json]:
    out: list[Json] = []
    parts: list[Json] = []
    for part in message.parts:
        if isinstance(part, ir.ToolResult):
            tool_message, images = _encode_tool_result(part)
            out.append(tool_message)
            parts.extend(images)
        elif (encoded := _encode_part(part)) is not None:
            parts.append(encoded)
    if parts:
        out.append({"role": "user", "content": _collapse(parts)})
    return out


def _encode_tool_call(call: ir.ToolCall) -> Json:
    if call.kind == "custom":
        return {"id": call.id, "type": "custom", "custom": {"name": call.name,
                                                            "input": call.arguments}}
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments or "{}"}}


def _encode_assistant(message: ir.Message, thinking: bool) -> list[Json]:
    texts = [p.text for p in message.parts if isinstance(p, ir.Text)]
    calls = [_encode_tool_call(p) for p in message.parts if isinstance(p, ir.ToolCall)]
    reasoning = [p.text for p in message.parts if isinstance(p, ir.Reasoning) and p.text]
    if not texts and not calls and not reasoning:
        return []
    out: Json = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    # DeepSeek's thinking mode refuses a tool-call turn without its reasoning_content.
    if reasoning or (calls and thinking):
        out["reasoning_content"] = "".join(reasoning)
    return [out]


def _encode_messages(request: ir.Request) -> list[Json]:
    thinking = request.reasoning is not None and request.reasoning.enabled
    out: list[Json] = []
    for message in request.messages:
        if message.role == "system":
            text = "\n".join(p.text for p in message.parts if isinstance(p, ir.Text))
            out.append({"role": "system", "content": text})
        elif message.role == "user":
            out.extend(_encode_user(message))
        else:
            out.extend(_encode_assistant(message, thinking))
    return out


def _encode_tool(tool: ir.Tool) -> Json | None:
    if tool.kind == "custom":
        custom: Json = {"name": tool.name}
        if tool.description:
            custom["description"] = tool.description
        if tool.format:
            custom["format"] = tool.format
        return {"type": "custom", "custom": custom}
    if tool.kind == "builtin":
        return tool.raw if tool.dialect == "chat" else None
    function: Json = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _encode_tool_choice(choice: ir.ToolChoice, tools: list[ir.Tool]) -> str | Json:
    if choice.mode != "tool":
        return choice.mode
    kind = next((t.kind for t in tools if t.name == choice.name), "function")
    if kind == "custom":
        return {"type": "custom", "custom": {"name": choice.name}}
    return {"type": "function", "function": {"name": choice.name}}


def _encode_response_format(value: Json) -> Json:
    if value.get("type") == "json":
        return {"type": "json_object"}
    schema = {"name": value.get("name") or "response", "schema": value.get("schema") or {}}
    if "strict" in value:
        schema["strict"] = value["strict"]
    return {"type": "json_schema", "json_schema": schema}


def _encode_tools(request: ir.Request, body: Json) -> None:
    tools = [t for tool in request.tools if (t := _encode_tool(tool)) is not None]
    if not tools:
        return
    body["tools"] = tools
    choice = request.tool_choice
    named = {t["function"]["name"] if t["type"] == "function" else t.get("custom", {}).get("name")
             for t in tools}
    # With only server tools offered, or one of them named, Chat has nothing to choose.
    if choice is not None and (choice.mode != "tool" or choice.name in named):
        body["tool_choice"] = _encode_tool_choice(choice, request.tools)
    if request.parallel_tool_calls is False:
        body["parallel_tool_calls"] = False


def encode_request(request: ir.Request) -> dict[str, Any]:
    body: Json = {"model": request.model, "messages": _encode_messages(request)}
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    for key in ("temperature", "top_p", "seed"):
        if getattr(request, key) is not None:
            body[key] = getattr(request, key)
    if request.stop:
        body["stop"] = list(request.stop)
    if request.user:
        body["user"] = request.user
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    _encode_tools(request, body)
    if request.reasoning is not None:
        effort = efforts.effort(request.reasoning)
        if effort is not None and effort != "none":
            body["reasoning_effort"] = _EFFORTS_OUT[effort]
    if request.response_format:
        body["response_format"] = _encode_response_format(request.response_format)
    return body
