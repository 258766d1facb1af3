"""Gemini requests: a ``GenerateContentRequest`` to `ir.Request` and back."""

from __future__ import annotations

from typing import Any

import orjson

from .. import ir
from ..codec import CodecError
from .fields import SKIP_SIGNATURE, Json, _args_text, _get, _own, _signature

_MODES_IN = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}
_LEVELS_IN: dict[str, ir.Effort] = {
    "MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}
_LEVELS_OUT: dict[ir.Effort, str] = {
    "none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
    "xhigh": "HIGH", "max": "HIGH"}
#: thinkingBudget for an effort, for Gemini 2.x models (which take no thinkingLevel).
_BUDGETS: dict[ir.Effort, int] = {
    "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}


# Requests: Gemini -> neutral


def decode_request(body: Json) -> ir.Request:
    """A Gemini ``GenerateContentRequest`` (plus the gateway's ``model`` and ``stream``)."""
    if not isinstance(body, dict):
        raise CodecError("request body must be a JSON object")
    request = ir.Request(model=str(body.get("model") or ""), stream=body.get("stream") is True)
    system = _get(body, "systemInstruction")
    if system is not None:
        parts = _system_parts(system, "systemInstruction")
        if parts:
            request.messages.append(ir.Message("system", parts))
    contents = body.get("contents", [])
    if isinstance(contents, dict):  # a single Content is accepted by the SDKs
        contents = [contents]
    if not isinstance(contents, list):
        raise CodecError("contents: must be a list of Content objects")
    calls = _Calls()
    for i, content in enumerate(contents):
        message = _decode_content(content, f"contents[{i}]", i, calls)
        if message is not None:
            request.messages.append(message)
    request.tools = _decode_tools(body.get("tools"))
    tool_config = _get(body, "toolConfig")
    if isinstance(tool_config, dict):
        request.tool_choice = _decode_tool_choice(tool_config)
    config = _get(body, "generationConfig")
    if config is not None:
        if not isinstance(config, dict):
            raise CodecError("generationConfig: must be an object")
        _decode_generation(config, request)
    return request


class _Calls:
    """The function calls of a request so far, to give responses their call ids."""

    def __init__(self) -> None:
        self.unanswered: list[tuple[str, str]] = []  # (id, name), oldest first

    def called(self, call_id: str, name: str) -> None:
        self.unanswered.append((call_id, name))

    def answer(self, call_id: str | None, name: str, where: str) -> str:
        for n, (known, known_name) in enumerate(self.unanswered):
            if known == call_id or (call_id is None and known_name == name):
                del self.unanswered[n]
                return known
        return call_id or f"call_{where}"


def _system_parts(system: Any, path: str) -> list[ir.Part]:
    if isinstance(system, str):
        return [ir.Text(system)]
    if not isinstance(system, dict):
        raise CodecError(f"{path}: must be a Content object")
    parts = system.get("parts", [])
    if not isinstance(parts, list):
        raise CodecError(f"{path}.parts: must be a list")
    return [ir.Text(p["text"]) for p in parts
            if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _decode_content(content: Any, path: str, i: int, calls: _Calls) -> ir.Message | None:
    if not isinstance(content, dict):
        raise CodecError(f"{path}: must be a Content object")
    role = content.get("role", "user")
    if role == "model":
        neutral: ir.Role = "assistant"
    elif role in ("user", "function", "tool"):
        neutral = "user"
    else:
        raise CodecError(f"{path}.role: must be 'user' or 'model', got {role!r}")
    parts = content.get("parts", [])
    if not isinstance(parts, list):
        raise CodecError(f"{path}.parts: must be a list of Part objects")
    out: list[ir.Part] = []
    for j, part in enumerate(parts):
        where = f"{path}.parts[{j}]"
        if not isinstance(part, dict):
            raise CodecError(f"{where}: must be a Part object")
        decoded = _decode_part(part, where, f"{i}_{j}", calls)
        if decoded is not None:
            out.append(decoded)
    return ir.Message(neutral, out)


def _decode_part(part: Json, path: str, position: str, calls: _Calls) -> ir.Part | None:
    text = part.get("text")
    if isinstance(text, str):
        if part.get("thought") is True:
            return ir.Reasoning(text=text, signature=_signature(part))
        return ir.Text(text, signature=_signature(part))
    if (inline := _get(part, "inlineData")) is not None:
        return _decode_blob(inline, f"{path}.inlineData")
    if (file := _get(part, "fileData")) is not None:
        return _decode_file_data(file, f"{path}.fileData")
    if (call := _get(part, "functionCall")) is not None:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise CodecError(f"{path}.functionCall: needs a string 'name'")
        args = call.get("args")
        if args is not None and not isinstance(args, dict):
            raise CodecError(f"{path}.functionCall.args: must be an object")
        call_id = _own_id(call.get("id"), call["name"]) or f"call_{position}"
        calls.called(call_id, call["name"])
        return ir.ToolCall(id=call_id, name=call["name"], arguments=_args_text(args),
                           signature=_signature(part))
    if (result := _get(part, "functionResponse")) is not None:
        return _decode_function_response(result, f"{path}.functionResponse", position, calls)
    return None  # executableCode, codeExecutionResult, videoMetadata…: nothing to carry


def _own_id(given: Any, name: str) -> str | None:
    """A call id as it was issued: the Gemini CLI prefixes each with ``{name}__`` in the
    history it sends back (an upstream of another dialect wants its own id, under its
    length limit)."""
    if not isinstance(given, str) or not given:
        return None
    return given.removeprefix(f"{name}__") or given


def _decode_blob(blob: Any, path: str) -> ir.Image | ir.File:
    if not isinstance(blob, dict) or not isinstance(blob.get("data"), str):
        raise CodecError(f"{path}: needs base64 'data' and 'mimeType'")
    mime = _get(blob, "mimeType")
    mime = mime if isinstance(mime, str) and mime else "application/octet-stream"
    if mime.startswith("image/"):
        return ir.Image(media_type=mime, data=blob["data"])
    return ir.File(media_type=mime, data=blob["data"], filename=_get(blob, "displayName"))


def _decode_file_data(file: Any, path: str) -> ir.Image | ir.File:
    uri = _get(file, "fileUri") if isinstance(file, dict) else None
    if not isinstance(uri, str) or not uri:
        raise CodecError(f"{path}: needs a 'fileUri'")
    mime = _get(file, "mimeType")
    if isinstance(mime, str) and mime.startswith("image/"):
        return ir.Image(url=uri, media_type=mime)
    return ir.File(url=uri, media_type=mime if isinstance(mime, str) else None)


def _decode_function_response(result: Any, path: str, position: str,
                              calls: _Calls) -> ir.ToolResult:
    if not isinstance(result, dict) or not isinstance(result.get("name"), str):
        raise CodecError(f"{path}: needs a string 'name'")
    name = result["name"]
    call_id = calls.answer(_own_id(result.get("id"), name), name, position)
    response = result.get("response")
    is_error = False
    content: str | list[ir.Text | ir.Image]
    if isinstance(response, dict) and set(response) == {"output"} \
            and isinstance(response["output"], str):
        content = response["output"]
    elif isinstance(response, dict) and set(response) == {"error"} \
            and isinstance(response["error"], str):
        content, is_error = response["error"], True
    elif response is None:
        content = ""
    else:
        content = orjson.dumps(response).decode()
    extra: list[ir.Text | ir.Image] = []
    parts = result.get("parts")
    for k, part in enumerate(parts if isinstance(parts, list) else []):
        blob = _get(part, "inlineData") if isinstance(part, dict) else None
        if blob is not None:
            media = _decode_blob(blob, f"{path}.parts[{k}].inlineData")
            if isinstance(media, ir.Image):
                extra.append(media)
    if extra:
        content = [ir.Text(content), *extra] if content else extra
    return ir.ToolResult(call_id=call_id, content=content, is_error=is_error, name=name)


def _decode_tools(tools: Any) -> list[ir.Tool]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise CodecError("tools: must be a list of Tool objects")
    out: list[ir.Tool] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise CodecError(f"tools[{i}]: must be a Tool object")
        for key, value in tool.items():
            if key in ("functionDeclarations", "function_declarations"):
                out += _decode_declarations(value, f"tools[{i}].{key}")
            else:
                out.append(ir.Tool(name=key, kind="builtin", raw={key: value},
                                   dialect="gemini"))
    return out


def _decode_declarations(declarations: Any, path: str) -> list[ir.Tool]:
    if not isinstance(declarations, list):
        raise CodecError(f"{path}: must be a list")
    out = []
    for j, fn in enumerate(declarations):
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise CodecError(f"{path}[{j}]: needs a string 'name'")
        schema = _get(fn, "parametersJsonSchema")
        if schema is None and (openapi := fn.get("parameters")) is not None:
            schema = json_schema(openapi)
        description = fn.get("description")
        out.append(ir.Tool(name=fn["name"],
                           description=description if isinstance(description, str) else None,
                           parameters=schema if isinstance(schema, dict) else None))
    return out


def json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style ``parameters`` schema as JSON Schema: ``"OBJECT"`` types in
    lower case, ``nullable`` as a ``"null"`` type."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: json_schema(value) for key, value in schema.items()
           if key not in ("nullable", "propertyOrdering")}
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = kind.lower()
        if schema.get("nullable") is True:
            out["type"] = [kind.lower(), "null"]
    return out


def _decode_tool_choice(tool_config: Json) -> ir.ToolChoice | None:
    config = _get(tool_config, "functionCallingConfig")
    if not isinstance(config, dict):
        return None
    mode = _MODES_IN.get(str(config.get("mode", "AUTO")).upper(), "auto")
    names = _get(config, "allowedFunctionNames")
    if mode == "required" and isinstance(names, list) and len(names) == 1 \
            and isinstance(names[0], str):
        return ir.ToolChoice("tool", names[0])
    return ir.ToolChoice(mode)  # type: ignore[arg-type]


def _decode_generation(config: Json, request: ir.Request) -> None:
    def number(name: str) -> float | None:
        value = _get(config, name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"generationConfig.{name}: must be a number")
        return value

    def integer(name: str) -> int | None:
        value = number(name)
        if value is not None and value != int(value):
            raise CodecError(f"generationConfig.{name}: must be an integer")
        return None if value is None else int(value)

    request.temperature = number("temperature")
    request.top_p = number("topP")
    request.top_k = integer("topK")
    request.max_tokens = integer("maxOutputTokens")
    request.seed = integer("seed")
    stops = _get(config, "stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise CodecError("generationConfig.stopSequences: must be a list of strings")
        request.stop = list(stops)
    schema = _get(config, "responseJsonSchema") or _get(config, "responseSchema")
    if isinstance(schema, dict):
        if _get(config, "responseSchema") is schema:
            schema = json_schema(schema)
        request.response_format = {"name": "response", "schema": schema}
    elif _get(config, "responseMimeType") == "application/json":
        request.response_format = {"type": "json"}
    thinking = _get(config, "thinkingConfig")
    if isinstance(thinking, dict):
        request.reasoning = _decode_thinking(thinking)


def _decode_thinking(thinking: Json) -> ir.ReasoningConfig:
    reasoning = ir.ReasoningConfig(summary=_get(thinking, "includeThoughts") is True)
    level = _get(thinking, "thinkingLevel")
    if isinstance(level, str):
        reasoning.effort = _LEVELS_IN.get(level.upper())
    budget = _get(thinking, "thinkingBudget")
    if isinstance(budget, int) and not isinstance(budget, bool):
        if budget == 0:
            reasoning.enabled = False
        elif budget > 0:
            reasoning.budget = budget
    return reasoning


# Requests: neutral -> Gemini


def encode_request(request: ir.Request) -> Json:
    """A ``GenerateContentRequest`` for a Gemini upstream (the model goes in the URL)."""
    body: Json = {}
    names = {part.id: part.name for message in request.messages for part in message.parts
             if isinstance(part, ir.ToolCall)}
    leading, conversation = ir.split_system(request.messages)
    system = [{"text": p.text} for m in leading for p in m.parts if isinstance(p, ir.Text)]
    contents: list[Json] = []
    for message in conversation:
        if message.role == "assistant":
            parts = _model_parts(message.parts, sign_first_call=True)
        else:
            parts = _user_parts(message.parts, names)
        if not parts:
            continue
        role = "model" if message.role == "assistant" else "user"
        if role == "user" and contents and contents[-1]["role"] == "user":
            contents[-1]["parts"] += parts  # all answers to one model turn in one content
        else:
            contents.append({"role": role, "parts": parts})
    body["contents"] = contents
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = _encode_tools(request.tools)
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None and request.tools:
        body["toolConfig"] = {"functionCallingConfig": _encode_tool_choice(request.tool_choice)}
    generation = _encode_generation(request)
    if generation:
        body["generationConfig"] = generation
    return body


def _model_parts(parts: list[ir.Part], *, sign_first_call: bool) -> list[Json]:
    """A model turn's parts. Requests: the first call gets the placeholder signature when it
    has none. Answers (*sign_first_call* False): a reasoning signature moves to the next part
    that is not a thought."""
    out: list[Json] = []
    pending: str | None = None
    first_call = True
    for part in parts:
        if isinstance(part, ir.Reasoning):
            sig = _own(part.signature)
            if sign_first_call:
                if sig is not None:  # Gemini's own thought part, returned as it came
                    out.append({"text": part.text, "thought": True, "thoughtSignature": sig})
                continue
            if part.text:
                out.append({"text": part.text, "thought": True})
            pending = sig or pending
            continue
        if isinstance(part, ir.Text):
            item: Json = {"text": part.text}
            sig = _own(part.signature) or pending
        elif isinstance(part, ir.ToolCall):
            item = {"functionCall": _function_call(part)}
            sig = _own(part.signature) or pending
            if sig is None and first_call and sign_first_call:
                sig = SKIP_SIGNATURE
            first_call = False
        else:
            continue
        if sig is not None:
            item["thoughtSignature"] = sig
            pending = None
        out.append(item)
    if pending is not None:
        out.append({"text": "", "thoughtSignature": pending})
    return out


def _function_call(call: ir.ToolCall) -> Json:
    return {"id": call.id, "name": call.name, "args": _args_object(call.arguments)}


def _args_object(arguments: str) -> Json:
    if not arguments.strip():
        return {}
    try:
        args = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise CodecError(f"tool call arguments are not JSON: {arguments[:100]!r}") from None
    if not isinstance(args, dict):
        raise CodecError("tool call arguments must be a JSON object")
    return args


def _user_parts(parts: list[ir.Part], names: dict[str, str]) -> list[Json]:
    out: list[Json] = []
    for part in parts:
        if isinstance(part, ir.Text):
            out.append({"text": part.text})
        elif isinstance(part, ir.Image | ir.File):
            out.append(_media(part))
        elif isinstance(part, ir.ToolResult):
            out += _function_response(part, names)
    return out


def _media(part: ir.Image | ir.File) -> Json:
    """inlineData for base64 data (a ``data:`` URL included), else fileData by URI."""
    data, mime = part.data, part.media_type
    url = part.url or (part.file_id if isinstance(part, ir.File) else None)
    if data is None and url and url.startswith("data:") and "," in url:
        header, data = url[5:].split(",", 1)
        mime = header.split(";")[0] or mime
    if data is not None:
        return {"inlineData": {"mimeType": mime or "application/octet-stream", "data": data}}
    file: Json = {"fileUri": url or ""}
    if mime:
        file["mimeType"] = mime
    return {"fileData": file}


def _function_response(result: ir.ToolResult, names: dict[str, str]) -> list[Json]:
    name = result.name or names.get(result.call_id) or result.call_id
    extra: list[Json] = []
    if isinstance(result.content, str):
        text = result.content
    else:
        text = "".join(p.text for p in result.content if isinstance(p, ir.Text))
        extra = [_media(p) for p in result.content if isinstance(p, ir.Image)]
    response = {"error" if result.is_error else "output": text}
    call = {"id": result.call_id, "name": name, "response": response}
    return [{"functionResponse": call}, *extra]


def _encode_tools(tools: list[ir.Tool]) -> list[Json]:
    declarations: list[Json] = []
    builtins: list[Json] = []
    for tool in tools:
        if tool.kind == "builtin":
            if tool.dialect == "gemini" and tool.raw:
                builtins.append(tool.raw)
            continue  # another vendor's server tool: Gemini cannot run it
        fn: Json = {"name": tool.name}
        if tool.description:
            fn["description"] = tool.description
        if tool.kind == "custom":
            fn["parametersJsonSchema"] = {
                "type": "object", "properties": {"input": {"type": "string"}},
                "required": ["input"]}
        elif tool.parameters is not None:
            fn["parametersJsonSchema"] = tool.parameters
        declarations.append(fn)
    out: list[Json] = [{"functionDeclarations": declarations}] if declarations else []
    return out + builtins


def _encode_tool_choice(choice: ir.ToolChoice) -> Json:
    if choice.mode == "tool" and choice.name:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"none": "NONE", "required": "ANY"}.get(choice.mode, "AUTO")}


def _encode_generation(request: ir.Request) -> Json:
    out: Json = {}
    for key, value in (("temperature", request.temperature), ("topP", request.top_p),
                       ("topK", request.top_k), ("maxOutputTokens", request.max_tokens),
                       ("seed", request.seed)):
        if value is not None:
            out[key] = value
    if request.stop:
        out["stopSequences"] = list(request.stop)
    format_ = request.response_format
    if format_ is not None:
        out["responseMimeType"] = "application/json"
        if isinstance(format_.get("schema"), dict):
            out["responseJsonSchema"] = format_["schema"]
    if request.reasoning is not None:
        out["thinkingConfig"] = _encode_thinking(request.reasoning, request.model)
    return out


def _encode_thinking(reasoning: ir.ReasoningConfig, model: str) -> Json:
    """Gemini 2.x takes a token budget; later models a level (a budget still works)."""
    budget_only = model.startswith(("gemini-2", "gemini-1"))
    if not reasoning.enabled or reasoning.effort == "none":
        if budget_only:
            return {"thinkingBudget": 0}
        return {"thinkingLevel": "LOW" if "pro" in model else "MINIMAL"}
    out: Json = {"includeThoughts": True}
    if reasoning.effort is not None and not budget_only:
        level = _LEVELS_OUT[reasoning.effort]
        out["thinkingLevel"] = "LOW" if level == "MINIMAL" and "pro" in model else level
    elif reasoning.budget is not None:
        out["thinkingBudget"] = reasoning.budget
    elif reasoning.effort is not None:
        out["thinkingBudget"] = _BUDGETS.get(reasoning.effort, 8192)
    return out
