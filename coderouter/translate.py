"""Translation between the Anthropic Messages API and the OpenAI Chat Completions API.

Pure functions and two small stream state machines; no I/O. Requests, responses and
streams are translated in both directions so Anthropic clients (Claude Code) can be served
by OpenAI-compatible upstreams and OpenAI clients by Anthropic upstreams. Structurally
invalid input raises `TranslationError`, which the gateway answers with a 400.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from .estimate import CHARS_PER_TOKEN

Json = dict[str, Any]

DEFAULT_MAX_TOKENS = 4096

_FINISH_TO_STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_STOP_REASON_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ANTHROPIC_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


class TranslationError(ValueError):
    """A body that cannot be translated because its structure is invalid."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _require_dict(value: Any, where: str) -> Json:
    if not isinstance(value, dict):
        raise TranslationError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _require_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _parse_arguments(arguments: Any) -> Json:
    """Return tool arguments as a dict; a JSON string is parsed, anything unusable is {}."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text_of_blocks(content: Any, where: str) -> str:
    """Return a string, or the text blocks of a list joined by newlines."""
    if isinstance(content, str):
        return content
    texts = []
    for i, block in enumerate(_require_list(content, where)):
        block = _require_dict(block, f"{where}[{i}]")
        if block.get("type") not in ("text", "input_text"):
            raise TranslationError(
                f"{where}[{i}]: expected a text block, got type {block.get('type')!r}")
        texts.append(_require_str(block.get("text"), f"{where}[{i}].text"))
    return "\n".join(texts)


def _data_uri(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def _split_data_uri(uri: str, where: str) -> tuple[str, str]:
    """Return (media_type, base64 data) of a ``data:...;base64,...`` URI."""
    header, sep, data = uri.partition(",")
    if not sep or not header.endswith(";base64"):
        raise TranslationError(f"{where}: only base64 data: URIs are supported")
    return header[len("data:"):-len(";base64")], data


# Anthropic Messages request -> OpenAI chat request


def messages_request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """Translate an Anthropic Messages request into an OpenAI chat.completions request."""
    body = _require_dict(body, "body")
    messages = _require_list(body.get("messages"), "messages")
    chat_messages: list[Json] = []
    if body.get("system"):
        chat_messages.append(
            {"role": "system", "content": _text_of_blocks(body["system"], "system")})
    for i, message in enumerate(messages):
        chat_messages.extend(_anthropic_message_to_chat(message, f"messages[{i}]"))
    chat: Json = {"model": body.get("model"), "messages": chat_messages}
    if "max_tokens" in body:
        chat["max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("stop_sequences"):
        chat["stop"] = list(_require_list(body["stop_sequences"], "stop_sequences"))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        chat["user"] = metadata["user_id"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    _tools_to_chat(body, chat)
    return chat


def _anthropic_message_to_chat(message: Any, where: str) -> list[Json]:
    message = _require_dict(message, where)
    role = message.get("role")
    content = message.get("content")
    if role not in ("user", "assistant"):
        raise TranslationError(f"{where}.role: expected 'user' or 'assistant', got {role!r}")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = _require_list(content, f"{where}.content")
    if role == "user":
        return _user_blocks_to_chat(blocks, f"{where}.content")
    return _assistant_blocks_to_chat(blocks, f"{where}.content")


def _user_blocks_to_chat(blocks: list[Any], where: str) -> list[Json]:
    """Return the role "tool" messages of a user turn, then its remaining content."""
    tool_messages: list[Json] = []
    parts: list[Json] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        block = _require_dict(block, at)
        kind = block.get("type")
        if kind == "tool_result":
            message, extra_parts = _tool_result_to_chat(block, at)
            tool_messages.append(message)
            parts.extend(extra_parts)
        elif kind not in _ANTHROPIC_SKIPPED_BLOCKS:
            parts.append(_anthropic_part_to_chat(block, at))
    if parts:
        tool_messages.append({"role": "user", "content": _collapse_parts(parts)})
    return tool_messages


def _collapse_parts(parts: list[Json]) -> str | list[Json]:
    """Return text-only content as one string (widely supported), other content as parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _anthropic_part_to_chat(block: Json, where: str) -> Json:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": _require_str(block.get("text"), f"{where}.text")}
    if kind == "image":
        return _image_to_chat(block, where)
    if kind == "document":
        return _document_to_chat(block, where)
    raise TranslationError(f"{where}: unsupported content block type {kind!r}")


def _image_to_chat(block: Json, where: str) -> Json:
    source = _require_dict(block.get("source"), f"{where}.source")
    if source.get("type") == "base64":
        url = _data_uri(
            _require_str(source.get("media_type"), f"{where}.source.media_type"),
            _require_str(source.get("data"), f"{where}.source.data"))
    elif source.get("type") == "url":
        url = _require_str(source.get("url"), f"{where}.source.url")
    else:
        raise TranslationError(f"{where}.source: unsupported image source {source.get('type')!r}")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_to_chat(block: Json, where: str) -> Json:
    source = _require_dict(block.get("source"), f"{where}.source")
    if source.get("type") == "text":
        return {"type": "text", "text": _require_str(source.get("data"), f"{where}.source.data")}
    if source.get("type") == "base64":
        file_data = _data_uri(
            _require_str(source.get("media_type"), f"{where}.source.media_type"),
            _require_str(source.get("data"), f"{where}.source.data"))
        filename = block.get("title") or "document.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": file_data}}
    raise TranslationError(f"{where}.source: unsupported document source {source.get('type')!r}")


def _tool_result_to_chat(block: Json, where: str) -> tuple[Json, list[Json]]:
    """Return the role "tool" message of a tool_result, and the images it held (for the user)."""
    tool_use_id = _require_str(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content", "")
    texts: list[str] = []
    images: list[Json] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for i, part in enumerate(_require_list(content, f"{where}.content")):
            converted = _anthropic_part_to_chat(
                _require_dict(part, f"{where}.content[{i}]"), f"{where}.content[{i}]")
            if converted["type"] == "text":
                texts.append(converted["text"])
            else:
                images.append(converted)
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def _assistant_blocks_to_chat(blocks: list[Any], where: str) -> list[Json]:
    texts: list[str] = []
    tool_calls: list[Json] = []
    for i, block in enumerate(blocks):
        at = f"{where}[{i}]"
        block = _require_dict(block, at)
        kind = block.get("type")
        if kind == "text":
            texts.append(_require_str(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            tool_calls.append({
                "id": _require_str(block.get("id"), f"{at}.id"),
                "type": "function",
                "function": {
                    "name": _require_str(block.get("name"), f"{at}.name"),
                    "arguments": _dumps(block.get("input") or {}),
                },
            })
        elif kind not in _ANTHROPIC_SKIPPED_BLOCKS:
            raise TranslationError(f"{at}: unsupported assistant content block type {kind!r}")
    if not texts and not tool_calls:
        return []
    message: Json = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _tools_to_chat(body: Json, chat: Json) -> None:
    """Set tools, tool_choice and parallel_tool_calls on *chat*; server tools are dropped."""
    functions = []
    for i, tool in enumerate(_require_list(body.get("tools") or [], "tools")):
        tool = _require_dict(tool, f"tools[{i}]")
        if tool.get("type") not in (None, "custom"):
            continue
        function: Json = {"name": _require_str(tool.get("name"), f"tools[{i}].name")}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        functions.append({"type": "function", "function": function})
    if functions:
        chat["tools"] = functions
    choice = body.get("tool_choice")
    if choice is None:
        return
    choice = _require_dict(choice, "tool_choice")
    chat["tool_choice"] = _tool_choice_to_chat(choice)
    if choice.get("disable_parallel_tool_use") and functions:
        chat["parallel_tool_calls"] = False


def _tool_choice_to_chat(choice: Json) -> str | Json:
    kind = choice.get("type")
    simple = {"auto": "auto", "any": "required", "none": "none"}
    if kind in simple:
        return simple[kind]
    if kind == "tool":
        name = _require_str(choice.get("name"), "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    raise TranslationError(f"tool_choice.type: unsupported value {kind!r}")


# OpenAI chat response -> Anthropic message


def _stop_reason(finish_reason: str | None, has_tool_calls: bool) -> str:
    """Map an OpenAI finish_reason; tool calls win over a plain "stop" some upstreams send."""
    if has_tool_calls and finish_reason in (None, "stop"):
        return "tool_use"
    return _FINISH_TO_STOP_REASON.get(finish_reason or "stop", "end_turn")


def _usage_counts(prompt: int, completion: int, cached: int) -> dict[str, int]:
    """Return the gateway's usage record."""
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached}


def _chat_usage_counts(usage: Any) -> dict[str, int]:
    """Return the gateway's usage record of an OpenAI usage object (0s when absent)."""
    if not isinstance(usage, dict):
        return _usage_counts(0, 0, 0)
    details = usage.get("prompt_tokens_details") or {}
    return _usage_counts(
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
    )


def _anthropic_usage(counts: dict[str, int]) -> Json:
    """Return Anthropic usage: cached prompt tokens are reported apart from input_tokens."""
    return {
        "input_tokens": max(counts["prompt_tokens"] - counts["cached_tokens"], 0),
        "output_tokens": counts["completion_tokens"],
        "cache_read_input_tokens": counts["cached_tokens"],
        "cache_creation_input_tokens": 0,
    }


def chat_response_to_messages(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """Translate an OpenAI chat.completion into an Anthropic message object."""
    resp = _require_dict(resp, "response")
    choices = _require_list(resp.get("choices"), "response.choices")
    if not choices:
        raise TranslationError("response.choices: the upstream returned no choices")
    choice = _require_dict(choices[0], "response.choices[0]")
    message = _require_dict(choice.get("message"), "response.choices[0].message")
    content: list[Json] = []
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = list(message.get("tool_calls") or [])
    if message.get("function_call"):
        calls.append({"id": f"call_{resp.get('id', '')}", "function": message["function_call"]})
    for call in calls:
        function = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": call.get("id") or f"toolu_{uuid.uuid4().hex}",
            "name": function.get("name") or "",
            "input": _parse_arguments(function.get("arguments")),
        })
    return {
        "id": f"msg_{resp.get('id') or uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(choice.get("finish_reason"), bool(calls)),
        "stop_sequence": None,
        "usage": _anthropic_usage(_chat_usage_counts(resp.get("usage"))),
    }


# OpenAI chat stream -> Anthropic Messages stream


def _sse_event(name: str, data: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class ChatStreamToMessages:
    """Feeds on OpenAI chat.completion.chunk objects, emits Anthropic SSE event bytes.

    Chunks are already JSON-decoded dicts. ``usage`` holds the last ``prompt_tokens``,
    ``completion_tokens`` and ``cached_tokens`` the upstream reported, all 0 when it reported none.
    """

    def __init__(self, model: str, estimated_input_tokens: int = 0) -> None:
        self.model = model
        self.estimated_input_tokens = estimated_input_tokens
        self.usage = _usage_counts(0, 0, 0)
        self._usage_seen = False
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}
        self._tool_ids: dict[str, int] = {}
        self._finish_reason: str | None = None
        self._output_chars = 0

    def feed(self, chunk: dict[str, Any]) -> bytes:
        """Return the Anthropic events for one upstream chunk (possibly none)."""
        if self._finished:
            return b""
        chunk = _require_dict(chunk, "chunk")
        if chunk.get("error") and not chunk.get("choices"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise TranslationError(message or "upstream stream error")
        out = [self._start(chunk)]
        if isinstance(chunk.get("usage"), dict):
            self.usage = _chat_usage_counts(chunk["usage"])
            self._usage_seen = True
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out.append(self._feed_choice(choice))
        return b"".join(out)

    def finish(self) -> bytes:
        """Close the open block and end the message; call once the upstream sent [DONE]."""
        if self._finished:
            return b""
        self._finished = True
        out = [self._start({}), self._close_open()]
        stop_reason = _stop_reason(self._finish_reason, bool(self._tool_blocks))
        out.append(_sse_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": self._final_usage(),
        }))
        out.append(_sse_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def _final_usage(self) -> Json:
        if not self._usage_seen:
            estimate = -(-self._output_chars // CHARS_PER_TOKEN)
            return {"output_tokens": estimate}
        return _anthropic_usage(self.usage)

    def _start(self, chunk: Json) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: Json = {
            "id": f"msg_{chunk.get('id') or uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.estimated_input_tokens,
                "output_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        }
        return _sse_event("message_start", {"type": "message_start", "message": message})

    def _feed_choice(self, choice: Json) -> bytes:
        out = []
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            out.append(self._text(text))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out.append(self._tool_call(call))
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
        return b"".join(out)

    def _text(self, text: str) -> bytes:
        out = []
        if self._open_kind != "text":
            out.append(self._open_block({"type": "text", "text": ""}, "text"))
        self._output_chars += len(text)
        out.append(self._block_delta(self._next_index - 1, {"type": "text_delta", "text": text}))
        return b"".join(out)

    def _tool_call(self, call: Json) -> bytes:
        function = call.get("function") or {}
        key = self._tool_key(call)
        out = []
        if key not in self._tool_blocks:
            block: Json = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex}",
                "name": function.get("name") or "",
                "input": {},
            }
            out.append(self._open_block(block, "tool"))
            self._tool_blocks[key] = self._next_index - 1
            if call.get("id"):
                self._tool_ids[call["id"]] = key
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._output_chars += len(arguments)
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(self._block_delta(self._tool_blocks[key], delta))
        return b"".join(out)

    def _tool_key(self, call: Json) -> int:
        """Return the upstream tool call index, inferred from its id when an upstream omits it."""
        if isinstance(call.get("index"), int):
            return int(call["index"])
        if call.get("id") in self._tool_ids:
            return self._tool_ids[call["id"]]
        if call.get("id") or not self._tool_blocks:
            return len(self._tool_blocks)
        return max(self._tool_blocks)

    def _open_block(self, block: Json, kind: str) -> bytes:
        """Close the open block and start *block*; the open block is always the last one."""
        closed = self._close_open()
        index = self._next_index
        self._next_index += 1
        self._open_kind = kind
        return closed + _sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block})

    def _close_open(self) -> bytes:
        if self._open_kind is None:
            return b""
        self._open_kind = None
        index = self._next_index - 1
        return _sse_event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _block_delta(self, index: int, delta: Json) -> bytes:
        return _sse_event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


# OpenAI chat request -> Anthropic Messages request


def chat_request_to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAI chat.completions request into an Anthropic Messages request."""
    body = _require_dict(body, "body")
    messages = _require_list(body.get("messages"), "messages")
    system: list[str] = []
    turns: list[Json] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        message = _require_dict(message, where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of_blocks(message.get("content"), f"{where}.content"))
        elif role == "user":
            _append_turn(turns, "user", _chat_user_blocks(message.get("content"), where))
        elif role == "assistant":
            _append_turn(turns, "assistant", _chat_assistant_blocks(message, where))
        elif role == "tool":
            _append_turn(turns, "user", [_chat_tool_result(message, where)])
        else:
            raise TranslationError(
                f"{where}.role: unsupported role {role!r} "
                "(expected system, developer, user, assistant or tool)")
    out: Json = {
        "model": body.get("model"),
        "messages": [_finish_turn(turn) for turn in turns],
        "max_tokens": _chat_max_tokens(body),
    }
    if system:
        out["system"] = "\n".join(system)
    _chat_params_to_messages(body, out)
    _chat_tools_to_messages(body, out)
    return out


def _chat_max_tokens(body: Json) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TranslationError(f"{key}: expected an integer, got {value!r}")
            return value
    return DEFAULT_MAX_TOKENS


def _chat_params_to_messages(body: Json, out: Json) -> None:
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif stop:
        out["stop_sequences"] = list(_require_list(stop, "stop"))
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            raise TranslationError(f"temperature: expected a number, got {temperature!r}")
        out["temperature"] = min(temperature, 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("stream"):
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}


def _append_turn(turns: list[Json], role: str, blocks: list[Json]) -> None:
    """Append blocks as a turn, merged into the previous turn when it has the same role."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _finish_turn(turn: Json) -> Json:
    """Put tool_result blocks first (Anthropic requires it); a lone text block becomes a string."""
    blocks = turn["content"]
    blocks.sort(key=lambda block: block["type"] != "tool_result")
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def _chat_user_blocks(content: Any, where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(_require_list(content, f"{where}.content")):
        block = _chat_part_to_block(_require_dict(part, f"{where}.content[{i}]"),
                                    f"{where}.content[{i}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _chat_part_to_block(part: Json, where: str) -> Json | None:
    kind = part.get("type")
    if kind == "text":
        text = _require_str(part.get("text"), f"{where}.text")
        return {"type": "text", "text": text} if text else None
    if kind == "image_url":
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        at = f"{where}.image_url.url"
        return {"type": "image", "source": _url_to_source(_require_str(url, at), at)}
    if kind == "file":
        file = _require_dict(part.get("file"), f"{where}.file")
        if not isinstance(file.get("file_data"), str):
            raise TranslationError(f"{where}.file: only inline file_data is supported")
        media_type, data = _split_data_uri(file["file_data"], f"{where}.file.file_data")
        block: Json = {"type": "document",
                       "source": {"type": "base64", "media_type": media_type, "data": data}}
        if file.get("filename"):
            block["title"] = file["filename"]
        return block
    raise TranslationError(f"{where}: unsupported content part type {kind!r}")


def _url_to_source(url: str, where: str) -> Json:
    if url.startswith("data:"):
        media_type, data = _split_data_uri(url, where)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise TranslationError(f"{where}: expected a data: URI or an http(s) URL")


def _chat_assistant_blocks(message: Json, where: str) -> list[Json]:
    blocks: list[Json] = []
    content = message.get("content")
    if isinstance(content, list):
        texts = [part.get("text") or part.get("refusal") or "" for part in content
                 if isinstance(part, dict)]
        content = "".join(texts)
    if content:
        blocks.append({"type": "text", "text": _require_str(content, f"{where}.content")})
    for i, call in enumerate(_require_list(message.get("tool_calls") or [], f"{where}.tool_calls")):
        at = f"{where}.tool_calls[{i}]"
        call = _require_dict(call, at)
        function = _require_dict(call.get("function"), f"{at}.function")
        blocks.append({
            "type": "tool_use",
            "id": _require_str(call.get("id"), f"{at}.id"),
            "name": _require_str(function.get("name"), f"{at}.function.name"),
            "input": _parse_arguments(function.get("arguments")),
        })
    return blocks


def _chat_tool_result(message: Json, where: str) -> Json:
    content = message.get("content")
    text = _text_of_blocks(content if content is not None else "", f"{where}.content")
    return {
        "type": "tool_result",
        "tool_use_id": _require_str(message.get("tool_call_id"), f"{where}.tool_call_id"),
        "content": text,
    }


def _chat_tools_to_messages(body: Json, out: Json) -> None:
    """Set tools and tool_choice from ``tools``/``tool_choice`` or legacy ``functions``."""
    tools = []
    for i, tool in enumerate(_require_list(body.get("tools") or [], "tools")):
        tool = _require_dict(tool, f"tools[{i}]")
        if tool.get("type", "function") != "function":
            raise TranslationError(f"tools[{i}].type: unsupported tool type {tool.get('type')!r}")
        tools.append(_function_to_tool(_require_dict(tool.get("function"), f"tools[{i}].function"),
                                       f"tools[{i}].function"))
    for i, function in enumerate(_require_list(body.get("functions") or [], "functions")):
        tools.append(_function_to_tool(_require_dict(function, f"functions[{i}]"),
                                       f"functions[{i}]"))
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice", body.get("function_call"))
    tool_choice = _chat_tool_choice(choice) if choice is not None else None
    if body.get("parallel_tool_calls") is False and tools:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        out["tool_choice"] = tool_choice


def _function_to_tool(function: Json, where: str) -> Json:
    tool: Json = {"name": _require_str(function.get("name"), f"{where}.name")}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return tool


def _chat_tool_choice(choice: Any) -> Json:
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    if isinstance(choice, dict):
        function = choice.get("function") if choice.get("type") == "function" else choice
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
    raise TranslationError(f"tool_choice: unsupported value {choice!r}")


# Anthropic message -> OpenAI chat response


def _anthropic_usage_counts(usage: Any) -> dict[str, int]:
    """Return the gateway's usage record of an Anthropic usage object; prompt counts all input."""
    if not isinstance(usage, dict):
        return _usage_counts(0, 0, 0)
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (int(usage.get("input_tokens") or 0) + cached
              + int(usage.get("cache_creation_input_tokens") or 0))
    return _usage_counts(prompt, int(usage.get("output_tokens") or 0), cached)


def _chat_usage(counts: dict[str, int]) -> Json:
    return {
        "prompt_tokens": counts["prompt_tokens"],
        "completion_tokens": counts["completion_tokens"],
        "total_tokens": counts["prompt_tokens"] + counts["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": counts["cached_tokens"]},
    }


def _finish_reason(stop_reason: str | None) -> str:
    return _STOP_REASON_TO_FINISH.get(stop_reason or "end_turn", "stop")


def messages_response_to_chat(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """Translate an Anthropic message object into an OpenAI chat.completion."""
    resp = _require_dict(resp, "response")
    blocks = _require_list(resp.get("content"), "response.content")
    texts: list[str] = []
    tool_calls: list[Json] = []
    for i, block in enumerate(blocks):
        block = _require_dict(block, f"response.content[{i}]")
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            tool_calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {
                    "name": block.get("name"),
                    "arguments": _dumps(block.get("input") or {}),
                },
            })
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{resp.get('id') or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": _finish_reason(resp.get("stop_reason")),
        }],
        "usage": _chat_usage(_anthropic_usage_counts(resp.get("usage"))),
    }


# Anthropic Messages stream -> OpenAI chat stream


class MessagesStreamToChat:
    """Feeds on Anthropic SSE events (name, decoded data), emits OpenAI chunk SSE bytes.

    ``usage`` holds ``prompt_tokens``/``completion_tokens``/``cached_tokens`` accumulated
    from message_start and message_delta.
    """

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.usage = _usage_counts(0, 0, 0)
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._role_sent = False
        self._finish_sent = False
        self._finished = False
        self._tool_indexes: dict[int, int] = {}
        self._anthropic_usage: Json = {}

    def feed(self, event: str, data: dict[str, Any]) -> bytes:
        """Return the chunks for one Anthropic event (possibly none)."""
        if self._finished:
            return b""
        data = _require_dict(data, f"{event} event data")
        if event == "error":
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            raise TranslationError(message or "upstream stream error")
        handler = self._HANDLERS.get(event)
        return handler(self, data) if handler else b""

    def finish(self) -> bytes:
        """End the stream: a finish chunk if none came, the usage chunk if asked, then [DONE]."""
        if self._finished:
            return b""
        self._finished = True
        out = [self._finish_chunk("stop")] if not self._finish_sent else []
        if self.include_usage:
            out.append(self._chunk([], usage=_chat_usage(self.usage)))
        out.append(b"data: [DONE]\n\n")
        return b"".join(out)

    def _chunk(self, choices: list[Json], **extra: Any) -> bytes:
        chunk = {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                 "model": self.model, "choices": choices, **extra}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _role(self) -> bytes:
        """Return the opening chunk that carries the assistant role, once."""
        if self._role_sent:
            return b""
        self._role_sent = True
        return self._choice_chunk({"role": "assistant", "content": ""}, None)

    def _choice_chunk(self, delta: Json, finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice])

    def _delta(self, delta: Json, finish_reason: str | None = None) -> bytes:
        return self._role() + self._choice_chunk(delta, finish_reason)

    def _finish_chunk(self, finish_reason: str) -> bytes:
        self._finish_sent = True
        return self._delta({}, finish_reason)

    def _update_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._anthropic_usage.update({k: v for k, v in usage.items() if v is not None})
        self.usage = _anthropic_usage_counts(self._anthropic_usage)

    def _on_message_start(self, data: Json) -> bytes:
        message = data.get("message") or {}
        if message.get("id"):
            self._id = f"chatcmpl-{message['id']}"
        self._update_usage(message.get("usage"))
        return self._role()

    def _on_block_start(self, data: Json) -> bytes:
        block = data.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return self._delta({"content": block["text"]})
        if block.get("type") != "tool_use":
            return b""
        tool_index = len(self._tool_indexes)
        self._tool_indexes[int(data.get("index", 0))] = tool_index
        arguments = _dumps(block["input"]) if block.get("input") else ""
        call = {"index": tool_index, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments}}
        return self._delta({"tool_calls": [call]})

    def _on_block_delta(self, data: Json) -> bytes:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return self._delta({"content": delta["text"]})
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            tool_index = self._tool_indexes.get(int(data.get("index", 0)))
            if tool_index is None:
                raise TranslationError(f"input_json_delta for block {data.get('index')} "
                                       "that is not a tool_use block")
            call = {"index": tool_index, "function": {"arguments": delta["partial_json"]}}
            return self._delta({"tool_calls": [call]})
        return b""

    def _on_message_delta(self, data: Json) -> bytes:
        self._update_usage(data.get("usage"))
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason is None or self._finish_sent:
            return b""
        return self._finish_chunk(_finish_reason(stop_reason))

    _HANDLERS = {
        "message_start": _on_message_start,
        "content_block_start": _on_block_start,
        "content_block_delta": _on_block_delta,
        "message_delta": _on_message_delta,
    }


# Token estimate
