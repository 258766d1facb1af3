"""Responses requests: a ``/v1/responses`` body to `ir.Request` and back (the items each
input becomes are in the package docstring)."""

from __future__ import annotations

from typing import Any

from .. import ir
from ..codec import CodecError
from ..effort import effort_of_budget
from ..wire import typed
from .compaction import FOREIGN_NOTE
from .items import (
    ASSISTANT_ITEMS,
    LOCAL_SHELL,
    LOCAL_SHELL_DESCRIPTION,
    LOCAL_SHELL_SCHEMA,
    NAMESPACE_KEY,
    RESULT_ITEMS,
    content_parts,
    flat_name,
    item_part,
    kind_of,
    list_at,
    number_at,
    str_at,
)

Json = dict[str, Any]

_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
#: Neutral efforts OpenAI has no word for, mapped to the nearest it has.
_EFFORT_TO_OPENAI = {"max": "xhigh"}
#: OpenAI refuses max_output_tokens below this.
_MIN_OUTPUT_TOKENS = 16


def _messages(items: list[Any]) -> list[ir.Message]:
    out: list[ir.Message] = []

    def add(role: ir.Role, parts: list[ir.Part]) -> None:
        if role != "system" and out and out[-1].role == role:
            out[-1].parts.extend(parts)
        else:
            out.append(ir.Message(role=role, parts=parts))

    for i, item in enumerate(items):
        path = f"input[{i}]"
        if not isinstance(item, dict):
            raise CodecError(f"{path}: expected an object, got {kind_of(item)}")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise CodecError(f"{path}.role: expected user, assistant, system or "
                                 f"developer, got {role!r}")
            parts = content_parts(item.get("content"), f"{path}.content")
            if role in ("system", "developer"):
                parts = [p for p in parts if isinstance(p, ir.Text)]
                add("system", parts)
            else:
                add(role, parts)
        elif kind in ASSISTANT_ITEMS:
            add("assistant", [item_part(item, kind, path)])
        elif kind in RESULT_ITEMS:
            add("user", [item_part(item, kind, path)])
        elif kind == "compaction":
            add("user", [ir.Text(text=FOREIGN_NOTE)])
        # anything else is OpenAI-side state or unknown: skipped (see the module docstring)
    return out


def _tool(raw: Any, path: str) -> ir.Tool:
    if not isinstance(raw, dict):
        raise CodecError(f"{path}: expected an object, got {kind_of(raw)}")
    kind = raw.get("type")
    if kind == "function":
        parameters = raw.get("parameters")
        return ir.Tool(name=str_at(raw.get("name"), f"{path}.name") or "",
                       description=str_at(raw.get("description"), f"{path}.description",
                                        optional=True),
                       parameters=parameters if isinstance(parameters, dict) else None,
                       strict=raw.get("strict") if isinstance(raw.get("strict"), bool) else None)
    if kind == "custom":
        fmt = raw.get("format")
        return ir.Tool(name=str_at(raw.get("name"), f"{path}.name") or "", kind="custom",
                       description=str_at(raw.get("description"), f"{path}.description",
                                        optional=True),
                       format=fmt if isinstance(fmt, dict) else None)
    if kind == LOCAL_SHELL:
        return ir.Tool(name=LOCAL_SHELL, description=LOCAL_SHELL_DESCRIPTION,
                       parameters=LOCAL_SHELL_SCHEMA, raw=raw, dialect="responses")
    if not isinstance(kind, str):
        raise CodecError(f"{path}.type: expected a string, got {kind_of(kind)}")
    name = typed(raw.get("name"), str, kind)
    return ir.Tool(name=name, kind="builtin", raw=raw, dialect="responses")


def _tools(raw: Any) -> list[ir.Tool]:
    """The request's tools, a ``namespace``'s function tools flattened into the list (each
    named `flat_name`, its namespace kept in ``raw`` to name its calls back)."""
    tools: list[ir.Tool] = []
    for i, entry in enumerate(list_at(raw or [], "tools")):
        if isinstance(entry, dict) and entry.get("type") == "namespace":
            space = str_at(entry.get("name"), f"tools[{i}].name") or ""
            for j, member in enumerate(list_at(entry.get("tools") or [], f"tools[{i}].tools")):
                tool = _tool(member, f"tools[{i}].tools[{j}]")
                if tool.kind == "function":
                    tool.raw = {NAMESPACE_KEY: space, "name": tool.name}
                    tool.dialect = "responses"
                    tool.name = flat_name(space, tool.name)
                tools.append(tool)
        else:
            tools.append(_tool(entry, f"tools[{i}]"))
    return tools


def _tool_choice(raw: Any) -> ir.ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ir.ToolChoice(mode=raw)
    if isinstance(raw, dict):
        if raw.get("type") in ("function", "custom") and isinstance(raw.get("name"), str):
            return ir.ToolChoice(mode="tool", name=raw["name"])
        if raw.get("type") == "allowed_tools":
            return ir.ToolChoice(mode="required" if raw.get("mode") == "required" else "auto")
        return ir.ToolChoice(mode="auto")  # a hosted tool type: let the model choose
    raise CodecError(f"tool_choice: expected auto, none, required or an object, got {raw!r}")


def _reasoning_config(raw: Any) -> ir.ReasoningConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CodecError(f"reasoning: expected an object, got {kind_of(raw)}")
    effort = raw.get("effort")
    if effort is not None and (isinstance(effort, list | dict) or effort not in _EFFORTS):
        raise CodecError(f"reasoning.effort: expected one of {sorted(_EFFORTS)}, got {effort!r}")
    summary = raw.get("summary") or raw.get("generate_summary")
    return ir.ReasoningConfig(enabled=effort != "none", effort=effort,
                              summary=summary not in (None, "none"))


def _response_format(text: Any) -> Json | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        out: Json = {"name": fmt.get("name", "response"), "schema": fmt.get("schema", {})}
        if isinstance(fmt.get("strict"), bool):
            out["strict"] = fmt["strict"]
        if isinstance(fmt.get("description"), str):
            out["description"] = fmt["description"]
        return out
    if fmt.get("type") == "json_object":
        return {"type": "json"}
    return None


def decode_request(body: Json) -> ir.Request:
    """A ``/v1/responses`` request body as an `ir.Request`."""
    model = str_at(body.get("model"), "model") or ""
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise CodecError(f"{key}: stored conversations are not available on this "
                             "channel; send the whole history in input")
    messages: list[ir.Message] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            messages.append(ir.Message(role="system", parts=[ir.Text(text=instructions)]))
    elif isinstance(instructions, list):
        messages.extend(_messages(instructions))
    elif instructions is not None:
        raise CodecError(f"instructions: expected a string, got {kind_of(instructions)}")
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        messages.append(ir.Message(role="user", parts=[ir.Text(text=raw_input)]))
    elif raw_input is not None:
        messages.extend(_messages(list_at(raw_input, "input")))
    tools = _tools(body.get("tools"))
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool)
                                   or not isinstance(max_tokens, int)):
        raise CodecError(f"max_output_tokens: expected an integer, got {kind_of(max_tokens)}")
    hints: Json = {}
    for key in ("include", "store", "service_tier", "text", "metadata"):
        if body.get(key) is not None:
            hints[f"responses.{key}"] = body[key]
    user = body.get("safety_identifier", body.get("user"))
    parallel = body.get("parallel_tool_calls")
    return ir.Request(
        model=model, messages=messages, tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=parallel if isinstance(parallel, bool) else None,
        stream=body.get("stream") is True, max_tokens=max_tokens,
        temperature=number_at(body, "temperature"), top_p=number_at(body, "top_p"),
        reasoning=_reasoning_config(body.get("reasoning")),
        response_format=_response_format(body.get("text")),
        cache_key=body.get("prompt_cache_key") if isinstance(
            body.get("prompt_cache_key"), str) else None,
        user=user if isinstance(user, str) else None, hints=hints)


# -- request encode (upstream side) ---------------------------------------------------------


def _image_item(image: ir.Image) -> Json:
    url = image.url or f"data:{image.media_type or 'image/png'};base64,{image.data or ''}"
    item: Json = {"type": "input_image", "image_url": url}
    item["detail"] = image.detail or "auto"
    return item


def _file_item(file: ir.File) -> Json:
    item: Json = {"type": "input_file"}
    if file.data is not None:
        item["file_data"] = f"data:{file.media_type or 'application/pdf'};base64,{file.data}"
        item["filename"] = file.filename or "document"
    elif file.url is not None:
        item["file_url"] = file.url
    elif file.file_id is not None:
        item["file_id"] = file.file_id
    if file.filename and "filename" not in item:
        item["filename"] = file.filename
    return item


def _input_content(parts: list[ir.Part]) -> list[Json]:
    out: list[Json] = []
    for part in parts:
        if isinstance(part, ir.Text):
            out.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ir.Image):
            out.append(_image_item(part))
        elif isinstance(part, ir.File):
            out.append(_file_item(part))
    return out


def _result_output(content: str | list[ir.Text | ir.Image]) -> str | list[Json]:
    if isinstance(content, str):
        return content
    if all(isinstance(p, ir.Text) for p in content):
        return "".join(p.text for p in content if isinstance(p, ir.Text))
    return _input_content(list(content))


def _user_items(message: ir.Message, custom_calls: set[str]) -> list[Json]:
    items: list[Json] = []
    pending: list[ir.Part] = []

    def flush() -> None:
        content = _input_content(pending)
        if content:
            items.append({"type": "message", "role": "user", "content": content})
        pending.clear()

    for part in message.parts:
        if isinstance(part, ir.ToolResult):
            flush()
            kind = ("custom_tool_call_output" if part.call_id in custom_calls
                    else "function_call_output")
            output = _result_output(part.content)
            if part.is_error and isinstance(output, str) and not output:
                output = "error"
            items.append({"type": kind, "call_id": part.call_id, "output": output})
        else:
            pending.append(part)
    flush()
    return items


def _assistant_items(message: ir.Message, custom_calls: set[str]) -> tuple[list[Json], bool]:
    """The input items of an assistant turn, and whether it replays reasoning."""
    items: list[Json] = []
    replayed = False
    for part in message.parts:
        if isinstance(part, ir.Text):
            if part.text:
                # the plain-string form: the typed one needs ids and statuses we lack
                items.append({"type": "message", "role": "assistant", "content": part.text})
        elif isinstance(part, ir.Reasoning):
            # Only our own issuer's payload can go back; a summary alone is refused upstream.
            if part.signature is None or part.signature.issuer != "responses":
                continue
            item: Json = {"type": "reasoning", "summary": [
                {"type": "summary_text", "text": part.text}] if part.text else []}
            if part.id:
                item["id"] = part.id
            item["encrypted_content"] = part.signature.data
            items.append(item)
            replayed = True
        elif isinstance(part, ir.ToolCall):
            if part.kind == "custom":
                custom_calls.add(part.id)
                items.append({"type": "custom_tool_call", "call_id": part.id,
                              "name": part.name, "input": part.arguments})
            else:
                items.append({"type": "function_call", "call_id": part.id,
                              "name": part.name, "arguments": part.arguments or "{}"})
    return items, replayed


def _encode_tool(tool: ir.Tool) -> Json | None:
    if tool.dialect == "responses" and tool.raw is not None and (
            tool.kind == "builtin" or tool.name == LOCAL_SHELL):
        return tool.raw
    if tool.kind == "custom":
        out: Json = {"type": "custom", "name": tool.name}
        if tool.description:
            out["description"] = tool.description
        if tool.format:
            out["format"] = tool.format
        return out
    if tool.kind == "builtin":
        kind = (tool.raw or {}).get("type", tool.name)
        if isinstance(kind, str) and kind.startswith("web_search"):
            return {"type": "web_search"}
        return None  # another vendor's server tool: nothing here runs it
    out = {"type": "function", "name": tool.name,
           "parameters": tool.parameters or {"type": "object", "properties": {}},
           # Responses makes function tools strict unless told otherwise, and most
           # agents' schemas do not meet strict mode's rules.
           "strict": tool.strict is True}
    if tool.description:
        out["description"] = tool.description
    return out


def _encode_tool_choice(choice: ir.ToolChoice, tools: list[ir.Tool]) -> str | Json:
    if choice.mode != "tool":
        return choice.mode
    kind = next((t.kind for t in tools if t.name == choice.name), "function")
    return {"type": "custom" if kind == "custom" else "function", "name": choice.name}


def _effort(config: ir.ReasoningConfig) -> str | None:
    if config.effort is not None:
        return _EFFORT_TO_OPENAI.get(config.effort, config.effort)
    if config.budget is None:
        return None
    # A thinking budget (Claude Code) names no effort: keep to the ones every reasoning
    # model takes, since xhigh is refused by most.
    effort = effort_of_budget(config.budget)
    return "high" if effort in ("xhigh", "max") else effort


def _encode_input(request: ir.Request) -> tuple[list[str], list[Json], bool]:
    """(instructions, input items, whether reasoning items were replayed) of the messages:
    system text before the first item is instructions, later a developer message."""
    instructions: list[str] = []
    items: list[Json] = []
    custom_calls: set[str] = set()
    replayed = False
    for message in request.messages:
        if message.role == "system":
            text = "\n\n".join(p.text for p in message.parts if isinstance(p, ir.Text))
            if not items:
                instructions.append(text)
            elif text:
                items.append({"type": "message", "role": "developer",
                              "content": [{"type": "input_text", "text": text}]})
        elif message.role == "assistant":
            more, did = _assistant_items(message, custom_calls)
            items.extend(more)
            replayed = replayed or did
        else:
            items.extend(_user_items(message, custom_calls))
    return instructions, items, replayed


def _encode_tools(request: ir.Request, body: Json) -> None:
    tools = [t for t in (_encode_tool(tool) for tool in request.tools) if t is not None]
    if not tools:
        return
    body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = _encode_tool_choice(request.tool_choice, request.tools)
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls


def _encode_reasoning(reasoning: ir.ReasoningConfig | None) -> Json | None:
    """The ``reasoning`` object, None when there is nothing to say."""
    if reasoning is None:
        return None
    effort = _effort(reasoning) if reasoning.enabled else "none"
    config: Json = {}
    if effort is not None:
        config["effort"] = effort
    if reasoning.enabled and reasoning.summary:
        config["summary"] = "auto"
    return config or None


def _text_format(fmt: Json | None) -> Json | None:
    if fmt is None:
        return None
    if fmt.get("type") == "json":
        return {"format": {"type": "json_object"}}
    if "schema" in fmt:
        return {"format": {"type": "json_schema", **fmt}}
    return None


def encode_request(request: ir.Request) -> Json:
    """An `ir.Request` as a Responses request body for an upstream."""
    body: Json = {"model": request.model}
    instructions, items, replayed = _encode_input(request)
    if any(instructions):
        body["instructions"] = "\n\n".join(t for t in instructions if t)
    body["input"] = items
    _encode_tools(request, body)
    thinking = request.reasoning is not None and request.reasoning.enabled
    if (reasoning := _encode_reasoning(request.reasoning)) is not None:
        body["reasoning"] = reasoning
    if not thinking:
        # Reasoning models refuse sampling settings; send them only to the others.
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_output_tokens"] = max(request.max_tokens, _MIN_OUTPUT_TOKENS)
    if (text := _text_format(request.response_format)) is not None:
        body["text"] = text
    if request.cache_key:
        body["prompt_cache_key"] = request.cache_key
    if request.user:
        body["safety_identifier"] = request.user
    body["store"] = False
    if thinking or replayed:
        body["include"] = ["reasoning.encrypted_content"]
    body["stream"] = request.stream
    return body
