"""Responses API items and objects <-> neutral parts: the pieces both the request/answer codec
(`responses`) and the stream state machines (`responses_stream`) build on. Pure, no I/O."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from .. import ir
from ..codec import CodecError
from ..wire import typed

Json = dict[str, Any]

#: The name and schema of Codex's ``local_shell`` tool as a function any upstream can call.
LOCAL_SHELL = "local_shell"
LOCAL_SHELL_SCHEMA: Json = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"},
                    "description": "The command and its arguments, as for execvp."},
        "workdir": {"type": "string", "description": "The working directory."},
        "timeout_ms": {"type": "integer", "description": "Timeout in milliseconds."},
    },
    "required": ["command"],
}
LOCAL_SHELL_DESCRIPTION = "Runs a shell command and returns its output."
#: How a namespace's tools are named upstream: ``{namespace}__{name}`` (OpenAI's and
#: Anthropic's function names allow letters, digits, ``_`` and ``-`` only).
NAMESPACE_SEPARATOR = "__"
#: The key of a flattened namespace member's `ir.Tool.raw` naming its namespace.
NAMESPACE_KEY = "namespace"


#: error.code / neutral kind, both ways.
_KIND_TO_CODE = {
    "context_length": "context_length_exceeded",
    "rate_limit": "rate_limit_exceeded",
    "insufficient_quota": "insufficient_quota",
    "invalid_request": "invalid_prompt",
    "overloaded": "server_error",
    "authentication": "server_error",
    "server_error": "server_error",
}

def error_code(kind: str) -> str:
    """The Responses ``error.code`` Codex acts on for a neutral error *kind*."""
    return _KIND_TO_CODE.get(kind, "server_error")



# -- small readers --------------------------------------------------------------------------


def str_at(value: Any, path: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise CodecError(f"{path}: expected a string, got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def list_at(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"{path}: expected an array, got {kind_of(value)}")
    return value


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def number_at(body: Json, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{key}: expected a number, got {kind_of(value)}")
    return value


def _data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a ``data:…;base64,…`` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head.removesuffix(";base64") or "application/octet-stream", data


# -- input and output items -> parts ---------------------------------------------------------


def _input_image(part: Json, path: str) -> ir.Image | ir.File:
    url = str_at(part.get("image_url"), f"{path}.image_url", optional=True)
    detail = typed(part.get("detail"), str, None)
    if url is None:
        file_id = part.get("file_id")
        if not isinstance(file_id, str):
            raise CodecError(f"{path}: an input_image needs image_url or file_id")
        return ir.File(file_id=file_id, media_type="image/*")
    inline = _data_url(url)
    if inline:
        return ir.Image(media_type=inline[0], data=inline[1], detail=detail)
    return ir.Image(url=url, detail=detail)


def _input_file(part: Json) -> ir.File:
    file = ir.File(filename=typed(part.get("filename"), str, None))
    data = part.get("file_data")
    if isinstance(data, str):
        inline = _data_url(data)
        if inline:
            file.media_type, file.data = inline
        else:
            file.data = data
    if isinstance(part.get("file_url"), str):
        file.url = part["file_url"]
    if isinstance(part.get("file_id"), str):
        file.file_id = part["file_id"]
    return file


def _content_part(part: Any, path: str) -> ir.Text | ir.Image | ir.File | None:
    if not isinstance(part, dict):
        raise CodecError(f"{path}: expected an object, got {kind_of(part)}")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
        return ir.Text(text=str_at(part.get("text"), f"{path}.text") or "")
    if kind == "refusal":
        return ir.Text(text=str_at(part.get("refusal"), f"{path}.refusal") or "")
    if kind == "input_image":
        return _input_image(part, path)
    if kind == "input_file":
        return _input_file(part)
    return None  # input_audio and future types: skipped


def content_parts(content: Any, path: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.Text(text=content)]
    parts: list[ir.Part] = []
    for i, raw in enumerate(list_at(content, path)):
        part = _content_part(raw, f"{path}[{i}]")
        if part is not None:
            parts.append(part)
    return parts



def _tool_output(output: Any, path: str) -> str | list[ir.Text | ir.Image]:
    if isinstance(output, str):
        return output
    if output is None:
        return ""
    parts: list[ir.Text | ir.Image] = []
    for i, raw in enumerate(list_at(output, path)):
        part = _content_part(raw, f"{path}[{i}]")
        if isinstance(part, ir.Text | ir.Image):
            parts.append(part)
    return parts



def _reasoning_part(item: Json, path: str) -> ir.Reasoning:
    summary = item.get("summary")
    texts = [s.get("text", "") for s in summary if isinstance(s, dict)] if isinstance(
        summary, list) else []
    if not any(texts) and isinstance(item.get("content"), list):
        texts = [c.get("text", "") for c in item["content"] if isinstance(c, dict)]
    encrypted = item.get("encrypted_content")
    return ir.Reasoning(
        text="\n\n".join(t for t in texts if isinstance(t, str) and t),
        signature=ir.Opaque("responses", encrypted) if isinstance(encrypted, str) else None,
        id=typed(item.get("id"), str, None))


def _local_shell_arguments(action: Any) -> str:
    """The arguments of a ``local_shell`` function call from a local_shell_call's action."""
    args: Json = {}
    if isinstance(action, dict):
        if isinstance(action.get("command"), list):
            args["command"] = action["command"]
        if isinstance(action.get("working_directory"), str):
            args["workdir"] = action["working_directory"]
        for key in ("timeout_ms", "env", "user"):
            if action.get(key) is not None:
                args[key] = action[key]
    return orjson.dumps(args).decode()


ASSISTANT_ITEMS = frozenset({"reasoning", "function_call", "custom_tool_call",
                              "local_shell_call"})
RESULT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output",
                           "local_shell_call_output"})


def item_part(item: Json, kind: str, path: str) -> ir.Part:
    """The one part an assistant or tool-result item stands for."""
    if kind == "reasoning":
        return _reasoning_part(item, path)
    if kind in RESULT_ITEMS:
        call_id = item.get("call_id", item.get("id"))
        return ir.ToolResult(call_id=str_at(call_id, f"{path}.call_id") or "",
                             content=_tool_output(item.get("output"), f"{path}.output"))
    call_id = str_at(item.get("call_id"), f"{path}.call_id") or ""
    if kind == "local_shell_call":
        return ir.ToolCall(id=call_id, name=LOCAL_SHELL,
                           arguments=_local_shell_arguments(item.get("action")))
    name = str_at(item.get("name"), f"{path}.name") or ""
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        name = flat_name(namespace, name)
    if kind == "custom_tool_call":
        return ir.ToolCall(id=call_id, name=name, kind="custom",
                           arguments=str_at(item.get("input", ""), f"{path}.input") or "")
    return ir.ToolCall(id=call_id, name=name,
                       arguments=str_at(item.get("arguments", ""), f"{path}.arguments") or "")



def flat_name(namespace: str, name: str) -> str:
    """The one function name a namespaced tool (Codex's ``namespace`` tools) goes by
    upstream; `namespaces` maps it back."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def namespaces(tools: list[ir.Tool]) -> dict[str, tuple[str, str]]:
    """Flattened tool name -> (namespace, name), for the namespaced tools of a request."""
    out: dict[str, tuple[str, str]] = {}
    for tool in tools:
        raw = tool.raw or {}
        if tool.dialect == "responses" and isinstance(raw.get(NAMESPACE_KEY), str):
            out[tool.name] = (raw[NAMESPACE_KEY], str(raw.get("name", "")))
    return out


def decode_usage(raw: Any) -> ir.Usage | None:
    """A Responses ``usage`` object as `ir.Usage` (None when absent)."""
    if not isinstance(raw, dict):
        return None
    inputs = raw.get("input_tokens_details")
    outputs = raw.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    return ir.Usage(input_tokens=count(raw.get("input_tokens")),
                    output_tokens=count(raw.get("output_tokens")),
                    cached_tokens=count(inputs.get("cached_tokens")),
                    cache_write_tokens=count(inputs.get("cache_write_tokens")),
                    reasoning_tokens=count(outputs.get("reasoning_tokens")))


def encode_usage(usage: ir.Usage) -> Json:
    return {"input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                     "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens}


def output_parts(item: Any) -> list[ir.Part]:
    """The neutral parts of one Responses output item ([] for items we do not map)."""
    if not isinstance(item, dict):
        return []
    kind = item.get("type")
    if kind == "message":
        return [p for p in content_parts(item.get("content") or [], "output.content")
                if isinstance(p, ir.Text)]
    if kind in ("reasoning", "function_call", "custom_tool_call", "local_shell_call"):
        try:
            return [item_part(item, kind, "output")]
        except CodecError:
            return []
    return []


def finish_reason(status: Any, incomplete: Any, parts: list[ir.Part]) -> ir.FinishReason:
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    if status == "failed":
        return "error"
    return "tool_calls" if any(isinstance(p, ir.ToolCall) for p in parts) else "stop"



def response_id(upstream_id: str) -> str:
    """A ``resp_…`` id for an answer whose upstream id is *upstream_id* (maybe empty)."""
    if upstream_id.startswith("resp_"):
        return upstream_id
    return "resp_" + (upstream_id or uuid.uuid4().hex)


def item_id(prefix: str, base: str, index: int) -> str:
    """A stable id for output item *index* of answer *base* (``msg_``, ``rs_``, ``fc_`` …)."""
    return f"{prefix}_{base.removeprefix('resp_')}_{index}"


def local_shell_action(arguments: str) -> Json | None:
    """The ``local_shell_call`` action for a ``local_shell`` call's arguments, or None."""
    try:
        args = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return None
    command = args.get("command") if isinstance(args, dict) else None
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        return None
    action: Json = {"type": "exec", "command": command,
                    "env": args.get("env") if isinstance(args.get("env"), dict) else {}}
    if isinstance(args.get("workdir"), str):
        action["working_directory"] = args["workdir"]
    if isinstance(args.get("timeout_ms"), int):
        action["timeout_ms"] = args["timeout_ms"]
    if isinstance(args.get("user"), str):
        action["user"] = args["user"]
    return action


def output_item(part: ir.Part, base: str, index: int, *, local_shell: bool,
                spaces: dict[str, tuple[str, str]] | None = None) -> Json | None:
    """The completed Responses output item for a neutral answer part (*spaces*: the
    request's flattened namespace tools, see `namespaces`)."""
    if isinstance(part, ir.Text):
        return {"id": item_id("msg", base, index), "type": "message", "role": "assistant",
                "status": "completed", "content": [
                    {"type": "output_text", "text": part.text, "annotations": []}]}
    if isinstance(part, ir.Reasoning):
        item: Json = {"id": part.id or item_id("rs", base, index), "type": "reasoning",
                      "summary": [{"type": "summary_text", "text": part.text}]
                      if part.text else []}
        if part.signature is not None and part.signature.issuer == "responses":
            item["encrypted_content"] = part.signature.data
        return item
    if isinstance(part, ir.ToolCall):
        if part.kind == "custom":
            return {"id": item_id("ctc", base, index), "type": "custom_tool_call",
                    "status": "completed", "call_id": part.id, "name": part.name,
                    "input": part.arguments}
        action = local_shell_action(part.arguments) if (
            local_shell and part.name == LOCAL_SHELL) else None
        if action is not None:
            return {"id": item_id("lsh", base, index), "type": "local_shell_call",
                    "status": "completed", "call_id": part.id, "action": action}
        item = {"id": item_id("fc", base, index), "type": "function_call",
                "status": "completed", "call_id": part.id, "name": part.name,
                "arguments": part.arguments or "{}"}
        if spaces and part.name in spaces:
            item["namespace"], item["name"] = spaces[part.name]
        return item
    return None


def envelope(rid: str, model: str, *, status: str, output: list[Json],
             usage: ir.Usage | None, created_at: int, request: ir.Request | None = None,
             incomplete: str | None = None, error: Json | None = None) -> Json:
    """A complete Responses ``response`` object."""
    body: Json = {
        "id": rid, "object": "response", "created_at": created_at, "status": status,
        "model": model, "output": output,
        "parallel_tool_calls": True if request is None or request.parallel_tool_calls is None
        else request.parallel_tool_calls,
        "tool_choice": "auto", "tools": [], "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "usage": encode_usage(usage) if usage is not None else None}
    if request is not None and request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if status == "completed":
        body["completed_at"] = created_at
    return body




#: The ``error.code`` values Codex gives a meaning (the rest it retries).
CODEX_ERROR_CODES = frozenset({"context_length_exceeded", "insufficient_quota",
                               "rate_limit_exceeded", "usage_not_included", "server_error"})


def failed_event(message: str, code: str) -> bytes:
    """A whole ``response.failed`` SSE event for a stream whose state is unknown here."""
    body = envelope(response_id(""), "", status="failed", output=[], usage=None,
                    created_at=int(time.time()),
                    error={"code": code if code in CODEX_ERROR_CODES else "server_error",
                           "message": message})
    data = orjson.dumps({"type": "response.failed", "sequence_number": 0, "response": body})
    return b"event: response.failed\ndata: " + data + b"\n\n"
