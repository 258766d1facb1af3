"""The Responses API codec: requests, answers, streams and errors, both directions.

Bodies are shaped like what Codex CLI sends (agents-wire.md §2) and what api.openai.com
answers; everything the codec emits is validated against the official openai SDK's types.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter

from coderouter.dialects import ir
from coderouter.dialects.codec import CodecError
from coderouter.dialects.responses import CODEC
from coderouter.dialects.responses.compaction import FOREIGN_NOTE
from coderouter.dialects.responses.items import LOCAL_SHELL_SCHEMA

EVENT = TypeAdapter(ResponseStreamEvent)
RESPONSE = TypeAdapter(Response)
CREATE = TypeAdapter(ResponseCreateParamsStreaming)
#: error.code values Codex acts on that the SDK's ResponseError literal does not list.
CODEX_ONLY_CODES = {"context_length_exceeded", "insufficient_quota", "rate_limit_exceeded"}

APPLY_PATCH_FORMAT = {"type": "grammar", "syntax": "lark",
                      "definition": "start: begin_patch hunk+ end_patch"}

CODEX_BODY: dict[str, Any] = {
    "model": "gw-model",
    "instructions": "You are Codex.",
    "input": [
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": "<permissions>workspace-write</permissions>"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "fix the bug"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=",
             "detail": "high"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [
            {"type": "summary_text", "text": "Look first."}],
         "encrypted_content": "gAAAAenc1"},
        {"type": "function_call", "name": "shell", "call_id": "call_1",
         "arguments": "{\"command\":[\"ls\"]}"},
        {"type": "function_call", "name": "shell", "call_id": "call_2",
         "arguments": "{\"command\": [\"cat\", \"a.py\"]}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.py\n"},
        {"type": "function_call_output", "call_id": "call_2", "output": "print(1)\n"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "x"}},
        {"type": "custom_tool_call", "call_id": "call_3", "name": "apply_patch",
         "input": "*** Begin Patch\n*** End Patch\n"},
        {"type": "custom_tool_call_output", "call_id": "call_3", "output": "Done!"},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_4", "status": "completed",
         "action": {"type": "exec", "command": ["pwd"], "env": {},
                    "working_directory": "/w", "timeout_ms": 1000}},
        {"type": "local_shell_call_output", "call_id": "call_4", "output": "/w"},
        {"type": "compaction", "encrypted_content": "opaque-summary"},
        {"type": "some_future_item", "x": 1},
        {"type": "function_call", "name": "close_agent", "namespace": "multi_agent_v1",
         "call_id": "call_5", "arguments": "{\"target\":\"a1\"}"},
        {"type": "function_call_output", "call_id": "call_5", "output": "closed"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Fixed."}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "thanks"}]},
    ],
    "tools": [
        {"type": "function", "name": "shell", "description": "Runs a command.", "strict": False,
         "parameters": {"type": "object", "properties": {"command": {"type": "array"}},
                        "required": ["command"]}},
        {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": APPLY_PATCH_FORMAT},
        {"type": "local_shell"},
        {"type": "web_search", "search_context_size": "low"},
        {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
         "tools": [{"type": "function", "name": "close_agent", "strict": False,
                    "description": "Close an agent.",
                    "parameters": {"type": "object", "properties": {
                        "target": {"type": "string"}}}}]},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "high", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "thread-123",
    "text": {"verbosity": "low", "format": {"type": "json_schema", "strict": True,
                                            "schema": {"type": "object"},
                                            "name": "codex_output_schema"}},
    "max_output_tokens": 4096,
}


def materialise(value: Any) -> Any:
    """*value* with the SDK validator's lazy iterables turned into lists (to compare)."""
    if isinstance(value, dict):
        return {k: materialise(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return [materialise(v) for v in value]


def sse(raw: bytes) -> list[dict[str, Any]]:
    """The JSON data of every SSE event in *raw*, checking each event's name matches."""
    events = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        event = orjson.loads(data[6:])
        assert event["type"] == name[7:].decode()
        events.append(event)
    return events


def validate_event(event: dict[str, Any]) -> None:
    """Validate *event* with the SDK's own stream event union."""
    if event["type"] == "response.failed":
        code = event["response"]["error"]["code"]
        if code in CODEX_ONLY_CODES:  # the SDK's literal lags the API: check the rest
            event = {**event, "response": {**event["response"],
                                           "error": {**event["response"]["error"],
                                                     "code": "server_error"}}}
    parsed = EVENT.validate_python(event)
    assert parsed.type == event["type"]


def encode_stream(events: list[ir.Event], request: ir.Request | None = None,
                  close: bool = True) -> list[dict[str, Any]]:
    encoder = CODEC.stream_encoder("gw-model", request or ir.Request(model="gw-model"), 42)
    raw = b"".join(encoder.feed(e) for e in events) + (encoder.close() if close else b"")
    out = sse(raw)
    for event in out:
        validate_event(event)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def decode_stream(events: list[dict[str, Any]], close: bool = True) -> list[ir.Event]:
    decoder = CODEC.stream_decoder()
    out: list[ir.Event] = []
    for event in events:
        out += decoder.feed(event["type"], orjson.dumps(event))
    return out + (decoder.close() if close else [])


class TestDecodeRequest:
    """A Codex request decodes to the neutral representation, item by item."""

    def test_codex_body(self) -> None:
        request = CODEC.decode_request(CODEX_BODY)
        assert request.messages == [
            ir.Message("system", [ir.Text("You are Codex.")]),
            ir.Message("system", [ir.Text("<permissions>workspace-write</permissions>")]),
            ir.Message("user", [ir.Text("fix the bug"),
                                ir.Image(media_type="image/png", data="iVBORw0KGgo=",
                                         detail="high")]),
            ir.Message("assistant", [
                ir.Reasoning("Look first.", ir.Opaque("responses", "gAAAAenc1"), id="rs_1"),
                ir.ToolCall("call_1", "shell", "{\"command\":[\"ls\"]}"),
                ir.ToolCall("call_2", "shell", "{\"command\": [\"cat\", \"a.py\"]}")]),
            ir.Message("user", [ir.ToolResult("call_1", "a.py\n"),
                                ir.ToolResult("call_2", "print(1)\n")]),
            ir.Message("assistant", [
                ir.ToolCall("call_3", "apply_patch", "*** Begin Patch\n*** End Patch\n",
                            kind="custom")]),
            ir.Message("user", [ir.ToolResult("call_3", "Done!")]),
            ir.Message("assistant", [ir.ToolCall(
                "call_4", "local_shell",
                '{"command":["pwd"],"workdir":"/w","timeout_ms":1000,"env":{}}')]),
            # OpenAI's compaction item cannot be read here: a note takes its place
            ir.Message("user", [ir.ToolResult("call_4", "/w"), ir.Text(FOREIGN_NOTE)]),
            ir.Message("assistant", [
                ir.ToolCall("call_5", "multi_agent_v1__close_agent", '{"target":"a1"}')]),
            ir.Message("user", [ir.ToolResult("call_5", "closed")]),
            ir.Message("assistant", [ir.Text("Fixed.")]),
            ir.Message("user", [ir.Text("thanks")]),
        ]
        assert request.tools == [
            ir.Tool("shell", "Runs a command.",
                    {"type": "object", "properties": {"command": {"type": "array"}},
                     "required": ["command"]}, strict=False),
            ir.Tool("apply_patch", "Edit files.", kind="custom", format=APPLY_PATCH_FORMAT),
            ir.Tool("local_shell", "Runs a shell command and returns its output.",
                    LOCAL_SHELL_SCHEMA, raw={"type": "local_shell"}, dialect="responses"),
            ir.Tool("web_search", kind="builtin", dialect="responses",
                    raw={"type": "web_search", "search_context_size": "low"}),
            ir.Tool("multi_agent_v1__close_agent", "Close an agent.",
                    {"type": "object", "properties": {"target": {"type": "string"}}},
                    strict=False, dialect="responses",
                    raw={"namespace": "multi_agent_v1", "name": "close_agent"}),
        ]
        assert request.tool_choice == ir.ToolChoice("auto")
        assert request.parallel_tool_calls is True
        assert request.reasoning == ir.ReasoningConfig(effort="high", summary=True)
        assert request.response_format == {"name": "codex_output_schema", "strict": True,
                                           "schema": {"type": "object"}}
        assert request.cache_key == "thread-123"
        assert request.max_tokens == 4096
        assert request.stream is True
        assert request.hints["responses.include"] == ["reasoning.encrypted_content"]
        assert request.hints["responses.store"] is False

    def test_string_input_and_easy_messages(self) -> None:
        """`input` as a string, and messages without ``type`` (the SDK's easy form)."""
        assert CODEC.decode_request({"model": "m", "input": "hi"}).messages == [
            ir.Message("user", [ir.Text("hi")])]
        request = CODEC.decode_request({"model": "m", "input": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}]})
        assert request.messages == [ir.Message("system", [ir.Text("be brief")]),
                                    ir.Message("user", [ir.Text("hi")]),
                                    ir.Message("assistant", [ir.Text("hello")])]

    def test_content_kinds(self) -> None:
        """Images by URL or file id, files inline or by URL, outputs as content lists."""
        request = CODEC.decode_request({"model": "m", "input": [
            {"role": "user", "content": [
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"},
                {"type": "input_file", "filename": "a.pdf",
                 "file_data": "data:application/pdf;base64,JVBERi0="},
                {"type": "input_file", "file_url": "https://x/b.pdf"},
                {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]},
            {"type": "function_call", "call_id": "c", "name": "see", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [
                {"type": "input_text", "text": "look:"},
                {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/"}]}]})
        assert request.messages[0].parts == [
            ir.Image(url="https://x/cat.png", detail="auto"),
            ir.File(media_type="application/pdf", data="JVBERi0=", filename="a.pdf"),
            ir.File(url="https://x/b.pdf")]
        assert request.messages[2].parts == [ir.ToolResult("c", [
            ir.Text("look:"), ir.Image(media_type="image/jpeg", data="/9j/")])]

    def test_settings(self) -> None:
        request = CODEC.decode_request({
            "model": "m", "input": [], "temperature": 0.2, "top_p": 0.9,
            "tool_choice": {"type": "function", "name": "shell"},
            "reasoning": {"effort": "none"}, "text": {"format": {"type": "json_object"}},
            "safety_identifier": "u1"})
        assert request.temperature == 0.2 and request.top_p == 0.9
        assert request.tool_choice == ir.ToolChoice("tool", "shell")
        assert request.reasoning == ir.ReasoningConfig(enabled=False, effort="none")
        assert request.response_format == {"type": "json"}
        assert request.user == "u1"
        custom = CODEC.decode_request({"model": "m", "input": [],
                                       "tool_choice": {"type": "custom", "name": "apply_patch"}})
        assert custom.tool_choice == ir.ToolChoice("tool", "apply_patch")

    @pytest.mark.parametrize(("body", "message"), [
        ({"input": "hi"}, "model: expected a string, got null"),
        ({"model": "m", "input": 3}, "input: expected an array, got int"),
        ({"model": "m", "input": ["hi"]}, "input[0]: expected an object, got str"),
        ({"model": "m", "input": [{"type": "message", "role": "tool", "content": "x"}]},
         "input[0].role: expected user, assistant, system or developer, got 'tool'"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": 1}]},
         "input[0].name: expected a string, got int"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
         "input[0].content[0]: an input_image needs image_url or file_id"),
        ({"model": "m", "tools": [{"name": "x"}]}, "tools[0].type: expected a string"),
        ({"model": "m", "reasoning": {"effort": "huge"}}, "reasoning.effort: expected one of"),
        ({"model": "m", "max_output_tokens": "10"}, "max_output_tokens: expected an integer"),
        ({"model": "m", "previous_response_id": "resp_1"},
         "previous_response_id: stored conversations are not available"),
    ])
    def test_errors_name_the_path(self, body: dict[str, Any], message: str) -> None:
        with pytest.raises(CodecError, match="^" + message.replace("[", r"\[").replace(
                "]", r"\]").replace("(", r"\(")):
            CODEC.decode_request(body)


TURN = ir.Request(
    model="gpt-5-codex", stream=True, max_tokens=8, temperature=1.0, cache_key="sess-1",
    reasoning=ir.ReasoningConfig(effort="max", summary=True),
    messages=[
        ir.Message("system", [ir.Text("You are Claude Code."), ir.Text("Be careful.")]),
        ir.Message("user", [ir.Text("what is in here?"),
                            ir.Image(media_type="image/png", data="AAAA")]),
        ir.Message("assistant", [
            ir.Reasoning("Let me look.", ir.Opaque("responses", "enc-own"), id="rs_9"),
            ir.Reasoning("foreign thoughts", ir.Opaque("messages", "sig-anthropic")),
            ir.Text("Looking."),
            ir.ToolCall("toolu_1", "Bash", "{\"command\":\"ls\"}"),
            ir.ToolCall("toolu_2", "apply_patch", "*** Begin Patch", kind="custom")]),
        ir.Message("user", [ir.ToolResult("toolu_1", "a.py"),
                            ir.ToolResult("toolu_2", [ir.Text("ok")]),
                            ir.Text("go on")]),
        ir.Message("system", [ir.Text("Late instruction.")]),
    ],
    tools=[ir.Tool("Bash", "Run bash", {"type": "object", "properties": {}}),
           ir.Tool("apply_patch", "Patch", kind="custom", format=APPLY_PATCH_FORMAT),
           ir.Tool("web_search", kind="builtin", raw={"type": "web_search_20250305",
                                                      "name": "web_search"},
                   dialect="messages"),
           ir.Tool("code_execution", kind="builtin", raw={"type": "code_execution_x"},
                   dialect="messages")],
    tool_choice=ir.ToolChoice("tool", "apply_patch"), parallel_tool_calls=False)


class TestEncodeRequest:
    """A neutral request becomes a Responses body an OpenAI upstream accepts."""

    def test_body(self) -> None:
        body = CODEC.encode_request(TURN)
        assert body == {
            "model": "gpt-5-codex",
            "instructions": "You are Claude Code.\n\nBe careful.",
            "input": [
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "what is in here?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA",
                     "detail": "auto"}]},
                {"type": "reasoning", "summary": [{"type": "summary_text",
                                                   "text": "Let me look."}],
                 "id": "rs_9", "encrypted_content": "enc-own"},
                {"type": "message", "role": "assistant", "content": "Looking."},
                {"type": "function_call", "call_id": "toolu_1", "name": "Bash",
                 "arguments": "{\"command\":\"ls\"}"},
                {"type": "custom_tool_call", "call_id": "toolu_2", "name": "apply_patch",
                 "input": "*** Begin Patch"},
                {"type": "function_call_output", "call_id": "toolu_1", "output": "a.py"},
                {"type": "custom_tool_call_output", "call_id": "toolu_2", "output": "ok"},
                {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "go on"}]},
                {"type": "message", "role": "developer",
                 "content": [{"type": "input_text", "text": "Late instruction."}]},
            ],
            "tools": [
                {"type": "function", "name": "Bash", "description": "Run bash",
                 "parameters": {"type": "object", "properties": {}}, "strict": False},
                {"type": "custom", "name": "apply_patch", "description": "Patch",
                 "format": APPLY_PATCH_FORMAT},
                {"type": "web_search"}],
            "tool_choice": {"type": "custom", "name": "apply_patch"},
            "parallel_tool_calls": False,
            "reasoning": {"effort": "xhigh", "summary": "auto"},
            "max_output_tokens": 16,
            "prompt_cache_key": "sess-1",
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "stream": True,
        }
        assert materialise(CREATE.validate_python(body)) == body

    def test_plain_request_has_no_reasoning_extras(self) -> None:
        body = CODEC.encode_request(ir.Request(
            model="m", messages=[ir.Message("user", [ir.Text("hi")])], temperature=0.3,
            response_format={"name": "out", "schema": {"type": "object"}, "strict": True}))
        assert body == {"model": "m", "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "hi"}]}], "temperature": 0.3,
            "text": {"format": {"type": "json_schema", "name": "out",
                                "schema": {"type": "object"}, "strict": True}},
            "store": False, "stream": False}

    def test_budget_becomes_effort(self) -> None:
        for budget, effort in ((512, "minimal"), (1024, "low"), (2048, "medium"),
                               (4096, "high"), (32000, "high")):
            body = CODEC.encode_request(ir.Request(
                model="m", reasoning=ir.ReasoningConfig(budget=budget)))
            assert body["reasoning"] == {"effort": effort}

    def test_round_trip(self) -> None:
        """What the codec encodes, it decodes back (foreign reasoning and tools aside)."""
        request = CODEC.decode_request({**CODEX_BODY, "store": None, "include": None})
        again = CODEC.decode_request(CODEC.encode_request(request))
        # the two leading system messages travel as one `instructions`
        assert again.messages[0] == ir.Message("system", [ir.Text(
            "You are Codex.\n\n<permissions>workspace-write</permissions>")])
        assert again.messages[1:] == request.messages[2:]
        assert [t.name for t in again.tools] == [t.name for t in request.tools]


ANSWER = {
    "id": "resp_abc", "object": "response", "created_at": 1, "status": "completed",
    "model": "gpt-5-codex", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [
            {"type": "summary_text", "text": "First."},
            {"type": "summary_text", "text": "Second."}], "encrypted_content": "enc"},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Calling.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell",
         "arguments": "{\"command\":[\"ls\"]}", "status": "completed"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"}],
    "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
              "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 12},
              "total_tokens": 130}}


class TestAnswers:
    """Non-stream answers, both ways."""

    def test_decode(self) -> None:
        response = CODEC.decode_response(ANSWER)
        assert response == ir.Response(
            id="resp_abc", model="gpt-5-codex", finish="tool_calls",
            parts=[ir.Reasoning("First.\n\nSecond.", ir.Opaque("responses", "enc"), id="rs_1"),
                   ir.Text("Calling."),
                   ir.ToolCall("call_1", "shell", "{\"command\":[\"ls\"]}")],
            usage=ir.Usage(100, 30, cached_tokens=60, reasoning_tokens=12))

    def test_decode_incomplete(self) -> None:
        body = {**ANSWER, "status": "incomplete", "output": [],
                "incomplete_details": {"reason": "max_output_tokens"}}
        assert CODEC.decode_response(body).finish == "length"
        with pytest.raises(CodecError, match="output: expected an array"):
            CODEC.decode_response({"id": "x"})

    def test_encode(self) -> None:
        response = ir.Response(
            id="chatcmpl-1", model="deepseek", finish="tool_calls",
            parts=[ir.Reasoning("thought"), ir.Text("Patching."),
                   ir.ToolCall("call_a", "apply_patch", "*** Begin Patch", kind="custom"),
                   ir.ToolCall("call_b", "shell", "")],
            usage=ir.Usage(10, 5, cached_tokens=4, reasoning_tokens=2))
        body = CODEC.encode_response(response, "my-alias")
        RESPONSE.validate_python(body)
        assert body["id"] == "resp_chatcmpl-1" and body["model"] == "my-alias"
        assert body["status"] == "completed"
        assert body["output"] == [
            {"id": "rs_chatcmpl-1_0", "type": "reasoning",
             "summary": [{"type": "summary_text", "text": "thought"}]},
            {"id": "msg_chatcmpl-1_1", "type": "message", "role": "assistant",
             "status": "completed",
             "content": [{"type": "output_text", "text": "Patching.", "annotations": []}]},
            {"id": "ctc_chatcmpl-1_2", "type": "custom_tool_call", "status": "completed",
             "call_id": "call_a", "name": "apply_patch", "input": "*** Begin Patch"},
            {"id": "fc_chatcmpl-1_3", "type": "function_call", "status": "completed",
             "call_id": "call_b", "name": "shell", "arguments": "{}"}]
        assert body["usage"] == {
            "input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 2}}

    def test_encode_length(self) -> None:
        body = CODEC.encode_response(ir.Response(id="r", model="m", finish="length",
                                                 parts=[ir.Text("cut")]), "m")
        RESPONSE.validate_python(body)
        assert body["status"] == "incomplete"
        assert body["incomplete_details"] == {"reason": "max_output_tokens"}


class TestStreamEncoder:
    """Neutral events become Codex's full event lifecycle, valid for the SDK."""

    def test_text(self) -> None:
        events = encode_stream([
            ir.Start("chatcmpl-7", "up"), ir.PartStart(0, ir.Text("")),
            ir.PartDelta(0, "Hel"), ir.PartDelta(0, "lo"), ir.PartEnd(0),
            ir.Finish("stop", ir.Usage(11, 2, cached_tokens=3))])
        assert [e["type"] for e in events] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added", "response.output_text.delta",
            "response.output_text.delta", "response.output_text.done",
            "response.content_part.done", "response.output_item.done", "response.completed"]
        assert events[0]["response"]["id"] == "resp_chatcmpl-7"
        assert events[0]["response"]["status"] == "in_progress"
        assert events[6]["text"] == "Hello"
        message = {"id": "msg_chatcmpl-7_0", "type": "message", "role": "assistant",
                   "status": "completed",
                   "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}
        assert events[8]["item"] == message
        done = events[9]["response"]
        assert done["id"] == "resp_chatcmpl-7" and done["status"] == "completed"
        assert done["model"] == "gw-model" and done["output"] == [message]
        assert done["usage"] == {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13,
                                 "input_tokens_details": {"cached_tokens": 3,
                                                          "cache_write_tokens": 0},
                                 "output_tokens_details": {"reasoning_tokens": 0}}
        RESPONSE.validate_python(done)

    def test_reasoning_and_tools(self) -> None:
        events = encode_stream([
            ir.Start("x", "up"),
            ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Think"),
            ir.PartDelta(0, "ing."),
            ir.PartSignature(0, ir.Opaque("responses", "sealed-envelope")), ir.PartEnd(0),
            ir.PartStart(1, ir.ToolCall("call_1", "shell")),
            ir.PartDelta(1, "{\"command\":"), ir.PartDelta(1, "[\"ls\"]}"),
            ir.PartStart(2, ir.ToolCall("call_2", "apply_patch", kind="custom")),
            ir.PartDelta(2, "*** Begin Patch\n"), ir.PartEnd(1), ir.PartEnd(2),
            ir.UsageUpdate(ir.Usage(50, 20, reasoning_tokens=7)),
            ir.Finish("tool_calls")])
        kinds = [e["type"] for e in events]
        assert kinds == [
            "response.created", "response.in_progress",
            "response.output_item.added", "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added", "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added", "response.custom_tool_call_input.delta",
            "response.function_call_arguments.done", "response.output_item.done",
            "response.custom_tool_call_input.done", "response.output_item.done",
            "response.completed"]
        done_items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        assert done_items == [
            {"id": "rs_x_0", "type": "reasoning", "encrypted_content": "sealed-envelope",
             "summary": [{"type": "summary_text", "text": "Thinking."}]},
            {"id": "fc_x_1", "type": "function_call", "status": "completed",
             "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
            {"id": "ctc_x_2", "type": "custom_tool_call", "status": "completed",
             "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch\n"}]
        assert events[14]["arguments"] == "{\"command\":[\"ls\"]}"
        assert events[16]["input"] == "*** Begin Patch\n"
        completed = events[-1]["response"]
        assert completed["output"] == done_items
        assert completed["usage"]["output_tokens_details"] == {"reasoning_tokens": 7}

    def test_foreign_signature_is_not_emitted(self) -> None:
        events = encode_stream([
            ir.Start("x", "up"), ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "t"),
            ir.PartSignature(0, ir.Opaque("messages", "anthropic-sig")), ir.PartEnd(0),
            ir.Finish("stop")])
        item = next(e["item"] for e in events if e["type"] == "response.output_item.done")
        assert "encrypted_content" not in item

    def test_namespaced_call(self) -> None:
        """A call to a flattened namespace tool goes back with its name and namespace."""
        request = CODEC.decode_request(CODEX_BODY)
        events = encode_stream([
            ir.Start("x", "up"),
            ir.PartStart(0, ir.ToolCall("call_7", "multi_agent_v1__close_agent")),
            ir.PartDelta(0, '{"target":"a1"}'), ir.PartEnd(0),
            ir.Finish("tool_calls")], request)
        added, done = events[2]["item"], events[5]["item"]
        assert (added["name"], added["namespace"]) == ("close_agent", "multi_agent_v1")
        assert done == {"id": "fc_x_0", "type": "function_call", "status": "completed",
                        "call_id": "call_7", "name": "close_agent",
                        "namespace": "multi_agent_v1", "arguments": '{"target":"a1"}'}

    def test_local_shell(self) -> None:
        """A local_shell call goes back to Codex as a local_shell_call item."""
        request = CODEC.decode_request({"model": "m", "input": "hi",
                                        "tools": [{"type": "local_shell"}]})
        events = encode_stream([
            ir.Start("x", "up"), ir.PartStart(0, ir.ToolCall("call_9", "local_shell")),
            ir.PartDelta(0, "{\"command\":[\"ls\",\"-a\"],"),
            ir.PartDelta(0, "\"workdir\":\"/w\"}"), ir.PartEnd(0),
            ir.Finish("tool_calls")], request)
        assert [e["type"] for e in events][2:] == [
            "response.output_item.added", "response.output_item.done", "response.completed"]
        assert events[3]["item"] == {
            "id": "lsh_x_0", "type": "local_shell_call", "status": "completed",
            "call_id": "call_9", "action": {"type": "exec", "command": ["ls", "-a"],
                                            "env": {}, "working_directory": "/w"}}

    def test_local_shell_with_bad_arguments_stays_a_function_call(self) -> None:
        request = CODEC.decode_request({"model": "m", "input": "hi",
                                        "tools": [{"type": "local_shell"}]})
        events = encode_stream([
            ir.Start("x", "up"), ir.PartStart(0, ir.ToolCall("call_9", "local_shell")),
            ir.PartDelta(0, "{\"cmd\":\"ls\"}"), ir.PartEnd(0),
            ir.Finish("tool_calls")], request)
        assert [e["type"] for e in events][2:] == [
            "response.output_item.added", "response.function_call_arguments.delta",
            "response.function_call_arguments.done", "response.output_item.done",
            "response.completed"]
        assert events[2]["item"]["arguments"] == ""
        assert events[5]["item"]["arguments"] == "{\"cmd\":\"ls\"}"

    def test_length_is_incomplete(self) -> None:
        events = encode_stream([ir.Start("x", "up"), ir.PartStart(0, ir.Text("")),
                                ir.PartDelta(0, "cut sh"), ir.Finish("length")])
        # the open message is closed before the terminal event
        assert [e["type"] for e in events][-4:] == [
            "response.output_text.done", "response.content_part.done",
            "response.output_item.done", "response.incomplete"]
        final = events[-1]["response"]
        assert final["status"] == "incomplete"
        assert final["incomplete_details"] == {"reason": "max_output_tokens"}
        assert final["usage"]["input_tokens"] == 42  # the estimate: upstream sent none

    @pytest.mark.parametrize(("kind", "code"), [
        ("context_length", "context_length_exceeded"),
        ("rate_limit", "rate_limit_exceeded"),
        ("insufficient_quota", "insufficient_quota"),
        ("overloaded", "server_error"),
        ("server_error", "server_error"),
    ])
    def test_failure(self, kind: str, code: str) -> None:
        events = encode_stream([ir.Start("x", "up"), ir.PartStart(0, ir.Text("")),
                                ir.PartDelta(0, "par"), ir.Failure("boom", kind)])  # type: ignore[arg-type]
        assert events[-1]["type"] == "response.failed"
        assert events[-1]["response"]["error"] == {"code": code, "message": "boom"}
        assert events[-1]["response"]["status"] == "failed"

    def test_cut_without_terminal_event_fails(self) -> None:
        events = encode_stream([ir.Start("x", "up"), ir.PartStart(0, ir.Text("")),
                                ir.PartDelta(0, "par")])
        assert events[-1]["type"] == "response.failed"
        assert encode_stream([])[-1]["type"] == "response.failed"

    def test_nothing_after_the_end(self) -> None:
        encoder = CODEC.stream_encoder("m", ir.Request(model="m"), 1)
        encoder.feed(ir.Start("x", "up"))
        assert encoder.feed(ir.Finish("stop"))
        assert encoder.feed(ir.PartStart(0, ir.Text(""))) == b""
        assert encoder.close() == b""

    def test_error_event(self) -> None:
        events = sse(CODEC.error_event("too long", "context_length"))
        assert [e["type"] for e in events] == ["response.failed"]
        validate_event(events[0])
        assert events[0]["response"]["error"] == {"code": "context_length_exceeded",
                                                  "message": "too long"}


def _created(rid: str = "resp_1") -> dict[str, Any]:
    return {"type": "response.created", "sequence_number": 0, "response": {
        "id": rid, "object": "response", "status": "in_progress", "model": "gpt-5-codex",
        "output": []}}


def _completed(usage: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "response.completed", "response": {
        "id": "resp_1", "status": "completed", "usage": usage, **extra}}


OPENAI_STREAM = [
    _created(),
    {"type": "response.in_progress", "response": {"id": "resp_1"}},
    {"type": "response.output_item.added", "output_index": 0,
     "item": {"id": "rs_1", "type": "reasoning", "summary": []}},
    {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0,
     "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
    {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0,
     "summary_index": 0, "delta": "Plan"},
    {"type": "response.reasoning_summary_text.done", "item_id": "rs_1", "output_index": 0,
     "summary_index": 0, "text": "Plan"},
    {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0,
     "summary_index": 1, "part": {"type": "summary_text", "text": ""}},
    {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0,
     "summary_index": 1, "delta": "Act"},
    {"type": "response.output_item.done", "output_index": 0, "item": {
        "id": "rs_1", "type": "reasoning", "encrypted_content": "gAAA",
        "summary": [{"type": "summary_text", "text": "Plan"},
                    {"type": "summary_text", "text": "Act"}]}},
    {"type": "response.output_item.added", "output_index": 1, "item": {
        "id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress",
        "content": []}},
    {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1,
     "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
    {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1,
     "content_index": 0, "delta": "On it"},
    {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1,
     "content_index": 0, "text": "On it."},
    {"type": "response.content_part.done", "item_id": "msg_1", "output_index": 1,
     "content_index": 0, "part": {"type": "output_text", "text": "On it.",
                                  "annotations": []}},
    {"type": "response.output_item.done", "output_index": 1, "item": {
        "id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": "On it.", "annotations": []}]}},
    {"type": "response.output_item.added", "output_index": 2, "item": {
        "id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "shell",
        "arguments": "", "status": "in_progress"}},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2,
     "delta": "{\"command\":"},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2,
     "delta": "[\"ls\"]}"},
    {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2,
     "arguments": "{\"command\":[\"ls\"]}"},
    {"type": "response.output_item.done", "output_index": 2, "item": {
        "id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "shell",
        "arguments": "{\"command\":[\"ls\"]}", "status": "completed"}},
    _completed({"input_tokens": 90, "input_tokens_details": {"cached_tokens": 80},
                "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 9},
                "total_tokens": 110}),
]


class TestStreamDecoder:
    """Upstream Responses events become neutral events; nothing lost, nothing twice."""

    def test_openai_stream(self) -> None:
        assert decode_stream(OPENAI_STREAM) == [
            ir.Start("resp_1", "gpt-5-codex"),
            ir.PartStart(0, ir.Reasoning(id="rs_1")), ir.PartDelta(0, "Plan"),
            ir.PartDelta(0, "\n\n"), ir.PartDelta(0, "Act"),
            ir.PartSignature(0, ir.Opaque("responses", "gAAA")), ir.PartEnd(0),
            ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "On it"), ir.PartDelta(1, "."),
            ir.PartEnd(1),
            ir.PartStart(2, ir.ToolCall("call_1", "shell")),
            ir.PartDelta(2, "{\"command\":"), ir.PartDelta(2, "[\"ls\"]}"), ir.PartEnd(2),
            ir.Finish("tool_calls", ir.Usage(90, 20, cached_tokens=80, reasoning_tokens=9)),
        ]

    def test_arguments_only_in_done_events(self) -> None:
        """LM Studio-style: no deltas, the arguments arrive in .done (LiteLLM #25321)."""
        events = decode_stream([
            _created(),
            {"type": "response.output_item.added", "output_index": 0, "item": {
                "type": "function_call", "call_id": "c1", "name": "read", "arguments": ""}},
            {"type": "response.function_call_arguments.done", "output_index": 0,
             "arguments": "{\"path\":\"a\"}"},
            {"type": "response.output_item.done", "output_index": 0, "item": {
                "type": "function_call", "call_id": "c1", "name": "read",
                "arguments": "{\"path\":\"a\"}"}},
            _completed()])
        assert events[1:] == [ir.PartStart(0, ir.ToolCall("c1", "read")),
                              ir.PartDelta(0, "{\"path\":\"a\"}"), ir.PartEnd(0),
                              ir.Finish("tool_calls")]

    def test_items_only_in_output_item_done(self) -> None:
        events = decode_stream([
            _created(),
            {"type": "response.output_item.done", "output_index": 0, "item": {
                "type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi"}]}},
            {"type": "response.output_item.done", "output_index": 1, "item": {
                "type": "custom_tool_call", "call_id": "c2", "name": "apply_patch",
                "input": "*** Begin Patch"}},
            {"type": "response.output_item.done", "output_index": 2, "item": {
                "type": "reasoning", "id": "rs_2", "summary": [],
                "content": [{"type": "reasoning_text", "text": "raw"}]}},
            _completed()])
        assert events[1:] == [
            ir.PartStart(0, ir.Text("")), ir.PartDelta(0, "Hi"), ir.PartEnd(0),
            ir.PartStart(1, ir.ToolCall("c2", "apply_patch", kind="custom")),
            ir.PartDelta(1, "*** Begin Patch"), ir.PartEnd(1),
            ir.PartStart(2, ir.Reasoning(id="rs_2")), ir.PartDelta(2, "raw"), ir.PartEnd(2),
            ir.Finish("tool_calls")]

    def test_custom_tool_deltas_and_raw_reasoning(self) -> None:
        events = decode_stream([
            _created(),
            {"type": "response.output_item.added", "output_index": 0,
             "item": {"type": "reasoning", "id": "rs_3", "summary": []}},
            {"type": "response.reasoning_text.delta", "output_index": 0, "content_index": 0,
             "delta": "hmm"},
            {"type": "response.reasoning_text.done", "output_index": 0, "content_index": 0,
             "text": "hmm."},
            {"type": "response.output_item.done", "output_index": 0,
             "item": {"type": "reasoning", "id": "rs_3", "summary": [],
                      "content": [{"type": "reasoning_text", "text": "hmm."}]}},
            {"type": "response.output_item.added", "output_index": 1, "item": {
                "type": "custom_tool_call", "call_id": "c3", "name": "apply_patch",
                "input": ""}},
            {"type": "response.custom_tool_call_input.delta", "output_index": 1,
             "delta": "*** Begin"},
            {"type": "response.custom_tool_call_input.done", "output_index": 1,
             "input": "*** Begin Patch"},
            {"type": "response.output_item.done", "output_index": 1, "item": {
                "type": "custom_tool_call", "call_id": "c3", "name": "apply_patch",
                "input": "*** Begin Patch"}},
            _completed()])
        assert events[1:] == [
            ir.PartStart(0, ir.Reasoning(id="rs_3")), ir.PartDelta(0, "hmm"),
            ir.PartDelta(0, "."), ir.PartEnd(0),
            ir.PartStart(1, ir.ToolCall("c3", "apply_patch", kind="custom")),
            ir.PartDelta(1, "*** Begin"), ir.PartDelta(1, " Patch"), ir.PartEnd(1),
            ir.Finish("tool_calls")]

    def test_incomplete_failed_error_and_cut(self) -> None:
        incomplete = decode_stream([_created(), {"type": "response.incomplete", "response": {
            "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}}])
        assert incomplete[-1] == ir.Finish("length")
        failed = decode_stream([_created(), {"type": "response.failed", "response": {
            "status": "failed", "error": {"code": "context_length_exceeded",
                                          "message": "too long"}}}])
        assert failed[-1] == ir.Failure("too long", "context_length")
        error = decode_stream([_created(), {"type": "error", "code": "rate_limit_exceeded",
                                            "message": "slow down", "sequence_number": 1}])
        assert error[-1] == ir.Failure("slow down", "rate_limit")
        cut = decode_stream(OPENAI_STREAM[:12])
        assert isinstance(cut[-1], ir.Failure)
        assert not any(isinstance(e, ir.Finish) for e in cut)

    def test_bad_data(self) -> None:
        decoder = CODEC.stream_decoder()
        with pytest.raises(CodecError, match="not JSON"):
            decoder.feed("response.created", b"{oops")

    def test_encoder_output_decodes_back(self) -> None:
        """Our own lifecycle, read by our decoder, gives back the same parts."""
        events: list[ir.Event] = [
            ir.Start("x", "up"), ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "t"),
            ir.PartSignature(0, ir.Opaque("responses", "env")), ir.PartEnd(0),
            ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "Hi"), ir.PartEnd(1),
            ir.PartStart(2, ir.ToolCall("c", "f")), ir.PartDelta(2, "{}"), ir.PartEnd(2),
            ir.Finish("tool_calls", ir.Usage(3, 4))]
        decoded = decode_stream(encode_stream(events))
        assert decoded == [
            ir.Start("resp_x", "gw-model"), ir.PartStart(0, ir.Reasoning(id="rs_x_0")),
            ir.PartDelta(0, "t"), ir.PartSignature(0, ir.Opaque("responses", "env")),
            ir.PartEnd(0), *events[5:11], ir.Finish("tool_calls", ir.Usage(3, 4))]


class TestErrors:
    """Error bodies both ways."""

    @pytest.mark.parametrize(("status", "body", "expected"), [
        (400, {"error": {"message": "too long", "type": "invalid_request_error",
                         "code": "context_length_exceeded"}}, ("too long", "context_length")),
        (429, {"error": {"message": "slow", "type": "requests", "code": None}},
         ("slow", "rate_limit")),
        (401, {"error": {"message": "bad key", "code": "invalid_api_key"}},
         ("bad key", "authentication")),
        (400, {"error": {"message": "bad", "type": "invalid_request_error"}},
         ("bad", "invalid_request")),
        (503, {"error": "down"}, ("down", "overloaded")),
    ])
    def test_decode(self, status: int, body: Any, expected: tuple[str, str]) -> None:
        assert CODEC.decode_error(status, orjson.dumps(body)) == expected

    def test_decode_not_json(self) -> None:
        assert CODEC.decode_error(502, b"<html>bad gateway</html>") == (
            "<html>bad gateway</html>", "server_error")
        assert CODEC.decode_error(500, b"") == ("upstream answered 500", "server_error")

    def test_encode(self) -> None:
        assert orjson.loads(CODEC.encode_error(429, "slow down", "rate_limit")) == {
            "error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                      "code": "rate_limit_exceeded"}}
        assert orjson.loads(CODEC.encode_error(502, "down", "server_error")) == {
            "error": {"message": "down", "type": "server_error", "param": None,
                      "code": "server_error"}}
