"""The Gemini API dialect (``generateContent`` / ``streamGenerateContent``): `CODEC`. Pure.

Gemini carries no model and no stream flag in its body: the model is in the URL path and the
stream is the method. The gateway adds both to the decoded body as ``model`` and ``stream``
(keys Gemini does not have) before `decode_request`; `encode_request` never writes them.

What Gemini lacks and this codec makes up:

* Call ids. ``functionCall.id`` is optional. A request's calls without one get ids from their
  position (``call_{content}_{part}``), the same on every turn of a conversation; a
  ``functionResponse`` without one answers the oldest unanswered call of its name. The
  ``{name}__`` prefix the Gemini CLI puts on ids it was given is taken off again. An answer's
  calls without one get ``call_<random>_<n>``, fixed for the whole stream.
* ``functionResponse.name``: Gemini needs it, other dialects do not send it; it is looked up
  from the call with the same id earlier in the request.
* Thought signatures. ``thoughtSignature`` on a part is kept on that part as
  ``Opaque("gemini", …)``. The Gemini CLI's placeholder ``skip_thought_signature_validator`` is
  not state and decodes to nothing. Encoding a request, the first ``functionCall`` of each model
  turn that has no signature gets the placeholder, which Gemini 3 accepts (its 400 otherwise).
  Encoding an answer for a Gemini caller, a reasoning part's signature is put on the next part
  that is not a thought (the first function call or text), where Gemini itself puts it: callers
  such as the Gemini CLI keep those parts in their history and drop thought parts.
* Arguments. ``functionCall.args`` is a JSON object; the neutral form is its raw text.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

import orjson

from .. import ir
from ..codec import CodecError
from ..hub import register

Json = dict[str, Any]

#: The signature Gemini accepts for a function call it did not produce itself.
SKIP_SIGNATURE = "skip_thought_signature_validator"

#: Google's RPC status name for an HTTP status (google.rpc.Code).
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
    502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_KIND_OF_STATUS = {
    "RESOURCE_EXHAUSTED": "rate_limit", "UNAVAILABLE": "overloaded",
    "UNAUTHENTICATED": "authentication", "PERMISSION_DENIED": "authentication",
    "INVALID_ARGUMENT": "invalid_request", "FAILED_PRECONDITION": "invalid_request",
    "NOT_FOUND": "invalid_request", "OUT_OF_RANGE": "invalid_request",
}
#: The HTTP code an in-stream error of a neutral kind is reported with.
_CODE_OF_KIND = {"invalid_request": 400, "context_length": 400, "authentication": 401,
                 "rate_limit": 429, "overloaded": 503, "server_error": 500}
_CONTEXT_LENGTH = re.compile(r"token count.*exceeds|exceeds the maximum number of tokens", re.I)

_FINISH_IN: dict[str, ir.FinishReason] = {
    "STOP": "stop", "MAX_TOKENS": "length",
    "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter", "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error", "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error", "OTHER": "error",
}
_FINISH_OUT: dict[ir.FinishReason, str] = {
    "stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS",
    "content_filter": "SAFETY", "error": "OTHER"}

_MODES_IN = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}
_LEVELS_IN: dict[str, ir.Effort] = {
    "MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}
_LEVELS_OUT: dict[ir.Effort, str] = {
    "none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
    "xhigh": "HIGH", "max": "HIGH"}
#: thinkingBudget for an effort, for Gemini 2.x models (which take no thinkingLevel).
_BUDGETS: dict[ir.Effort, int] = {
    "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}


def _get(obj: Json, camel: str) -> Any:
    """*obj*'s field by its JSON name, or by the proto name Google's servers also accept."""
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel))


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _signature(part: Json) -> ir.Opaque | None:
    sig = _get(part, "thoughtSignature")
    if not isinstance(sig, str) or not sig or sig == SKIP_SIGNATURE:
        return None
    return ir.Opaque("gemini", _from_wire(sig))


def _own(sig: ir.Opaque | None) -> str | None:
    """The payload of a signature Gemini issued, as it goes on the wire; None for any other
    issuer's."""
    return _to_wire(sig.data) if sig is not None and sig.issuer == "gemini" else None


#: ``thoughtSignature`` is bytes in base64 (google-genai refuses anything else). State that is
#: not base64 (an envelope the gateway sealed) travels as base64 of a marker and its text; the
#: marker starts with a zero byte, which no real signature (a protobuf message) starts with.
_WRAPPED = b"\x00cr:"
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _to_wire(data: str) -> str:
    if len(data) % 4 == 0 and _BASE64.fullmatch(data):
        return data
    return base64.urlsafe_b64encode(_WRAPPED + data.encode()).decode()


def _from_wire(sig: str) -> str:
    if not sig.startswith("AGNy"):  # base64 of the marker's first bytes
        return sig
    try:
        raw = base64.urlsafe_b64decode(sig)
    except (ValueError, binascii.Error):
        return sig
    return raw[len(_WRAPPED):].decode("utf-8", "replace") if raw.startswith(_WRAPPED) else sig


def _args_text(args: Any) -> str:
    return orjson.dumps(args if args is not None else {}).decode()


def _new_id() -> str:
    return os.urandom(8).hex()


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
    system: list[Json] = []
    contents: list[Json] = []
    for message in request.messages:
        if message.role == "system":
            system += [{"text": p.text} for p in message.parts if isinstance(p, ir.Text)]
            continue
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


class StreamDecoder:
    """``data: {GenerateContentResponse}`` chunks in, neutral events out.

    Text and thought parts grow the open part of their kind; a functionCall arrives whole (a
    start, one argument delta, its signature and an end). A chunk with a ``finishReason``
    finishes the stream; an ``error`` chunk fails it.
    """

    def __init__(self) -> None:
        self._prefix = _new_id()
        self._index = -1
        self._open: str | None = None  # "text" or "reasoning"
        self._calls = 0
        self._usage: ir.Usage | None = None
        self._started = False
        self._ended = False

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        if self._ended or not data.strip():
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise CodecError("stream chunk is not JSON") from None
        if isinstance(chunk, list):  # the JSON-array stream's elements, one per feed
            return [event for item in chunk for event in self._chunk(item)]
        return self._chunk(chunk)

    def _chunk(self, chunk: Any) -> list[ir.Event]:
        if not isinstance(chunk, dict):
            raise CodecError("stream chunk must be a JSON object")
        events: list[ir.Event] = []
        if "error" in chunk:
            message, kind = _error_of(chunk, 500)
            self._ended = True
            return [ir.Failure(message, kind)]  # type: ignore[arg-type]
        if not self._started:
            self._started = True
            rid = _get(chunk, "responseId")
            events.append(ir.Start(id=rid if isinstance(rid, str) and rid
                                   else f"gemini-{self._prefix}",
                                   model=str(_get(chunk, "modelVersion") or "")))
        candidate = _candidate(chunk)
        for part in _candidate_parts(candidate):
            events += self._part(part)
        usage = decode_usage(_get(chunk, "usageMetadata"))
        if usage is not None:
            self._usage = usage
            events.append(ir.UsageUpdate(usage))
        if _get(candidate, "finishReason") is not None or (
                not candidate and _get(chunk, "promptFeedback")):
            events += self._close_open()
            events.append(ir.Finish(_finish(candidate, chunk, self._calls > 0), self._usage))
            self._ended = True
        return events

    def _part(self, part: Json) -> list[ir.Event]:
        events: list[ir.Event] = []
        sig = _signature(part)
        text = part.get("text")
        if isinstance(text, str):
            kind = "reasoning" if part.get("thought") is True else "text"
            if self._open != kind:
                events += self._close_open()
                self._index += 1
                self._open = kind
                events.append(ir.PartStart(self._index, ir.Reasoning() if kind == "reasoning"
                                           else ir.Text("")))
            if text:
                events.append(ir.PartDelta(self._index, text))
            if sig is not None:
                events.append(ir.PartSignature(self._index, sig))
            return events
        call = _get(part, "functionCall")
        if not isinstance(call, dict):
            return events
        events += self._close_open()
        self._index += 1
        tool = _tool_call(call, part, f"call_{self._prefix}_{self._calls}")
        self._calls += 1
        # the signature rides on the start too: a caller of another dialect carries it on
        # the call's id, which goes out with the start
        events.append(ir.PartStart(self._index, ir.ToolCall(id=tool.id, name=tool.name,
                                                            signature=tool.signature)))
        events.append(ir.PartDelta(self._index, tool.arguments))
        if tool.signature is not None:
            events.append(ir.PartSignature(self._index, tool.signature))
        events.append(ir.PartEnd(self._index))
        return events

    def _close_open(self) -> list[ir.Event]:
        if self._open is None:
            return []
        self._open = None
        return [ir.PartEnd(self._index)]

    def close(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        return [ir.Failure("upstream stream ended before its finishReason")]


class StreamEncoder:
    """Neutral events in, ``data: {GenerateContentResponse}`` chunks out (``?alt=sse``).

    Text and thought deltas go out as they come; a function call goes out whole when its part
    ends (Gemini never splits one). The last chunk carries ``finishReason`` and
    ``usageMetadata``; a `Failure` is one Google-shaped ``{"error": …}`` chunk.
    """

    def __init__(self, model: str, estimated_input_tokens: int) -> None:
        self.model = model
        self.estimated_input_tokens = estimated_input_tokens
        self.id = f"gemini-{_new_id()}"
        self._parts: dict[int, ir.Part] = {}
        self._args: dict[int, list[str]] = {}
        self._pending: str | None = None  # a reasoning signature waiting for its carrier
        self._usage: ir.Usage | None = None
        self._done = False

    def _chunk(self, parts: list[Json], **candidate: Any) -> bytes:
        body: Json = {"candidates": [{"content": {"role": "model", "parts": parts},
                                      **candidate, "index": 0}]}
        if not parts:
            del body["candidates"][0]["content"]
        if "finishReason" in candidate:
            usage = self._usage or ir.Usage(input_tokens=self.estimated_input_tokens)
            body["usageMetadata"] = encode_usage(usage)
        body["modelVersion"] = self.model
        body["responseId"] = self.id
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"

    def _carry(self, item: Json) -> Json:
        if self._pending is not None and "thoughtSignature" not in item:
            item["thoughtSignature"] = self._pending
        if "thoughtSignature" in item:
            self._pending = None
        return item

    def feed(self, event: ir.Event) -> bytes:
        if self._done:
            return b""
        if isinstance(event, ir.Start):
            self.id = event.id or self.id
            if event.usage is not None:
                self._usage = event.usage
            return b""
        if isinstance(event, ir.PartStart):
            self._parts[event.index] = event.part
            if isinstance(event.part, ir.ToolCall):
                self._args[event.index] = [event.part.arguments]
            return b""
        if isinstance(event, ir.PartDelta):
            return self._delta(event)
        if isinstance(event, ir.PartSignature):
            return self._signed(event)
        if isinstance(event, ir.PartEnd):
            return self._end(event.index)
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return b""
        if isinstance(event, ir.Finish):
            out = b"".join(self._end(index) for index in list(self._args))
            if event.usage is not None:
                self._usage = event.usage
            parts = [{"text": "", "thoughtSignature": self._pending}] if self._pending else []
            self._done = True
            return out + self._chunk(parts, finishReason=_FINISH_OUT[event.reason])
        if isinstance(event, ir.Failure):
            self._done = True
            return _error_chunk(event.message, event.kind)
        return b""

    def _delta(self, event: ir.PartDelta) -> bytes:
        part = self._parts.get(event.index)
        if isinstance(part, ir.ToolCall):
            self._args.setdefault(event.index, []).append(event.text)
            return b""
        if not event.text:
            return b""
        if isinstance(part, ir.Reasoning):
            return self._chunk([{"text": event.text, "thought": True}])
        return self._chunk([self._carry({"text": event.text})])

    def _signed(self, event: ir.PartSignature) -> bytes:
        sig = _own(event.signature)
        part = self._parts.get(event.index)
        if sig is None:
            return b""
        if isinstance(part, ir.ToolCall):
            part.signature = event.signature
            return b""
        self._pending = sig  # a thought's or an already-sent text's: rides on the next part
        return b""

    def _end(self, index: int) -> bytes:
        part = self._parts.pop(index, None)
        pieces = self._args.pop(index, None)
        if not isinstance(part, ir.ToolCall) or pieces is None:
            return b""
        arguments = "".join(pieces)
        try:
            args = _args_object(arguments)
        except CodecError:
            args = {"arguments": arguments}  # never lose what the model wrote
        item: Json = {"functionCall": {"id": part.id, "name": part.name, "args": args}}
        if _own(part.signature):
            item["thoughtSignature"] = _own(part.signature)
        return self._chunk([self._carry(item)])

    def close(self) -> bytes:
        return b""


# Errors


def _error_of(obj: Any, status: int) -> tuple[str, str]:
    if isinstance(obj, list) and obj:
        obj = obj[0]
    error = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(error, dict):
        return (f"upstream answered {status}", _kind(status, None, ""))
    message = error.get("message")
    message = message if isinstance(message, str) and message else f"upstream answered {status}"
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    return message, _kind(code, error.get("status"), message)


def _kind(code: int, status: Any, message: str) -> str:
    kind = _KIND_OF_STATUS.get(status) if isinstance(status, str) else None
    if kind is None:
        kind = {400: "invalid_request", 401: "authentication", 403: "authentication",
                404: "invalid_request", 429: "rate_limit", 503: "overloaded"}.get(code)
        if kind is None:
            kind = "invalid_request" if 400 <= code < 500 else "server_error"
    if kind == "invalid_request" and _CONTEXT_LENGTH.search(message):
        return "context_length"
    return kind


def decode_error(status: int, body: bytes) -> tuple[str, str]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()[:1000]
        return text or f"upstream answered {status}", _kind(status, None, text)
    return _error_of(obj, status)


def error_body(status: int, message: str, status_name: str | None = None) -> bytes:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    return orjson.dumps({"error": {
        "code": status, "message": message,
        "status": status_name or STATUS_NAMES.get(status,
                                                  "INTERNAL" if status >= 500 else "UNKNOWN")}})


def _error_chunk(message: str, kind: str) -> bytes:
    code = _CODE_OF_KIND.get(kind, 500)
    return b"data: " + error_body(code, message) + b"\r\n\r\n"


class GeminiCodec:
    name: ir.WireDialect = "gemini"
    custom_tools = False
    max_tool_name = 64

    def decode_request(self, body: Json) -> ir.Request:
        return decode_request(body)

    def encode_request(self, request: ir.Request) -> Json:
        return encode_request(request)

    def decode_response(self, body: Json) -> ir.Response:
        return decode_response(body)

    def encode_response(self, response: ir.Response, model: str) -> Json:
        return encode_response(response, model)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder()

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> StreamEncoder:
        return StreamEncoder(model, estimated_input_tokens)

    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        return decode_error(status, body)

    def encode_error(self, status: int, message: str, kind: str) -> bytes:
        return error_body(status, message)

    def error_event(self, message: str, kind: str) -> bytes:
        return _error_chunk(message, kind)


CODEC = register(GeminiCodec())
