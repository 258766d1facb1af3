"""Chat <-> Messages through the neutral representation: each test decodes one dialect with
its codec and encodes the other (ported from the old pairwise translator's tests)."""

from __future__ import annotations

import re
from typing import Any

import anthropic.types
import openai.types.chat
import orjson
import pydantic
import pytest

from coderouter.dialects import ir
from coderouter.dialects.chat import CODEC as CHAT
from coderouter.dialects.codec import CodecError
from coderouter.dialects.messages import CODEC as MESSAGES
from coderouter.dialects.messages.request import hashed_user


def messages_request_to_chat(body: Any) -> dict[str, Any]:
    return CHAT.encode_request(MESSAGES.decode_request(body))


def chat_request_to_messages(body: Any) -> dict[str, Any]:
    return MESSAGES.encode_request(CHAT.decode_request(body))


def chat_response_to_messages(body: Any, model: str) -> dict[str, Any]:
    return MESSAGES.encode_response(CHAT.decode_response(body), model)


def messages_response_to_chat(body: Any, model: str) -> dict[str, Any]:
    return CHAT.encode_response(MESSAGES.decode_response(body), model)


class Pipe:
    """An upstream stream decoder feeding a caller stream encoder, as the hub pairs them."""

    def __init__(self, decoder: Any, encoder: Any) -> None:
        self.decoder, self.encoder = decoder, encoder
        self.events: list[ir.Event] = []

    def feed(self, name: str, data: bytes) -> bytes:
        events = self.decoder.feed(name, data)
        self.events += events
        return b"".join(self.encoder.feed(e) for e in events)

    def close(self) -> bytes:
        events = self.decoder.close()
        self.events += events
        return b"".join(self.encoder.feed(e) for e in events) + self.encoder.close()

    @property
    def usage(self) -> ir.Usage | None:
        usages = [e.usage for e in self.events if isinstance(e, ir.UsageUpdate | ir.Finish)
                  and e.usage is not None]
        return usages[-1] if usages else None


def chat_to_messages_pipe(estimated: int = 0) -> Pipe:
    return Pipe(CHAT.stream_decoder(),
                MESSAGES.stream_encoder("claude-x", ir.Request("m"), estimated))


def messages_to_chat_pipe(model: str = "gpt-x", include_usage: bool = True) -> Pipe:
    request = ir.Request("m", hints={"include_usage": True} if include_usage else {})
    return Pipe(MESSAGES.stream_decoder(), CHAT.stream_encoder(model, request, 0))


def feed_chunk(pipe: Pipe, chunk: dict[str, Any]) -> bytes:
    return pipe.feed("", orjson.dumps(chunk))


DONE = b"[DONE]"


ANTHROPIC_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
PNG_B64 = "iVBORw0KGgo" * 500


def parse_anthropic_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split Anthropic SSE bytes into (event name, data) pairs, checking the framing."""
    assert raw.endswith(b"\n\n")
    events = []
    for frame in raw[:-2].split(b"\n\n"):
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        name = name_line.removeprefix(b"event: ").decode()
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert data["type"] == name
        if name == "error":
            anthropic.types.ErrorResponse.model_validate(data)
        else:
            ANTHROPIC_EVENT.validate_python(data)
        events.append((name, data))
    return events


def parse_chat_sse(raw: bytes) -> list[Any]:
    """Split OpenAI SSE bytes into decoded chunks, "[DONE]" kept as a string."""
    assert raw.endswith(b"\n\n")
    out: list[Any] = []
    for frame in raw[:-2].split(b"\n\n"):
        assert frame.startswith(b"data: ") and b"\n" not in frame
        payload = frame.removeprefix(b"data: ")
        if payload == b"[DONE]":
            out.append("[DONE]")
        else:
            chunk = orjson.loads(payload)
            openai.types.chat.ChatCompletionChunk.model_validate(chunk)
            out.append(chunk)
    return out


def user_turn(content: Any) -> dict[str, Any]:
    """Build an Anthropic request holding one user turn."""
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def chat_chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """Build one upstream OpenAI chunk with a single choice."""
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "abc", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [choice], **extra}


def chat_completion(message: dict[str, Any], finish: str = "stop",
                    usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build one upstream OpenAI chat.completion."""
    return {"id": "abc", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def anthropic_message(content: list[dict[str, Any]], stop: str = "end_turn",
                      usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build one upstream Anthropic message."""
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": usage or {"input_tokens": 10, "output_tokens": 5}}


def run_chat_stream(chunks: list[dict[str, Any]], estimated: int = 0
                    ) -> tuple[Pipe, list[tuple[str, dict[str, Any]]]]:
    """Feed chunks, [DONE], then close; return the pipe and the parsed events."""
    pipe = chat_to_messages_pipe(estimated)
    raw = b"".join(feed_chunk(pipe, chunk) for chunk in chunks)
    raw += pipe.feed("", DONE) + pipe.close()
    return pipe, parse_anthropic_sse(raw)


def run_messages_stream(events: list[tuple[str, dict[str, Any]]], include_usage: bool = True
                        ) -> tuple[Pipe, list[Any]]:
    """Feed Anthropic events then close; return the pipe and the parsed chunks."""
    pipe = messages_to_chat_pipe(include_usage=include_usage)
    raw = b"".join(pipe.feed(name, orjson.dumps(data)) for name, data in events) + pipe.close()
    return pipe, parse_chat_sse(raw)


def counts(pipe: Pipe) -> dict[str, int]:
    """The usage the stream reported, in the usage row's terms."""
    usage = pipe.usage or ir.Usage()
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens}


def accumulate_anthropic(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rebuild the final Anthropic message from stream events, as a client would."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    for index, text in partial.items():
        message["content"][index]["input"] = orjson.loads(text)
    return message


# Anthropic request -> OpenAI request


def test_system_string_becomes_system_message() -> None:
    """A string system prompt becomes the first, system-role chat message."""
    chat = messages_request_to_chat({"model": "m", "max_tokens": 10, "system": "Be brief.",
                                     "messages": [{"role": "user", "content": "Hi"}]})
    assert chat["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi"}]
    assert chat["model"] == "m"
    assert chat["max_tokens"] == 10


def test_system_text_blocks_are_joined_and_cache_control_dropped() -> None:
    """A list of system text blocks is joined by newlines; cache_control disappears."""
    system = [{"type": "text", "text": "A"},
              {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]
    chat = messages_request_to_chat({"model": "m", "system": system, "messages": []})
    assert chat["messages"] == [{"role": "system", "content": "A\nB"}]
    assert b"cache_control" not in orjson.dumps(chat)


def test_user_images_become_image_url_parts() -> None:
    """Base64 images become data: URIs and url images keep their URL, after the text."""
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    chat = messages_request_to_chat(user_turn(content))
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]}]


def test_text_only_user_blocks_collapse_to_one_string() -> None:
    """Several text blocks in a user turn become one newline-joined string."""
    content = [{"type": "text", "text": "<reminder>x</reminder>"}, {"type": "text", "text": "Go"}]
    chat = messages_request_to_chat(user_turn(content))
    assert chat["messages"] == [{"role": "user", "content": "<reminder>x</reminder>\nGo"}]


def test_documents_become_file_or_text_parts() -> None:
    """A base64 PDF becomes a file part with a data: URI; a text document becomes text."""
    content = [
        {"type": "document", "title": "spec.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "document",
         "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
    ]
    chat = messages_request_to_chat(user_turn(content))
    assert chat["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "spec.pdf",
                                  "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "text", "text": "notes"},
    ]


def test_assistant_tool_use_becomes_tool_calls_with_compact_arguments() -> None:
    """tool_use blocks become tool_calls whose arguments are compact JSON; thinking text
    becomes reasoning_content (DeepSeek wants it back on tool-call turns)."""
    content = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.py", "n": 2}},
    ]
    chat = messages_request_to_chat(
        {"model": "m", "messages": [{"role": "assistant", "content": content}]})
    assert chat["messages"] == [{
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "read", "arguments": '{"path":"a.py","n":2}'}}],
        "reasoning_content": "hmm",
    }]


def test_assistant_with_only_tool_use_has_null_content() -> None:
    """An assistant turn of tool_use blocks only has content None."""
    content = [{"type": "tool_use", "id": "t1", "name": "ls", "input": {}}]
    chat = messages_request_to_chat(
        {"model": "m", "messages": [{"role": "assistant", "content": content}]})
    assert chat["messages"][0]["content"] is None
    assert chat["messages"][0]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_tool_results_become_tool_messages_before_user_text() -> None:
    """tool_result blocks become role "tool" messages placed before the turn's other text."""
    content = [
        {"type": "text", "text": "Here you go."},
        {"type": "tool_result", "tool_use_id": "t1", "content": "file body"},
        {"type": "tool_result", "tool_use_id": "t2", "is_error": True,
         "content": [{"type": "text", "text": "not found"}, {"type": "text", "text": "(2)"}]},
    ]
    chat = messages_request_to_chat(user_turn(content))
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "file body"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: not found\n(2)"},
        {"role": "user", "content": "Here you go."},
    ]


def test_tool_result_images_move_to_a_user_message() -> None:
    """Images inside a tool_result (unsupported in tool messages) follow as user content."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QQ"}}
    content = [{"type": "tool_result", "tool_use_id": "t1",
                "content": [{"type": "text", "text": "screenshot"}, image]}]
    chat = messages_request_to_chat(user_turn(content))
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "screenshot"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ"}}]},
    ]


def test_tools_become_functions_and_server_tools_are_dropped() -> None:
    """Custom tools become functions with input_schema as parameters; server tools are dropped."""
    tools = [
        {"name": "read", "description": "Read a file", "cache_control": {"type": "ephemeral"},
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
        {"type": "custom", "name": "noop", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    chat = messages_request_to_chat({"model": "m", "messages": [], "tools": tools})
    assert chat["tools"] == [
        {"type": "function", "function": {
            "name": "read", "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "read"}, {"type": "function", "function": {"name": "read"}}),
])
def test_tool_choice_maps_to_openai(choice: dict[str, Any], expected: Any) -> None:
    """Anthropic tool_choice auto/any/none/tool map to auto/required/none/function."""
    tools = [{"name": "read", "input_schema": {"type": "object"}}]
    chat = messages_request_to_chat(
        {"model": "m", "messages": [], "tools": tools, "tool_choice": choice})
    assert chat["tool_choice"] == expected
    assert "parallel_tool_calls" not in chat


def test_disable_parallel_tool_use_sets_parallel_tool_calls_false() -> None:
    """disable_parallel_tool_use becomes parallel_tool_calls false."""
    tools = [{"name": "read", "input_schema": {"type": "object"}}]
    chat = messages_request_to_chat({"model": "m", "messages": [], "tools": tools,
                                     "tool_choice": {"type": "auto",
                                                     "disable_parallel_tool_use": True}})
    assert chat["tool_choice"] == "auto"
    assert chat["parallel_tool_calls"] is False


def test_request_parameters_map_and_unsupported_ones_are_dropped() -> None:
    """Sampling, stop and stream map; thinking becomes reasoning_effort (1024 tokens: low);
    top_k goes; metadata.user_id (a blob in Claude Code) is hashed into user."""
    body = {"model": "m", "max_tokens": 256, "messages": [], "temperature": 0.2, "top_p": 0.9,
            "top_k": 5, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
            "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert messages_request_to_chat(body) == {
        "model": "m", "messages": [], "max_tokens": 256, "temperature": 0.2, "top_p": 0.9,
        "stop": ["END"], "stream": True, "stream_options": {"include_usage": True},
        "reasoning_effort": "low", "user": hashed_user("u-1"),
    }


def test_non_streaming_request_has_no_stream_keys() -> None:
    """stream false leaves out stream and stream_options."""
    chat = messages_request_to_chat({"model": "m", "messages": [], "stream": False})
    assert "stream" not in chat
    assert "stream_options" not in chat


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "m", "messages": "hi"}, "messages: expected a list, got str"),
    ({"model": "m"}, "messages: expected a list, got NoneType"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]: expected an object"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages[0].content[0].text: expected a string"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "unsupported image source 'file'"),
    ({"model": "m", "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "input": {}}]}]}, "messages[0].content[0].name"),
    ({"model": "m", "messages": [], "tool_choice": {"type": "maybe"}}, "tool_choice.type"),
    ({"model": "m", "messages": [], "tools": {"name": "x"}}, "tools: expected a list"),
    ("not a body", "body: expected an object"),
])
def test_invalid_messages_request_raises(body: Any, message: str) -> None:
    """Structurally invalid Anthropic requests raise CodecError naming the place."""
    with pytest.raises(CodecError, match=re.escape(message)):
        messages_request_to_chat(body)


def test_unknown_blocks_are_skipped_and_system_messages_stay_in_place() -> None:
    """Block types this gateway does not know are skipped; a system message mid-conversation
    (current Claude Code) becomes a system message at that place."""
    chat = messages_request_to_chat({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "audio", "x": 1}, {"type": "text", "text": "a"}]},
        {"role": "system", "content": "Mind the tests."},
        {"role": "user", "content": [{"type": "server_tool_use", "id": "s"}]}]})
    assert chat["messages"] == [{"role": "user", "content": "a"},
                                {"role": "system", "content": "Mind the tests."}]


def test_codec_error_is_a_value_error() -> None:
    """CodecError subclasses ValueError so callers may catch either."""
    assert issubclass(CodecError, ValueError)


# OpenAI response -> Anthropic response


def test_chat_response_becomes_anthropic_message() -> None:
    """Text then tool calls become a text block then tool_use blocks; the SDK accepts it."""
    resp = chat_completion({"role": "assistant", "content": "Reading.", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "read", "arguments": '{"path": "a.py"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "ls", "arguments": "{oops"}},
    ]}, finish="tool_calls")
    message = chat_response_to_messages(resp, "claude-x")
    assert message == {
        "id": "msg_abc", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "call_1", "name": "read", "input": {"path": "a.py"}},
            {"type": "tool_use", "id": "call_2", "name": "ls", "input": {}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0},
    }
    anthropic.types.Message.model_validate(message)


@pytest.mark.parametrize(("finish", "stop_reason"), [
    ("stop", "end_turn"),
    ("length", "max_tokens"),
    ("tool_calls", "tool_use"),
    ("function_call", "tool_use"),
    ("content_filter", "refusal"),
    (None, "end_turn"),
    ("something_new", "end_turn"),
])
def test_finish_reason_maps_to_stop_reason(finish: str | None, stop_reason: str) -> None:
    """OpenAI finish_reason values map onto Anthropic stop_reason values."""
    message = chat_response_to_messages(chat_completion({"content": "x"}, finish=finish), "m")
    assert message["stop_reason"] == stop_reason


def test_tool_calls_with_finish_stop_still_report_tool_use() -> None:
    """An upstream that says "stop" while calling tools still yields stop_reason tool_use."""
    resp = chat_completion({"content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]})
    assert chat_response_to_messages(resp, "m")["stop_reason"] == "tool_use"


def test_chat_usage_with_cached_tokens_maps_to_cache_read() -> None:
    """Cached prompt tokens become cache_read_input_tokens and leave input_tokens."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020,
             "prompt_tokens_details": {"cached_tokens": 800}}
    message = chat_response_to_messages(chat_completion({"content": "x"}, usage=usage), "m")
    assert message["usage"] == {"input_tokens": 200, "output_tokens": 20,
                                "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0}


def test_empty_chat_response_content_gives_no_blocks() -> None:
    """A null content with no tool calls gives an empty content list, still a valid Message."""
    message = chat_response_to_messages(chat_completion({"content": None}), "m")
    assert message["content"] == []
    anthropic.types.Message.model_validate(message)


def test_chat_refusal_becomes_text() -> None:
    """A refusal message is surfaced as text with stop_reason refusal."""
    resp = chat_completion({"content": None, "refusal": "I can't."}, finish="content_filter")
    message = chat_response_to_messages(resp, "m")
    assert message["content"] == [{"type": "text", "text": "I can't."}]
    assert message["stop_reason"] == "refusal"


@pytest.mark.parametrize("resp", [
    {"id": "x", "choices": []},
    {"id": "x"},
    {"id": "x", "choices": [{"index": 0}]},
    [],
])
def test_invalid_chat_response_raises(resp: Any) -> None:
    """A chat response without a usable first choice raises CodecError."""
    with pytest.raises(CodecError):
        chat_response_to_messages(resp, "m")


# OpenAI stream -> Anthropic stream


def test_chat_text_stream_becomes_anthropic_event_sequence() -> None:
    """A streamed text answer yields exactly the Anthropic reference event sequence."""
    chunks = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"content": "Hel"}),
        chat_chunk({"content": "lo"}),
        chat_chunk({}, finish="stop"),
        {"id": "abc", "object": "chat.completion.chunk", "created": 1, "model": "up",
         "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2,
                                  "total_tokens": 14}},
    ]
    stream, events = run_chat_stream(chunks, estimated=11)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert events[0][1] == {"type": "message_start", "message": {
        "id": "msg_abc", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 0, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0}}}
    assert events[1][1] == {"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}
    assert events[2][1] == {"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": "Hel"}}
    assert events[4][1] == {"type": "content_block_stop", "index": 0}
    assert events[5][1] == {"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"input_tokens": 12, "output_tokens": 2,
                                      "cache_read_input_tokens": 0,
                                      "cache_creation_input_tokens": 0}}
    assert events[6][1] == {"type": "message_stop"}
    assert counts(stream) == {"prompt_tokens": 12, "completion_tokens": 2, "cached_tokens": 0}
    final = accumulate_anthropic(events)
    assert final["content"] == [{"type": "text", "text": "Hello"}]
    anthropic.types.Message.model_validate(final)


def test_chat_stream_sse_framing_is_exact() -> None:
    """Each event is b"event: NAME\\ndata: {compact json}\\n\\n"."""
    pipe = chat_to_messages_pipe()
    feed_chunk(pipe, chat_chunk({"role": "assistant"}))
    raw = feed_chunk(pipe, chat_chunk({"content": "Hi"}))
    assert raw == (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n')


def test_chat_tool_call_stream_opens_one_block_per_tool_call() -> None:
    """Text then two streamed tool calls give three blocks; arguments stream as input_json_delta."""
    chunks = [
        chat_chunk({"role": "assistant", "content": "Checking."}),
        chat_chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                    "function": {"name": "read", "arguments": ""}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"path":'}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"a.py"}'}}]}),
        chat_chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                    "function": {"name": "ls", "arguments": "{}"}}]}),
        chat_chunk({}, finish="tool_calls"),
    ]
    _, events = run_chat_stream(chunks)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    assert events[4][1] == {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "call_a", "name": "read", "input": {}}}
    assert events[5][1] == {"type": "content_block_delta", "index": 1,
                            "delta": {"type": "input_json_delta", "partial_json": '{"path":'}}
    assert events[8][1]["index"] == 2
    assert events[11][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    final = accumulate_anthropic(events)
    assert final["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_a", "name": "read", "input": {"path": "a.py"}},
        {"type": "tool_use", "id": "call_b", "name": "ls", "input": {}},
    ]
    anthropic.types.Message.model_validate(final)


def test_chat_stream_usage_chunk_after_finish_carries_cache_tokens() -> None:
    """A usage-only chunk after the finish chunk sets message_delta usage, cache reads included."""
    usage = {"prompt_tokens": 500, "completion_tokens": 7, "total_tokens": 507,
             "prompt_tokens_details": {"cached_tokens": 400}}
    chunks = [chat_chunk({"content": "ok"}, finish="length"),
              {"id": "abc", "choices": [], "usage": usage}]
    stream, events = run_chat_stream(chunks)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"] == {"input_tokens": 100, "output_tokens": 7,
                                      "cache_read_input_tokens": 400,
                                      "cache_creation_input_tokens": 0}
    assert counts(stream) == {"prompt_tokens": 500, "completion_tokens": 7, "cached_tokens": 400}


def test_chat_stream_without_usage_estimates_output_and_reports_zero_usage() -> None:
    """Without upstream usage, output_tokens is estimated and .usage stays all zeros."""
    stream, events = run_chat_stream([chat_chunk({"content": "x" * 40}, finish="stop")])
    assert events[-2][1]["usage"] == {"output_tokens": 10}
    assert counts(stream) == {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}


def test_chat_stream_with_no_chunks_still_forms_a_message() -> None:
    """finish() alone gives message_start, message_delta and message_stop."""
    _, events = run_chat_stream([])
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["delta"]["stop_reason"] == "end_turn"


def test_chat_stream_tool_calls_without_index_are_keyed_by_id() -> None:
    """Upstreams that omit tool_calls[].index still get one block per tool call id."""
    chunks = [
        chat_chunk({"tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": "{"}}]}),
        chat_chunk({"tool_calls": [{"function": {"arguments": "}"}}]}),
        chat_chunk({"tool_calls": [{"id": "c2", "function": {"name": "b", "arguments": "{}"}}]}),
    ]
    _, events = run_chat_stream(chunks)
    final = accumulate_anthropic(events)
    assert [(b["id"], b["input"]) for b in final["content"]] == [("c1", {}), ("c2", {})]
    assert final["stop_reason"] == "tool_use"


def test_chat_stream_ignores_input_after_done() -> None:
    """Chunks and close() after [DONE] give nothing."""
    pipe = chat_to_messages_pipe()
    feed_chunk(pipe, chat_chunk({"content": "a"}))
    assert pipe.feed("", DONE).endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert feed_chunk(pipe, chat_chunk({"content": "b"})) == b""
    assert pipe.close() == b""


def test_chat_stream_cut_before_done_ends_with_an_error_event() -> None:
    """An upstream that hangs up before [DONE] gets the caller an error event, never a clean
    message_stop."""
    pipe = chat_to_messages_pipe()
    feed_chunk(pipe, chat_chunk({"content": "a"}))
    events = parse_anthropic_sse(pipe.close())
    assert events == [("error", {"type": "error", "error": {
        "type": "api_error", "message": "upstream closed the stream before it was complete"}})]


def test_chat_stream_error_chunk_raises() -> None:
    """An upstream error object in the stream ends the caller's stream with an error event."""
    pipe = chat_to_messages_pipe()
    raw = feed_chunk(pipe, {"error": {"message": "overloaded", "type": "server_error"}})
    assert parse_anthropic_sse(raw)[-1] == ("error", {"type": "error", "error": {
        "type": "api_error", "message": "overloaded"}})
    assert pipe.close() == b""


# OpenAI request -> Anthropic request


def test_system_and_developer_messages_become_system() -> None:
    """system and developer messages (string or text parts) are joined into system."""
    body = {"model": "m", "messages": [
        {"role": "system", "content": "Rule 1."},
        {"role": "developer", "content": [{"type": "text", "text": "Rule 2."}]},
        {"role": "user", "content": "Hi"},
    ]}
    out = chat_request_to_messages(body)
    assert out["system"] == "Rule 1.\nRule 2."
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_image_url_parts_become_image_blocks() -> None:
    """data: URIs become base64 sources and http(s) URLs become url sources."""
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/b.png"}},
    ]}]}
    assert chat_request_to_messages(body)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/b.png"}},
    ]}]


def test_file_part_becomes_document_block() -> None:
    """An inline PDF file part becomes a base64 document block titled by its filename."""
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf",
                                  "file_data": "data:application/pdf;base64,JVBE"}}]}]}
    assert chat_request_to_messages(body)["messages"][0]["content"] == [
        {"type": "document", "title": "a.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]


def test_tool_calls_and_tool_messages_become_tool_use_and_merged_tool_results() -> None:
    """Assistant tool_calls become tool_use; consecutive tool messages share one user turn."""
    body = {"model": "m", "messages": [
        {"role": "user", "content": "List and read."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
            {"id": "c2", "type": "function",
             "function": {"name": "read", "arguments": '{"path":"a"}'}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "a"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "body"}]},
        {"role": "user", "content": "Thanks"},
    ]}
    assert chat_request_to_messages(body)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "List and read."}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "c1", "name": "ls", "input": {}},
            {"type": "tool_use", "id": "c2", "name": "read", "input": {"path": "a"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "a"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "body"},
            {"type": "text", "text": "Thanks"},
        ]},
    ]


def test_consecutive_same_role_messages_are_merged() -> None:
    """Consecutive user (or assistant) messages become one turn; empty messages vanish."""
    body = {"model": "m", "messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "A"},
        {"role": "assistant", "content": [{"type": "text", "text": "B"}]},
    ]}
    assert chat_request_to_messages(body)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"},
                                     {"type": "text", "text": "two"},
                                     {"type": "text", "text": "three"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"},
                                          {"type": "text", "text": "B"}]},
    ]


def test_tool_result_before_user_text_when_user_message_comes_first() -> None:
    """tool_result blocks are moved to the front of a merged user turn, as Anthropic requires."""
    body = {"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
        {"role": "user", "content": "note"},
        {"role": "tool", "tool_call_id": "c1", "content": "out"},
    ]}
    assert [b["type"] for b in chat_request_to_messages(body)["messages"][1]["content"]] == [
        "tool_result", "text"]


def test_chat_tools_and_legacy_functions_become_anthropic_tools() -> None:
    """tools[].function and legacy functions become tools with input_schema."""
    body = {"model": "m", "messages": [],
            "tools": [{"type": "function", "function": {
                "name": "read", "description": "Read", "parameters": {"type": "object"}}}],
            "functions": [{"name": "old"}]}
    assert chat_request_to_messages(body)["tools"] == [
        {"name": "read", "description": "Read", "input_schema": {"type": "object"}},
        {"name": "old", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "read"}}, {"type": "tool", "name": "read"}),
])
def test_chat_tool_choice_maps_to_anthropic(choice: Any, expected: dict[str, Any]) -> None:
    """OpenAI tool_choice auto/required/none/function map to auto/any/none/tool."""
    tools = [{"type": "function", "function": {"name": "read"}}]
    body = {"model": "m", "messages": [], "tools": tools, "tool_choice": choice}
    assert chat_request_to_messages(body)["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    """parallel_tool_calls false adds disable_parallel_tool_use to the tool choice."""
    tools = [{"type": "function", "function": {"name": "read"}}]
    out = chat_request_to_messages(
        {"model": "m", "messages": [], "tools": tools, "parallel_tool_calls": False})
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_legacy_function_call_maps_to_tool_choice() -> None:
    """Legacy function_call {"name"} becomes tool_choice type tool."""
    body = {"model": "m", "messages": [], "functions": [{"name": "f"}],
            "function_call": {"name": "f"}}
    assert chat_request_to_messages(body)["tool_choice"] == {"type": "tool", "name": "f"}


def test_chat_parameters_map_and_extras_are_dropped() -> None:
    """max_tokens, stop, temperature, top_p, stream and user map; n and stream_options go."""
    body = {"model": "m", "messages": [], "max_tokens": 100, "stop": "END", "temperature": 0.5,
            "top_p": 0.8, "stream": True, "stream_options": {"include_usage": True}, "n": 1,
            "user": "u-2", "presence_penalty": 0.1}
    assert chat_request_to_messages(body) == {
        "model": "m", "messages": [], "max_tokens": 100, "stop_sequences": ["END"],
        "temperature": 0.5, "top_p": 0.8, "stream": True, "metadata": {"user_id": "u-2"}}


@pytest.mark.parametrize(("extra", "max_tokens"), [
    ({}, 4096),
    ({"max_tokens": 50}, 50),
    ({"max_completion_tokens": 70, "max_tokens": 50}, 70),
])
def test_max_tokens_defaults_and_prefers_max_completion_tokens(
        extra: dict[str, Any], max_tokens: int) -> None:
    """max_tokens defaults to 4096 and max_completion_tokens wins over max_tokens."""
    out = chat_request_to_messages({"model": "m", "messages": [], **extra})
    assert out["max_tokens"] == max_tokens


def test_stop_list_and_temperature_clamp() -> None:
    """A stop list passes as stop_sequences; temperature above 1 is clamped to Anthropic's 1."""
    out = chat_request_to_messages(
        {"model": "m", "messages": [], "stop": ["a", "b"], "temperature": 1.7})
    assert out["stop_sequences"] == ["a", "b"]
    assert out["temperature"] == 1.0


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "m", "messages": {"role": "user"}}, "messages: expected a list"),
    ({"model": "m", "messages": [{"role": "function", "content": "x"}]},
     "messages[0].role: unsupported role 'function'"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "unsupported content part type 'input_audio'"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
     "expected a data: URI or an http"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
     "only base64 data: URIs"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"model": "m", "messages": [], "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "messages": [], "max_tokens": "10"}, "max_tokens: expected an integer"),
    ({"model": "m", "messages": [], "temperature": "hot"}, "temperature: expected a number"),
])
def test_invalid_chat_request_raises(body: dict[str, Any], message: str) -> None:
    """Structurally invalid OpenAI requests raise CodecError naming the place."""
    with pytest.raises(CodecError, match=re.escape(message)):
        chat_request_to_messages(body)


# Anthropic response -> OpenAI response


def test_anthropic_message_becomes_chat_completion() -> None:
    """Text blocks join into content, tool_use becomes tool_calls, thinking becomes
    reasoning_content; the SDK accepts it."""
    resp = anthropic_message([
        {"type": "thinking", "thinking": "Hmm.", "signature": "s"},
        {"type": "text", "text": "Sure. "},
        {"type": "text", "text": "Reading."},
        {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a"}},
    ], stop="tool_use")
    chat = messages_response_to_chat(resp, "gpt-x")
    assert isinstance(chat.pop("created"), int)
    assert chat == {
        "id": "chatcmpl-msg_1", "object": "chat.completion", "model": "gpt-x",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Sure. Reading.", "reasoning_content": "Hmm.",
            "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "read", "arguments": '{"path":"a"}'}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }
    openai.types.chat.ChatCompletion.model_validate(messages_response_to_chat(resp, "gpt-x"))


def test_anthropic_message_without_text_has_null_content() -> None:
    """A message of tool_use blocks only gives content None."""
    resp = anthropic_message([{"type": "tool_use", "id": "t", "name": "ls", "input": {}}])
    assert messages_response_to_chat(resp, "m")["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("max_tokens", "length"),
    ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
    ("pause_turn", "stop"),
    ("model_context_window_exceeded", "length"),
])
def test_stop_reason_maps_to_finish_reason(stop: str, finish: str) -> None:
    """Anthropic stop_reason values map onto OpenAI finish_reason values."""
    chat = messages_response_to_chat(anthropic_message([], stop=stop), "m")
    assert chat["choices"][0]["finish_reason"] == finish


def test_anthropic_usage_with_cache_maps_to_prompt_tokens() -> None:
    """prompt_tokens sums input, cache reads and cache writes; cache reads are cached_tokens."""
    usage = {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 300,
             "cache_creation_input_tokens": 50}
    chat = messages_response_to_chat(anthropic_message([], usage=usage), "m")
    assert chat["usage"] == {"prompt_tokens": 360, "completion_tokens": 4, "total_tokens": 364,
                             "prompt_tokens_details": {"cached_tokens": 300}}


def test_invalid_anthropic_response_raises() -> None:
    """A message whose content is not a list raises CodecError."""
    with pytest.raises(CodecError, match=r"response\.content"):
        messages_response_to_chat({"id": "x", "content": "text"}, "m")


# Anthropic stream -> OpenAI stream


def anthropic_text_events(usage_delta: dict[str, Any] | None = None
                          ) -> list[tuple[str, dict[str, Any]]]:
    """Build the events of a streamed Anthropic text answer."""
    start = {"type": "message_start", "message": {
        "id": "msg_9", "type": "message", "role": "assistant", "model": "claude", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 5}}}
    return [
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": " there"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": usage_delta or {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_anthropic_text_stream_becomes_chat_chunks() -> None:
    """A streamed text answer gives role, content, finish, usage chunks and [DONE]."""
    stream, chunks = run_messages_stream(anthropic_text_events())
    assert chunks[-1] == "[DONE]"
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-2]]
    assert deltas == [({"role": "assistant", "content": ""}, None), ({"content": "Hi"}, None),
                      ({"content": " there"}, None), ({}, "stop")]
    first = chunks[0]
    assert isinstance(first.pop("created"), int)
    assert first == {"id": "chatcmpl-msg_9", "object": "chat.completion.chunk", "model": "gpt-x",
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                  "logprobs": None, "finish_reason": None}]}
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == {"prompt_tokens": 125, "completion_tokens": 9,
                                   "total_tokens": 134,
                                   "prompt_tokens_details": {"cached_tokens": 100}}
    assert counts(stream) == {"prompt_tokens": 125, "completion_tokens": 9, "cached_tokens": 100}


def test_anthropic_stream_chunk_framing_is_exact() -> None:
    """Each chunk is b"data: {compact json}\\n\\n"; the finish chunk is followed at once by
    b"data: [DONE]\\n\\n", not when the upstream closes."""
    pipe = messages_to_chat_pipe("m", include_usage=False)
    events = anthropic_text_events()
    raw = pipe.feed(events[0][0], orjson.dumps(events[0][1]))
    assert raw.startswith(b'data: {"id":"chatcmpl-msg_9","object":"chat.completion.chunk",')
    assert raw.endswith(b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                        b'"logprobs":null,"finish_reason":null}]}\n\n')
    for name, data in events[1:-1]:
        pipe.feed(name, orjson.dumps(data))
    last = pipe.feed(events[-1][0], orjson.dumps(events[-1][1]))
    assert last.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')  # with the finish
    assert pipe.close() == b""


def test_anthropic_stream_without_include_usage_has_no_usage_chunk() -> None:
    """include_usage false omits the usage chunk but .usage is still accumulated."""
    stream, chunks = run_messages_stream(anthropic_text_events(), include_usage=False)
    assert all(chunk == "[DONE]" or chunk["choices"] for chunk in chunks)
    assert counts(stream)["completion_tokens"] == 9


def test_anthropic_message_delta_usage_overrides_start_usage() -> None:
    """Cumulative usage on message_delta replaces message_start's counts."""
    delta_usage = {"input_tokens": 30, "output_tokens": 12, "cache_read_input_tokens": 100,
                   "cache_creation_input_tokens": 0}
    stream, _ = run_messages_stream(anthropic_text_events(delta_usage))
    assert counts(stream) == {"prompt_tokens": 130, "completion_tokens": 12, "cached_tokens": 100}


def test_anthropic_tool_stream_becomes_tool_call_deltas() -> None:
    """tool_use blocks stream as tool_calls deltas with their own index, then finish tool_calls."""
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_t", "type": "message", "role": "assistant", "model": "c", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Ok"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_a", "name": "read", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"p":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_b", "name": "ls", "input": {}}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 30}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    _, chunks = run_messages_stream(events, include_usage=False)
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Ok"},
        {"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
                         "function": {"name": "read", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"p":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function",
                         "function": {"name": "ls", "arguments": ""}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_anthropic_stream_error_event_raises() -> None:
    """An error event ends the chat stream with an in-band error object, then [DONE]."""
    pipe = messages_to_chat_pipe("m")
    raw = pipe.feed("error", orjson.dumps({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}))
    assert raw.endswith(b'data: {"error":{"message":"Overloaded","type":"upstream_error",'
                        b'"code":"upstream_error"}}\n\ndata: [DONE]\n\n')
    assert pipe.close() == b""


def test_anthropic_stream_cut_before_message_stop_ends_with_an_error() -> None:
    """A stream cut before message_stop ends with an error object, never a clean finish."""
    pipe = messages_to_chat_pipe("m", include_usage=False)
    raw = b"".join(pipe.feed(name, orjson.dumps(data))
                   for name, data in anthropic_text_events()[:5]) + pipe.close()
    frames = raw.removesuffix(b"\n\n").split(b"\n\n")
    assert frames[-2:] == [b'data: {"error":{"message":"upstream closed the stream before it '
                           b'was complete","type":"upstream_error","code":"upstream_error"}}',
                           b"data: [DONE]"]
    assert b"finish_reason\":\"stop" not in raw


# Round trips


def test_anthropic_request_round_trips_through_chat() -> None:
    """An Anthropic request survives messages -> chat -> messages unchanged."""
    body = {
        "model": "claude", "max_tokens": 512, "system": "Be terse.", "temperature": 0.3,
        "stop_sequences": ["###"], "stream": True,
        "tools": [{"name": "read", "description": "Read",
                   "input_schema": {"type": "object", "properties": {"p": {"type": "string"}}}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "QUJD"}}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading"},
                {"type": "tool_use", "id": "t1", "name": "read", "input": {"p": "x"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "data"},
                {"type": "text", "text": "Next?"}]},
        ],
    }
    assert chat_request_to_messages(messages_request_to_chat(body)) == body


def test_chat_request_round_trips_through_anthropic() -> None:
    """An OpenAI request survives chat -> messages -> chat unchanged."""
    body = {
        "model": "gpt", "max_tokens": 300, "temperature": 0.5, "stop": ["END"],
        "stream": True, "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {
            "name": "ls", "description": "List", "parameters": {"type": "object"}}}],
        "tool_choice": "required", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": [
                {"type": "text", "text": "See"},
                {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}}]},
            {"role": "assistant", "content": "Listing", "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "ls", "arguments": '{"d":1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "a b"},
            {"role": "user", "content": "Done?"},
        ],
    }
    assert messages_request_to_chat(chat_request_to_messages(body)) == body


def test_chat_response_round_trips_through_anthropic() -> None:
    """A chat.completion survives chat -> messages -> chat except id prefix and created."""
    resp = chat_completion({"role": "assistant", "content": "Hi", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":[1,2]}'}}]},
        finish="tool_calls",
        usage={"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46,
               "prompt_tokens_details": {"cached_tokens": 32}})
    back = messages_response_to_chat(chat_response_to_messages(resp, "claude"), "up")
    assert back["id"] == "chatcmpl-msg_abc"
    assert back["choices"][0]["message"] == resp["choices"][0]["message"]
    assert back["choices"][0]["finish_reason"] == "tool_calls"
    assert back["usage"] == resp["usage"]


def test_streams_compose_into_the_original_answer() -> None:
    """OpenAI chunks -> Anthropic events -> OpenAI chunks keeps text, tool calls and usage."""
    upstream = [
        chat_chunk({"role": "assistant", "content": "A"}),
        chat_chunk({"content": "B"}),
        chat_chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                    "function": {"name": "f", "arguments": '{"x"'}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        chat_chunk({}, finish="tool_calls"),
        {"id": "abc", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                                               "prompt_tokens_details": {"cached_tokens": 4}}},
    ]
    _, events = run_chat_stream(upstream)
    stream, chunks = run_messages_stream(events)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2])
    calls = [call for c in chunks[:-2] for call in c["choices"][0]["delta"].get("tool_calls", [])]
    arguments = "".join(call["function"].get("arguments", "") for call in calls)
    assert content == "AB"
    assert arguments == '{"x":1}'
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert counts(stream) == {"prompt_tokens": 9, "completion_tokens": 3, "cached_tokens": 4}


