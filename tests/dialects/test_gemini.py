"""The Gemini codec: real-shaped bodies and streams, checked against google-genai's own types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.genai import types
from pydantic import TypeAdapter

from coderouter.dialects import gemini, ir
from coderouter.dialects.codec import CodecError
from coderouter.dialects.gemini import CODEC
from coderouter.dialects.gemini.fields import SKIP_SIGNATURE

SIG = "Cs4BAVSoXO4mTuYLv0fZ1xQ2ZQ=="  # what a Gemini thoughtSignature looks like (base64)
SIG2 = "CiQBcsjafFRfGP4gPtf0q2YE"

_CONTENTS = TypeAdapter(list[types.Content])


def valid_request(body: dict[str, Any]) -> None:
    """Fail unless *body* is a GenerateContentRequest google-genai can read (extra keys
    forbidden)."""
    _CONTENTS.validate_python(body["contents"])
    if "systemInstruction" in body:
        types.Content.model_validate(body["systemInstruction"])
    TypeAdapter(list[types.Tool]).validate_python(body.get("tools", []))
    if "toolConfig" in body:
        types.ToolConfig.model_validate(body["toolConfig"])
    if "generationConfig" in body:
        types.GenerationConfig.model_validate(body["generationConfig"])
    assert set(body) <= {"contents", "systemInstruction", "tools", "toolConfig",
                         "generationConfig"}


def chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON of each ``data:`` event of an ``alt=sse`` stream, each one checked as a
    GenerateContentResponse (or a Google error)."""
    assert raw.endswith(b"\r\n\r\n")
    out = []
    for event in raw.split(b"\r\n\r\n")[:-1]:
        assert event.startswith(b"data: ")
        obj = orjson.loads(event[6:])
        if "error" not in obj:
            types.GenerateContentResponse.model_validate(obj)
        out.append(obj)
    return out


# What the Gemini CLI sends on the second step of a tool loop (agents-wire §3.2).
CLI_REQUEST: dict[str, Any] = {
    "contents": [
        {"role": "user", "parts": [{"text": "List the files."}]},
        {"role": "model", "parts": [
            {"text": "I should list them.", "thought": True},
            {"functionCall": {"name": "list_directory", "args": {"path": "."}},
             "thoughtSignature": SIG},
            {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "list_directory",
                                  "response": {"output": "a.txt\nb.txt"}}},
            {"functionResponse": {"name": "read_file", "response": {"error": "denied"}}}]},
        {"role": "model", "parts": [
            {"functionCall": {"id": "c9", "name": "read_file", "args": {"path": "b.txt"}},
             "thoughtSignature": SKIP_SIGNATURE}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": "c9", "name": "read_file",
                                  "response": {"output": "hello"}}}]},
    ],
    "systemInstruction": {"role": "user", "parts": [{"text": "You are a CLI agent."}]},
    "tools": [{"functionDeclarations": [
        {"name": "list_directory", "description": "Lists a directory.",
         "parametersJsonSchema": {"type": "object", "properties": {"path": {"type": "string"}},
                                  "required": ["path"]}},
        {"name": "read_file", "description": "Reads a file.",
         "parameters": {"type": "OBJECT", "properties": {
             "path": {"type": "STRING", "nullable": True}}}}]},
        {"googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                             "allowedFunctionNames": ["read_file"]}},
    "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64, "maxOutputTokens": 2048,
                         "stopSequences": ["END"],
                         "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192}},
}


class TestDecodeRequest:
    def test_cli_request_fixture_is_valid_gemini(self) -> None:
        valid_request(CLI_REQUEST)

    def test_gemini_cli_tool_loop(self) -> None:
        """Ids are made from positions, responses find their calls by name, the placeholder
        signature is dropped, a real one kept."""
        request = gemini.decode_request({**CLI_REQUEST, "model": "gem-pro", "stream": True})
        assert request.model == "gem-pro" and request.stream is True
        assert request.messages == [
            ir.Message("system", [ir.Text("You are a CLI agent.")]),
            ir.Message("user", [ir.Text("List the files.")]),
            ir.Message("assistant", [
                ir.Reasoning(text="I should list them."),
                ir.ToolCall(id="call_1_1", name="list_directory", arguments='{"path":"."}',
                            signature=ir.Opaque("gemini", SIG)),
                ir.ToolCall(id="call_1_2", name="read_file", arguments='{"path":"a.txt"}')]),
            ir.Message("user", [
                ir.ToolResult(call_id="call_1_1", content="a.txt\nb.txt", name="list_directory"),
                ir.ToolResult(call_id="call_1_2", content="denied", is_error=True,
                              name="read_file")]),
            ir.Message("assistant", [
                ir.ToolCall(id="c9", name="read_file", arguments='{"path":"b.txt"}')]),
            ir.Message("user", [ir.ToolResult(call_id="c9", content="hello", name="read_file")]),
        ]

    def test_tools_settings_and_thinking(self) -> None:
        request = gemini.decode_request(CLI_REQUEST)
        assert request.tools == [
            ir.Tool(name="list_directory", description="Lists a directory.", parameters={
                "type": "object", "properties": {"path": {"type": "string"}},
                "required": ["path"]}),
            ir.Tool(name="read_file", description="Reads a file.", parameters={
                "type": "object", "properties": {"path": {"type": ["string", "null"]}}}),
            ir.Tool(name="googleSearch", kind="builtin", raw={"googleSearch": {}},
                    dialect="gemini")]
        assert request.tool_choice == ir.ToolChoice("tool", "read_file")
        assert (request.temperature, request.top_p, request.top_k, request.max_tokens,
                request.stop) == (1, 0.95, 64, 2048, ["END"])
        assert request.reasoning == ir.ReasoningConfig(budget=8192, summary=True)

    @pytest.mark.parametrize(("thinking", "expected"), [
        ({"thinkingBudget": 0}, ir.ReasoningConfig(enabled=False)),
        ({"thinkingBudget": -1, "includeThoughts": True}, ir.ReasoningConfig(summary=True)),
        ({"thinkingLevel": "HIGH"}, ir.ReasoningConfig(effort="high")),
        ({"thinking_level": "low"}, ir.ReasoningConfig(effort="low")),
    ])
    def test_thinking_config(self, thinking: dict[str, Any],
                             expected: ir.ReasoningConfig) -> None:
        body = {"contents": [], "generationConfig": {"thinkingConfig": thinking}}
        assert gemini.decode_request(body).reasoning == expected

    def test_media_and_structured_output(self) -> None:
        body = {"contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}},
            {"executableCode": {"language": "PYTHON", "code": "1"}}]}],
            "generationConfig": {"responseMimeType": "application/json",
                                 "responseJsonSchema": {"type": "object"}}}
        valid_request(body)
        request = gemini.decode_request(body)
        assert request.messages[0].parts == [
            ir.Image(media_type="image/png", data="iVBORw0KGgo="),
            ir.File(media_type="application/pdf", data="JVBERi0="),
            ir.Image(url="https://x.test/cat.jpg", media_type="image/jpeg")]
        assert request.response_format == {"name": "response", "schema": {"type": "object"}}

    @pytest.mark.parametrize(("body", "path"), [
        ({"contents": {"role": "user", "parts": "hi"}}, "contents[0].parts"),
        ({"contents": [{"role": "assistant", "parts": []}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"functionCall": {"name": "f", "args": [1]}}]}]},
         "contents[0].parts[0].functionCall.args"),
        ({"contents": [], "generationConfig": {"temperature": "hot"}},
         "generationConfig.temperature"),
        ({"contents": [], "tools": [{"functionDeclarations": [{"description": "x"}]}]},
         "tools[0].functionDeclarations[0]"),
    ])
    def test_wrong_shapes_name_their_path(self, body: dict[str, Any], path: str) -> None:
        with pytest.raises(CodecError, match=path.replace("[", r"\[").replace("]", r"\]")):
            gemini.decode_request(body)


def neutral_tool_turn(signature: ir.Opaque | None = None) -> ir.Request:
    """A Claude-style conversation: a tool call and its result (without the tool's name)."""
    return ir.Request(model="gemini-3-pro-preview", messages=[
        ir.Message("system", [ir.Text("Be brief.")]),
        ir.Message("user", [ir.Text("Read a.txt"),
                            ir.Image(url="data:image/png;base64,iVBORw0KGgo=")]),
        ir.Message("assistant", [
            ir.Reasoning(text="thinking", signature=ir.Opaque("messages", "anthropic-sig")),
            ir.Text("Reading."),
            ir.ToolCall(id="toolu_1", name="read", arguments='{"path": "a.txt"}',
                        signature=signature),
            ir.ToolCall(id="toolu_2", name="read", arguments="")]),
        ir.Message("user", [ir.ToolResult(call_id="toolu_1", content="hello")]),
        ir.Message("user", [ir.ToolResult(call_id="toolu_2", content=[ir.Text("err")],
                                          is_error=True)]),
    ], tools=[ir.Tool(name="read", description="Read a file", parameters={"type": "object"}),
              ir.Tool(name="web_search", kind="builtin", raw={"type": "web_search"},
                      dialect="responses")],
        tool_choice=ir.ToolChoice("required"), max_tokens=100, temperature=0.2,
        reasoning=ir.ReasoningConfig(effort="medium"))


class TestEncodeRequest:
    def test_foreign_turn_for_a_gemini_upstream(self) -> None:
        body = gemini.encode_request(neutral_tool_turn())
        valid_request(body)
        assert body == {
            "contents": [
                {"role": "user", "parts": [
                    {"text": "Read a.txt"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "model", "parts": [
                    {"text": "Reading."},
                    {"functionCall": {"id": "toolu_1", "name": "read",
                                      "args": {"path": "a.txt"}},
                     "thoughtSignature": SKIP_SIGNATURE},
                    {"functionCall": {"id": "toolu_2", "name": "read", "args": {}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "toolu_1", "name": "read",
                                          "response": {"output": "hello"}}},
                    {"functionResponse": {"id": "toolu_2", "name": "read",
                                          "response": {"error": "err"}}}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [
                {"name": "read", "description": "Read a file",
                 "parametersJsonSchema": {"type": "object"}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 100,
                                 "thinkingConfig": {"includeThoughts": True,
                                                    "thinkingLevel": "MEDIUM"}},
        }

    def test_own_signature_returned_on_its_call(self) -> None:
        body = gemini.encode_request(neutral_tool_turn(ir.Opaque("gemini", SIG)))
        call = body["contents"][1]["parts"][1]
        assert call["thoughtSignature"] == SIG

    def test_round_trip_keeps_ids_and_signatures(self) -> None:
        """A Gemini request decoded and encoded again keeps every call id and signature."""
        body = gemini.encode_request(gemini.decode_request(CLI_REQUEST))
        valid_request(body)
        model_turn = body["contents"][1]["parts"]
        assert model_turn == [
            {"functionCall": {"id": "call_1_1", "name": "list_directory",
                              "args": {"path": "."}}, "thoughtSignature": SIG},
            {"functionCall": {"id": "call_1_2", "name": "read_file", "args": {"path": "a.txt"}}}]
        # the second model turn had the placeholder; it gets it again, as a Gemini upstream needs
        assert body["contents"][3]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE
        assert [p["functionResponse"]["id"] for p in body["contents"][2]["parts"]] == \
            ["call_1_1", "call_1_2"]

    @pytest.mark.parametrize(("model", "reasoning", "thinking"), [
        ("gemini-2.5-flash", ir.ReasoningConfig(effort="low"),
         {"includeThoughts": True, "thinkingBudget": 1024}),
        ("gemini-2.5-flash", ir.ReasoningConfig(enabled=False), {"thinkingBudget": 0}),
        ("gemini-3-pro-preview", ir.ReasoningConfig(enabled=False), {"thinkingLevel": "LOW"}),
        ("gemini-3-flash", ir.ReasoningConfig(effort="minimal"),
         {"includeThoughts": True, "thinkingLevel": "MINIMAL"}),
        ("gemini-3-flash", ir.ReasoningConfig(budget=5000),
         {"includeThoughts": True, "thinkingBudget": 5000}),
    ])
    def test_thinking(self, model: str, reasoning: ir.ReasoningConfig,
                      thinking: dict[str, Any]) -> None:
        body = gemini.encode_request(ir.Request(model=model, reasoning=reasoning))
        assert body["generationConfig"] == {"thinkingConfig": thinking}
        types.GenerationConfig.model_validate(body["generationConfig"])

    def test_bad_arguments_are_the_callers_error(self) -> None:
        request = ir.Request(model="m", messages=[ir.Message("assistant", [
            ir.ToolCall(id="a", name="f", arguments="{not json")])])
        with pytest.raises(CodecError, match="not JSON"):
            gemini.encode_request(request)


GEMINI_ANSWER: dict[str, Any] = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me look.", "thought": True},
        {"text": "Looking."},
        {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}},
         "thoughtSignature": SIG},
        {"functionCall": {"name": "read_file", "args": {"path": "b.txt"}}}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20,
                      "totalTokenCount": 150, "cachedContentTokenCount": 40,
                      "thoughtsTokenCount": 30},
    "modelVersion": "gemini-2.5-pro", "responseId": "resp-abc",
}


class TestAnswers:
    def test_decode_answer(self) -> None:
        types.GenerateContentResponse.model_validate(GEMINI_ANSWER)
        answer = gemini.decode_response(GEMINI_ANSWER)
        first, second = answer.parts[2], answer.parts[3]
        assert isinstance(first, ir.ToolCall) and isinstance(second, ir.ToolCall)
        assert first.id.startswith("call_") and second.id.startswith("call_")
        assert first.id != second.id
        assert answer == ir.Response(id="resp-abc", model="gemini-2.5-pro", parts=[
            ir.Reasoning(text="Let me look."), ir.Text("Looking."),
            ir.ToolCall(id=first.id, name="read_file", arguments='{"path":"a.txt"}',
                        signature=ir.Opaque("gemini", SIG)),
            ir.ToolCall(id=second.id, name="read_file", arguments='{"path":"b.txt"}')],
            finish="tool_calls",
            usage=ir.Usage(input_tokens=100, output_tokens=50, cached_tokens=40,
                           reasoning_tokens=30))

    @pytest.mark.parametrize(("reason", "finish"), [
        ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"), ("STOP", "stop")])
    def test_finish_reasons(self, reason: str, finish: str) -> None:
        body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
                                "finishReason": reason}]}
        assert gemini.decode_response(body).finish == finish

    def test_blocked_prompt(self) -> None:
        body = {"promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
        answer = gemini.decode_response(body)
        assert (answer.parts, answer.finish, answer.usage) == (
            [], "content_filter", ir.Usage(input_tokens=7))

    def test_encode_answer_for_a_gemini_caller(self) -> None:
        """A foreign reasoning signature (sealed by the hub as Gemini's) rides on the first
        function call, where the Gemini CLI keeps it."""
        response = ir.Response(id="msg_1", model="claude", parts=[
            ir.Reasoning(text="hmm", signature=ir.Opaque("gemini", "RU5WRUxPUEU=")),
            ir.ToolCall(id="toolu_1", name="read", arguments='{"path":"a"}'),
            ir.ToolCall(id="toolu_2", name="read", arguments='{"path":"b"}')],
            finish="tool_calls",
            usage=ir.Usage(input_tokens=10, output_tokens=5, cached_tokens=2,
                           reasoning_tokens=3))
        body = gemini.encode_response(response, "my-alias")
        types.GenerateContentResponse.model_validate(body)
        assert body == {
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "hmm", "thought": True},
                {"functionCall": {"id": "toolu_1", "name": "read", "args": {"path": "a"}},
                 "thoughtSignature": "RU5WRUxPUEU="},
                {"functionCall": {"id": "toolu_2", "name": "read", "args": {"path": "b"}}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2,
                              "totalTokenCount": 15, "cachedContentTokenCount": 2,
                              "thoughtsTokenCount": 3},
            "modelVersion": "my-alias", "responseId": "msg_1"}

    def test_foreign_signatures_never_reach_the_caller(self) -> None:
        response = ir.Response(id="r", model="m", parts=[
            ir.Reasoning(text="t", signature=ir.Opaque("messages", "anthropic")),
            ir.Text("done", signature=ir.Opaque("responses", "enc"))])
        body = gemini.encode_response(response, "m")
        assert body["candidates"][0]["content"]["parts"] == [
            {"text": "t", "thought": True}, {"text": "done"}]


def sse(*objs: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(obj) for obj in objs]


def chunk(parts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    candidate.update({k: v for k, v in extra.items() if k == "finishReason"})
    out = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "r1"}
    out.update({k: v for k, v in extra.items() if k != "finishReason"})
    return out


USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 6, "totalTokenCount": 26,
         "thoughtsTokenCount": 8}


class TestStreamDecoder:
    def test_thoughts_text_calls_finish(self) -> None:
        decoder = CODEC.stream_decoder()
        events = []
        for data in sse(
                chunk([{"text": "Plan", "thought": True}]),
                chunk([{"text": " it.", "thought": True}]),
                chunk([{"text": "Hel"}]), chunk([{"text": "lo"}]),
                chunk([{"functionCall": {"id": "fc1", "name": "ls", "args": {"d": "."}},
                        "thoughtSignature": SIG}]),
                chunk([{"functionCall": {"name": "cat", "args": {}}}],
                      finishReason="STOP", usageMetadata=USAGE)):
            types.GenerateContentResponse.model_validate(orjson.loads(data))
            events += decoder.feed("", data)
        events += decoder.close()
        call_id = events[-5].part.id  # type: ignore[union-attr]
        usage = ir.Usage(input_tokens=12, output_tokens=14, reasoning_tokens=8)
        assert events == [
            ir.Start(id="r1", model="gemini-2.5-flash"),
            ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Plan"), ir.PartDelta(0, " it."),
            ir.PartEnd(0),
            ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "Hel"), ir.PartDelta(1, "lo"),
            ir.PartEnd(1),
            ir.PartStart(2, ir.ToolCall(id="fc1", name="ls", signature=ir.Opaque("gemini", SIG))),
            ir.PartDelta(2, '{"d":"."}'),
            ir.PartSignature(2, ir.Opaque("gemini", SIG)), ir.PartEnd(2),
            ir.PartStart(3, ir.ToolCall(id=call_id, name="cat")), ir.PartDelta(3, "{}"),
            ir.PartEnd(3),
            ir.UsageUpdate(usage), ir.Finish("tool_calls", usage)]
        assert call_id.startswith("call_")

    def test_signature_on_a_closing_empty_text(self) -> None:
        decoder = CODEC.stream_decoder()
        events = decoder.feed("", orjson.dumps(chunk([{"text": "Hi"}])))
        events += decoder.feed("", orjson.dumps(chunk(
            [{"text": "", "thoughtSignature": SIG}], finishReason="MAX_TOKENS")))
        assert events[1:] == [
            ir.PartStart(0, ir.Text("")), ir.PartDelta(0, "Hi"),
            ir.PartSignature(0, ir.Opaque("gemini", SIG)), ir.PartEnd(0),
            ir.Finish("length", None)]

    def test_cut_stream_fails(self) -> None:
        decoder = CODEC.stream_decoder()
        decoder.feed("", orjson.dumps(chunk([{"text": "Hi"}])))
        assert decoder.close() == [
            ir.Failure("upstream stream ended before its finishReason")]

    def test_error_chunk_fails(self) -> None:
        decoder = CODEC.stream_decoder()
        error = {"error": {"code": 429, "message": "Resource has been exhausted",
                           "status": "RESOURCE_EXHAUSTED"}}
        assert decoder.feed("", orjson.dumps(error)) == [
            ir.Failure("Resource has been exhausted", "rate_limit")]
        assert decoder.close() == []

    def test_not_json_is_a_codec_error(self) -> None:
        with pytest.raises(CodecError):
            CODEC.stream_decoder().feed("", b"{oops")


class TestStreamEncoder:
    def test_a_translated_tool_turn(self) -> None:
        """Anthropic-like events: thinking with a (sealed) signature, text, a call whose
        arguments arrive in pieces; the signature rides on the first following part."""
        encoder = CODEC.stream_encoder("alias", ir.Request(model="alias"), 40)
        events: list[ir.Event] = [
            ir.Start(id="msg_1", model="claude", usage=ir.Usage(input_tokens=40)),
            ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Think"),
            ir.PartSignature(0, ir.Opaque("gemini", "RU5W")), ir.PartEnd(0),
            ir.PartStart(1, ir.Text("")), ir.PartDelta(1, "Hi"), ir.PartEnd(1),
            ir.PartStart(2, ir.ToolCall(id="toolu_1", name="ls")),
            ir.PartDelta(2, '{"d":'), ir.PartDelta(2, '"."}'), ir.PartEnd(2),
            ir.UsageUpdate(ir.Usage(input_tokens=40, output_tokens=9)),
            ir.Finish("tool_calls", ir.Usage(input_tokens=40, output_tokens=9,
                                             reasoning_tokens=4)),
        ]
        raw = b"".join(encoder.feed(e) for e in events) + encoder.close()
        got = chunks(raw)
        meta = {"modelVersion": "alias", "responseId": "msg_1"}
        assert got == [
            {"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Think", "thought": True}]}, "index": 0}], **meta},
            {"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Hi", "thoughtSignature": "RU5W"}]}, "index": 0}], **meta},
            {"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"id": "toolu_1", "name": "ls", "args": {"d": "."}}}]},
                "index": 0}], **meta},
            {"candidates": [{"finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 5,
                               "totalTokenCount": 49, "thoughtsTokenCount": 4}, **meta},
        ]

    def test_failure_is_a_google_error_chunk(self) -> None:
        encoder = CODEC.stream_encoder("m", ir.Request(model="m"), 3)
        raw = encoder.feed(ir.PartStart(0, ir.Text(""))) + encoder.feed(ir.PartDelta(0, "a"))
        raw += encoder.feed(ir.Failure("upstream overloaded", "overloaded"))
        assert chunks(raw)[-1] == {"error": {"code": 503, "message": "upstream overloaded",
                                             "status": "UNAVAILABLE"}}
        assert encoder.feed(ir.Finish("stop")) == b""  # nothing after the end

    def test_usage_estimated_when_upstream_sent_none(self) -> None:
        encoder = CODEC.stream_encoder("m", ir.Request(model="m"), 33)
        last = chunks(encoder.feed(ir.Finish("length")))[-1]
        assert last["usageMetadata"] == {"promptTokenCount": 33, "candidatesTokenCount": 0,
                                         "totalTokenCount": 33}
        assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"


class TestErrors:
    @pytest.mark.parametrize(("status", "body", "expected"), [
        (429, b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}',
         ("Quota exceeded", "rate_limit")),
        (400, b'{"error":{"code":400,"message":"The input token count (2000000) exceeds the '
              b'maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}',
         ("The input token count (2000000) exceeds the maximum number of tokens allowed "
          "(1048576).", "context_length")),
        (403, b'[{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}]',
         ("denied", "authentication")),
        (503, b"<html>busy</html>", ("<html>busy</html>", "overloaded")),
        (500, b"", ("upstream answered 500", "server_error")),
    ])
    def test_decode(self, status: int, body: bytes, expected: tuple[str, str]) -> None:
        assert CODEC.decode_error(status, body) == expected

    def test_encode(self) -> None:
        assert orjson.loads(CODEC.encode_error(404, "no such model", "invalid_request")) == {
            "error": {"code": 404, "message": "no such model", "status": "NOT_FOUND"}}
        assert CODEC.error_event("boom", "server_error") == (
            b'data: {"error":{"code":500,"message":"boom","status":"INTERNAL"}}\r\n\r\n')


def test_in_the_registry() -> None:
    from coderouter.dialects.registry import CODECS
    assert CODECS["gemini"] is CODEC
    assert (CODEC.name, CODEC.custom_tools, CODEC.max_tool_name) == ("gemini", False, 64)


class TestSignaturesOnTheWire:
    def test_state_that_is_not_base64_survives_google_genai(self) -> None:
        """A sealed envelope (not base64) goes out as base64 google-genai accepts, and comes
        back from it, re-encoded by the SDK, as the same state."""
        sealed = "crenv1.eJyrVkosLcnPS8.x1Y2z3"
        response = ir.Response(id="r", model="m", parts=[
            ir.Reasoning(text="t", signature=ir.Opaque("gemini", sealed)),
            ir.ToolCall(id="c1", name="ls", arguments="{}")], finish="tool_calls")
        body = gemini.encode_response(response, "m")
        wire = body["candidates"][0]["content"]["parts"][1]["thoughtSignature"]
        assert wire != sealed
        parsed = types.GenerateContentResponse.model_validate(body)
        assert parsed.candidates is not None and parsed.candidates[0].content is not None
        history = parsed.candidates[0].content.model_dump(mode="json", by_alias=True,
                                                          exclude_none=True)
        assert history["parts"][1]["thoughtSignature"] == wire
        request = gemini.decode_request({"contents": [history]})
        thought, call = request.messages[0].parts
        assert thought == ir.Reasoning(text="t")
        assert isinstance(call, ir.ToolCall) and call.signature == ir.Opaque("gemini", sealed)

    def test_real_signatures_are_untouched(self) -> None:
        for sig in (SIG, SIG2, "YWJj", "a-_b"):
            body = gemini.encode_response(ir.Response(id="r", model="m", parts=[
                ir.Text("x", signature=ir.Opaque("gemini", sig))]), "m")
            assert body["candidates"][0]["content"]["parts"][0]["thoughtSignature"] == sig
            decoded = gemini.decode_response(body).parts[0]
            assert isinstance(decoded, ir.Text)
            assert decoded.signature == ir.Opaque("gemini", sig)


def test_the_gemini_clis_id_prefix_is_taken_off() -> None:
    """The Gemini CLI sends ids back as ``{name}__{id}``; the upstream gets its own id."""
    body = {"contents": [
        {"role": "model", "parts": [{"functionCall": {
            "id": "write_file__toolu_01A", "name": "write_file", "args": {}},
            "thoughtSignature": SIG}]},
        {"role": "user", "parts": [{"functionResponse": {
            "id": "write_file__toolu_01A", "name": "write_file",
            "response": {"output": "ok"}}}]}]}
    request = gemini.decode_request(body)
    assert request.messages == [
        ir.Message("assistant", [ir.ToolCall("toolu_01A", "write_file", "{}",
                                             signature=ir.Opaque("gemini", SIG))]),
        ir.Message("user", [ir.ToolResult("toolu_01A", "ok", name="write_file")])]
