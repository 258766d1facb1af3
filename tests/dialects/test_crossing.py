"""What a Bridge changes on the way across: tool names shortened and restored, custom tools
wrapped and unwrapped, cache breakpoints added, foreign opaque state sealed into the caller's
slot (a Chat caller's tool-call id) and opened on the next turn."""

from __future__ import annotations

import orjson
import pytest

from coderouter.dialects import hub, ir
from coderouter.dialects.crossing import Down, short_name, up
from coderouter.dialects.envelope import Sealer, find

SEALER = Sealer(b"crossing tests secret, 32 bytes!")
MCP = "mcp__github__create_or_update_file_in_repository_with_a_commit_message_and_branch"


def apply_patch() -> ir.Tool:
    return ir.Tool("apply_patch", "Edit files.", kind="custom", format={
        "type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch"'})


def cross(request: ir.Request, client: str = "chat", upstream: str = "messages",
          limit: int = 64, custom_tools: bool = False) -> Down:
    return Down(up(request, client, upstream, max_tool_name=limit,
                   custom_tools=custom_tools, sealer=SEALER))


def test_long_tool_names_are_shortened_and_restored() -> None:
    """Names over the upstream's limit become prefix_hash (same every time), in tools,
    tool_choice and past calls; the answer's calls get the caller's name back."""
    request = ir.Request("m", tools=[ir.Tool(MCP), ir.Tool("Read")],
                         tool_choice=ir.ToolChoice("tool", MCP),
                         messages=[ir.Message("assistant", [ir.ToolCall("c1", MCP, "{}")])])
    down = cross(request, "messages", "chat")
    short = short_name(MCP, 64)
    assert len(short) == 64 and short.startswith(MCP[:55]) and short == short_name(MCP, 64)
    assert [t.name for t in request.tools] == [short, "Read"]
    assert request.tool_choice == ir.ToolChoice("tool", short)
    assert request.messages[0].parts == [ir.ToolCall("c1", short, "{}")]
    answer = ir.Response("r", "m", [ir.ToolCall("c2", short, '{"a":1}')])
    down.answer(answer)
    assert answer.parts == [ir.ToolCall("c2", MCP, '{"a":1}')]
    start = ir.PartStart(0, ir.ToolCall("c3", short))
    assert Down(up(ir.Request("m", tools=[ir.Tool(MCP)]), "messages", "chat",
                   max_tool_name=64, custom_tools=False, sealer=SEALER)).event(start) == [
        ir.PartStart(0, ir.ToolCall("c3", MCP))]


def test_custom_tools_are_wrapped_for_upstreams_without_them_and_unwrapped_back() -> None:
    """apply_patch becomes a function of one string, its grammar in the description; a past
    custom call sends its input wrapped; the answer's call is custom again, input raw."""
    request = ir.Request("m", tools=[apply_patch()], messages=[ir.Message("assistant", [
        ir.ToolCall("c1", "apply_patch", "*** Begin Patch\n", kind="custom")])])
    down = cross(request, "responses", "chat")
    [tool] = request.tools
    assert (tool.kind, tool.format) == ("function", None)
    assert tool.parameters == {"type": "object", "properties": {"input": {
        "type": "string", "description": "The tool's whole input, as freeform text."}},
        "required": ["input"]}
    assert tool.description == ('Edit files.\n\nThe input follows this lark grammar:\n'
                                'start: "*** Begin Patch"')
    assert request.messages[0].parts == [ir.ToolCall(
        "c1", "apply_patch", '{"input":"*** Begin Patch\\n"}')]
    answer = ir.Response("r", "m", [ir.ToolCall("c2", "apply_patch",
                                                '{"input": "*** Begin Patch\\n*** End"}')])
    down.answer(answer)
    assert answer.parts == [ir.ToolCall("c2", "apply_patch", "*** Begin Patch\n*** End",
                                        kind="custom")]


def test_a_streamed_custom_call_is_held_and_sent_unwrapped_at_its_end() -> None:
    down = cross(ir.Request("m", tools=[apply_patch()]), "responses", "chat")
    events = [ir.PartStart(0, ir.ToolCall("c", "apply_patch")), ir.PartDelta(0, '{"inp'),
              ir.PartDelta(0, 'ut":"a\\nb"}'), ir.PartEnd(0)]
    out = [e for event in events for e in down.event(event)]
    assert out == [ir.PartStart(0, ir.ToolCall("c", "apply_patch", kind="custom")),
                   ir.PartDelta(0, "a\nb"), ir.PartEnd(0)]


def test_custom_tools_stay_for_an_upstream_that_has_them() -> None:
    request = ir.Request("m", tools=[apply_patch()])
    cross(request, "responses", "chat", custom_tools=True)
    assert request.tools == [apply_patch()]


def test_breakpoints_for_messages_upstreams_from_dialects_without_them() -> None:
    """The last system text, the last tool, the last message's last text or tool result;
    none when the caller is Messages or already marked one."""
    def request() -> ir.Request:
        return ir.Request("m", tools=[ir.Tool("a"), ir.Tool("b")], messages=[
            ir.Message("system", [ir.Text("rules")]),
            ir.Message("user", [ir.Text("hi")]),
            ir.Message("user", [ir.ToolResult("c", "out"), ir.Image(url="https://x/i.png")])])
    marked = request()
    cross(marked, "chat", "messages")
    assert [t.cache for t in marked.tools] == [False, True]
    assert marked.messages[0].parts == [ir.Text("rules", cache=True)]
    assert marked.messages[1].parts == [ir.Text("hi")]
    assert marked.messages[2].parts[0] == ir.ToolResult("c", "out", cache=True)
    for client, upstream in (("messages", "chat"), ("chat", "responses")):
        untouched = request()
        cross(untouched, client, upstream)
        assert untouched == request()
    own = request()
    own.messages[1].parts[0].cache = True  # type: ignore[union-attr]
    cross(own, "responses", "messages")
    assert [t.cache for t in own.tools] == [False, False]


def test_foreign_reasoning_rides_in_the_callers_slot_and_comes_back_intact() -> None:
    """A Responses upstream's encrypted reasoning reaches a Messages caller as a thinking
    signature we sealed; sent back, it is the upstream's state again, text and id included."""
    answer = ir.Response("r", "m", [
        ir.Reasoning("Plan.", ir.Opaque("responses", "gAAAAenc"), id="rs_1"),
        ir.ToolCall("call_1", "ls", "{}")])
    cross(ir.Request("m"), "messages", "responses").answer(answer)
    sealed = answer.parts[0]
    assert isinstance(sealed, ir.Reasoning) and sealed.signature is not None
    assert sealed.signature.issuer == "messages" and find(sealed.signature.data) == 0
    assert answer.parts[1] == ir.ToolCall("call_1", "ls", "{}")

    echoed = ir.Reasoning("Plan (as the client shows it)", sealed.signature)
    request = ir.Request("m", messages=[ir.Message("assistant", [
        echoed, ir.ToolCall("call_1", "ls", "{}")])])
    cross(request, "messages", "responses")
    assert request.messages[0].parts[0] == ir.Reasoning(
        "Plan.", ir.Opaque("responses", "gAAAAenc"), id="rs_1")


def test_a_forged_or_foreign_envelope_is_dropped_not_forwarded() -> None:
    forged = Sealer(b"someone else's secret, 32 bytes!").seal({"i": "responses", "d": "x"})
    request = ir.Request("m", messages=[ir.Message("assistant", [
        ir.Reasoning("t", ir.Opaque("messages", forged)),
        ir.Reasoning("u", ir.Opaque("messages", "a-real-anthropic-signature"))])])
    cross(request, "messages", "responses")
    assert request.messages[0].parts == [
        ir.Reasoning("t"), ir.Reasoning("u", ir.Opaque("messages", "a-real-anthropic-signature"))]


def test_a_chat_caller_carries_the_turns_reasoning_on_its_first_tool_call_id() -> None:
    """Chat has no slot for a thinking signature: the first tool call's id carries the
    turn's sealed thinking (text, signature, redacted data); the next request gets the ids
    back and the thinking first in the turn, exactly as Anthropic issued it."""
    answer = ir.Response("r", "m", [
        ir.Reasoning("Think.", ir.Opaque("messages", "SIG")),
        ir.Reasoning(signature=ir.Opaque("messages", "RED"), redacted=True),
        ir.ToolCall("toolu_1", "ls", "{}"), ir.ToolCall("toolu_2", "ls", "{}")])
    cross(ir.Request("m"), "chat", "messages").answer(answer)
    first, second = answer.parts[2], answer.parts[3]
    assert isinstance(first, ir.ToolCall) and first.id.startswith("toolu_1.crenv1.")
    assert second == ir.ToolCall("toolu_2", "ls", "{}")
    assert answer.parts[0] == ir.Reasoning("Think.")  # the text still shows (reasoning_content)

    request = ir.Request("m", messages=[
        ir.Message("assistant", [ir.Reasoning("Think."), first, second]),
        ir.Message("user", [ir.ToolResult(first.id, "a"), ir.ToolResult("toolu_2", "b")])])
    cross(request, "chat", "messages")
    assert request.messages[0].parts == [
        ir.Reasoning("Think.", ir.Opaque("messages", "SIG")),
        ir.Reasoning(signature=ir.Opaque("messages", "RED"), redacted=True),
        ir.ToolCall("toolu_1", "ls", "{}"), ir.ToolCall("toolu_2", "ls", "{}")]
    assert [p.call_id for p in request.messages[1].parts] == [  # type: ignore[union-attr]
        "toolu_1", "toolu_2"]


def test_streamed_reasoning_is_sealed_at_its_signature_and_held_for_a_chat_caller() -> None:
    """Messages caller: the foreign signature event becomes a sealed one. Chat caller: it
    is held and the next tool call's id carries it."""
    events = [ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Hm"),
              ir.PartSignature(0, ir.Opaque("gemini", "THOUGHT")), ir.PartEnd(0),
              ir.PartStart(1, ir.ToolCall("c1", "ls")), ir.PartEnd(1)]
    down = cross(ir.Request("m"), "messages", "gemini")
    out = [e for event in events for e in down.event(event)]
    signature = out[2]
    assert isinstance(signature, ir.PartSignature) and signature.signature.issuer == "messages"
    assert SEALER.open(signature.signature.data) == {"t": "Hm", "i": "gemini", "d": "THOUGHT"}
    assert out[4] == ir.PartStart(1, ir.ToolCall("c1", "ls"))

    down = cross(ir.Request("m"), "chat", "gemini")
    out = [e for event in events for e in down.event(event)]
    assert not any(isinstance(e, ir.PartSignature) for e in out)
    start = out[-2]
    assert isinstance(start, ir.PartStart) and isinstance(start.part, ir.ToolCall)
    call_id, _, token = start.part.id.partition(".")
    assert call_id == "c1"
    assert SEALER.open(token) == {"r": [{"t": "Hm", "i": "gemini", "d": "THOUGHT"}]}


@pytest.mark.parametrize("client", ["chat", "messages", "responses"])
def test_a_calls_own_signature_rides_on_its_id(client: str) -> None:
    """Gemini signs function calls: every other caller carries that on the call's id."""
    answer = ir.Response("r", "m", [ir.ToolCall("c1", "ls", "{}", signature=ir.Opaque(
        "gemini", "CALLSIG"))])
    cross(ir.Request("m"), client, "gemini").answer(answer)
    [call] = answer.parts
    assert isinstance(call, ir.ToolCall) and call.signature is None
    request = ir.Request("m", messages=[ir.Message("assistant", [call])])
    cross(request, client, "gemini")
    assert request.messages[0].parts == [ir.ToolCall("c1", "ls", "{}", signature=ir.Opaque(
        "gemini", "CALLSIG"))]


def test_bridge_chat_caller_on_messages_upstream_round_trips_thinking() -> None:
    """Through the Bridge and both codecs: the chat answer's first tool call id carries the
    thinking; the next chat request sends Anthropic the thinking block byte for byte."""
    bridge = hub.bridge("chat", ("messages",))
    assert bridge is not None
    upstream_answer = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "thinking", "thinking": "Use ls.", "signature": "EqQBsig=="},
                    {"type": "tool_use", "id": "toolu_9", "name": "ls", "input": {}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 3}}
    ask = {"model": "m", "messages": [{"role": "user", "content": "list"}],
           "tools": [{"type": "function", "function": {"name": "ls"}}]}
    answer = bridge.translate(ask).response(upstream_answer)
    message = answer["choices"][0]["message"]
    assert message["reasoning_content"] == "Use ls."
    call_id = message["tool_calls"][0]["id"]
    assert call_id.startswith("toolu_9.crenv1.")
    sent = bridge.translate({**ask, "messages": [
        *ask["messages"], {k: v for k, v in message.items() if k != "reasoning_content"},
        {"role": "tool", "tool_call_id": call_id, "content": "a.py"}]}).request("m")
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use ls.", "signature": "EqQBsig=="},
            {"type": "tool_use", "id": "toolu_9", "name": "ls", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9",
                                      "content": "a.py", "cache_control": {
                                          "type": "ephemeral"}}]}]
    assert b"crenv1" not in orjson.dumps(sent)


def test_a_gemini_caller_carries_reasoning_on_the_part_after_it() -> None:
    """The Gemini CLI drops thought parts from the history it sends back and keeps
    signatures: reasoning for a Gemini caller is sealed even without a signature (DeepSeek's
    reasoning_content), and comes back from the signature of the call (or text) that carried
    it, ahead of the turn's parts, as the upstream issued it."""
    answer = ir.Response("r", "m", [
        ir.Reasoning("Plan."), ir.Text("Reading."), ir.ToolCall("call_1", "ls", "{}")])
    cross(ir.Request("m"), "gemini", "chat").answer(answer)
    sealed = answer.parts[0]
    assert isinstance(sealed, ir.Reasoning) and sealed.signature is not None
    assert sealed.signature.issuer == "gemini" and find(sealed.signature.data) == 0

    carried = ir.ToolCall("call_1", "ls", "{}", signature=sealed.signature)  # the CLI's turn
    request = ir.Request("m", messages=[ir.Message("assistant", [ir.Text("Reading."),
                                                                  carried])])
    cross(request, "gemini", "chat")
    assert request.messages[0].parts == [
        ir.Reasoning("Plan."), ir.Text("Reading."), ir.ToolCall("call_1", "ls", "{}")]

    thinking = ir.Response("r", "m", [ir.Reasoning("Think.", ir.Opaque("messages", "sig"))])
    cross(ir.Request("m"), "gemini", "messages").answer(thinking)
    signed = thinking.parts[0]
    assert isinstance(signed, ir.Reasoning) and signed.signature is not None
    request = ir.Request("m", messages=[ir.Message("assistant", [
        ir.Text("Done.", signature=signed.signature)])])
    cross(request, "gemini", "messages")
    assert request.messages[0].parts == [
        ir.Reasoning("Think.", ir.Opaque("messages", "sig")),
        ir.Text("Done.", cache=True)]  # the hub's breakpoint on the last message


def test_streamed_reasoning_for_a_gemini_caller_is_sealed_at_its_end() -> None:
    down = cross(ir.Request("m"), "gemini", "chat")
    events = [ir.PartStart(0, ir.Reasoning()), ir.PartDelta(0, "Pl"), ir.PartDelta(0, "an."),
              ir.PartEnd(0)]
    out = [e for event in events for e in down.event(event)]
    assert out[:3] == events[:3]
    signature, end = out[3:]
    assert isinstance(signature, ir.PartSignature) and end == ir.PartEnd(0)
    assert SEALER.open(signature.signature.data) == {"t": "Plan."}
