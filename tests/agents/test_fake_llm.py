"""The agent matrix's fake LLM, read by the official SDKs: every dialect parses into their types.

No agent CLI is needed: these run with the rest of the suite, so a change that makes the fake
unfaithful to a wire format fails here before it confuses the matrix.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from tests.agents import script
from tests.agents.fake_llm import FakeLLM, Seen, conversation_items
from tests.agents.matrix import prefix_break
from tests.agents.runner import task_for

MODEL = "sdk-model"
KEY = "sk-fake-0123456789"
WRITE_SCHEMA = {"type": "object", "required": ["file_path", "content"], "properties": {
    "file_path": {"type": "string"}, "content": {"type": "string"}}}
USAGE = (script.PROMPT_TOKENS, script.COMPLETION_TOKENS, script.TOTAL_TOKENS)


@pytest.fixture
async def clients(fake: FakeLLM) -> AsyncIterator[Clients]:
    """The three SDKs' async clients on the fake, closed after the test."""
    made = Clients(
        openai.AsyncOpenAI(base_url=fake.url + "/openai/v1", api_key=KEY, max_retries=0),
        openai.AsyncOpenAI(base_url=fake.url + "/openai-chat/v1", api_key=KEY, max_retries=0),
        anthropic.AsyncAnthropic(base_url=fake.url + "/anthropic", api_key=KEY, max_retries=0),
        genai.Client(api_key=KEY, http_options=gtypes.HttpOptions(base_url=fake.url + "/gemini",
                                                          api_version="v1beta")))
    yield made
    await made.openai.close()
    await made.chat.close()
    await made.anthropic.close()
    await made.gemini.aio.aclose()


@dataclass
class Clients:
    openai: openai.AsyncOpenAI
    chat: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic
    gemini: genai.Client


@pytest.fixture
async def fake(aiohttp_server: Any, tmp_path: Path) -> FakeLLM:
    llm = FakeLLM()
    server = await aiohttp_server(llm.app)
    llm.url = str(server.make_url("")).rstrip("/")
    llm.register(MODEL, task_for(tmp_path, MODEL))
    return llm


def expected_write(fake: FakeLLM) -> dict[str, str]:
    task = fake.tasks[MODEL]
    return {"file_path": task.path(0), "content": task.steps[0].content}


def prompt(fake: FakeLLM, step: int = 0) -> str:
    return fake.tasks[MODEL].prompt(step)


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_completions_tool_round_trip(fake: FakeLLM, clients: Clients,
                                                stream: bool) -> None:
    client = clients.chat
    tools: Any = [{"type": "function", "function": {"name": "write_file",
                                                    "parameters": WRITE_SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": prompt(fake)}]

    async def ask() -> tuple[Any, Any]:
        if not stream:
            done = await client.chat.completions.create(model=MODEL, messages=messages,
                                                        tools=tools)
            return done.choices[0].message, done.usage
        chunks = [c async for c in await client.chat.completions.create(
            model=MODEL, messages=messages, tools=tools, stream=True,
            stream_options={"include_usage": True})]
        calls: dict[int, dict[str, str]] = {}
        text = ""
        for c in chunks[:-1]:
            delta = c.choices[0].delta
            text += delta.content or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function and call.function.name) or ""
                slot["arguments"] += (call.function and call.function.arguments) or ""
        assert chunks[-1].choices == []
        message = openai.types.chat.ChatCompletionMessage.model_validate({
            "role": "assistant", "content": text or None, "tool_calls": [
                {"id": v["id"], "type": "function",
                 "function": {"name": v["name"], "arguments": v["arguments"]}}
                for v in calls.values()] or None})
        return message, chunks[-1].usage

    message, usage = await ask()
    [call] = message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == \
        ("write_file", expected_write(fake))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == USAGE
    messages += [message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "written"}]
    message, usage = await ask()
    assert (message.content, message.tool_calls) == (script.FINAL_TEXT, None)


async def test_chat_completions_without_tools_answers_in_whole_file_format(
        fake: FakeLLM, clients: Clients) -> None:
    """aider's way: no tools, so the file comes back as a whole-file edit block."""
    done = await clients.chat.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt(fake)}])
    step = fake.tasks[MODEL].steps[0]
    assert done.choices[0].message.content == f"{step.filename}\n```\n{step.content}```\n"


RESPONSES_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added",
    "response.custom_tool_call_input.delta", "response.custom_tool_call_input.delta",
    "response.custom_tool_call_input.done", "response.output_item.done", "response.completed"]


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_custom_tool_round_trip(fake: FakeLLM, clients: Clients,
                                                stream: bool) -> None:
    """Codex's apply_patch as a freeform tool: the patch comes back as a custom_tool_call."""
    client = clients.openai
    tools: Any = [{"type": "custom", "name": "apply_patch", "description": "patch",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]
    items: list[Any] = [{"type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": prompt(fake)}]}]
    if stream:
        async with client.responses.stream(model=MODEL, input=items, tools=tools) as events:
            seen = [e.type async for e in events]
            done = await events.get_final_response()
        assert seen == RESPONSES_EVENTS
    else:
        done = await client.responses.create(model=MODEL, input=items, tools=tools)
    [call] = done.output
    assert call.type == "custom_tool_call"
    step = fake.tasks[MODEL].steps[0]
    assert call.input == (f"*** Begin Patch\n*** Add File: {step.filename}\n"
                          f"+{step.marker}\n*** End Patch\n")
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.total_tokens) == USAGE
    items += [call.model_dump(exclude_none=True),
              {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "ok"}]
    done = await client.responses.create(model=MODEL, input=items, tools=tools)
    assert done.output_text == script.FINAL_TEXT


@pytest.mark.parametrize("stream", [False, True])
async def test_messages_tool_round_trip(fake: FakeLLM, clients: Clients, stream: bool) -> None:
    client = clients.anthropic
    tools: Any = [{"name": "Write", "input_schema": WRITE_SCHEMA}]
    messages: list[Any] = [{"role": "user", "content": prompt(fake)}]

    async def ask() -> Any:
        if not stream:
            return await client.messages.create(model=MODEL, max_tokens=100,
                                                messages=messages, tools=tools)
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=messages,
                                          tools=tools) as events:
            return await events.get_final_message()

    message = await ask()
    [block] = message.content
    assert (block.type, block.name, block.input) == ("tool_use", "Write", expected_write(fake))
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == \
        ("tool_use", script.PROMPT_TOKENS, script.COMPLETION_TOKENS)
    messages += [{"role": "assistant", "content": [block.model_dump()]},
                 {"role": "user", "content": [
                     {"type": "tool_result", "tool_use_id": block.id, "content": "ok"}]}]
    message = await ask()
    assert [(b.type, b.text) for b in message.content] == [("text", script.FINAL_TEXT)]
    count = await client.messages.count_tokens(model=MODEL, messages=messages)
    assert count.input_tokens == script.COUNTED_TOKENS


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_function_round_trip(fake: FakeLLM, clients: Clients, stream: bool) -> None:
    client = clients.gemini
    config = gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[
        gtypes.FunctionDeclaration(name="write_file", parameters_json_schema=WRITE_SCHEMA)])])
    contents: list[Any] = [gtypes.Content(role="user", parts=[gtypes.Part(text=prompt(fake))])]

    async def ask() -> list[gtypes.GenerateContentResponse]:
        if not stream:
            return [await client.aio.models.generate_content(
                model=MODEL, contents=contents, config=config)]
        return [c async for c in await client.aio.models.generate_content_stream(
            model=MODEL, contents=contents, config=config)]

    answers = await ask()
    parts = [p for a in answers for p in a.candidates[0].content.parts]
    [part] = parts
    assert part.function_call is not None
    assert (part.function_call.name, part.function_call.args) == \
        ("write_file", expected_write(fake))
    usage = answers[-1].usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count,
            usage.total_token_count) == USAGE
    contents += [gtypes.Content(role="model", parts=[part]),
                 gtypes.Content(role="user", parts=[gtypes.Part(
                     function_response=gtypes.FunctionResponse(
                         name="write_file", response={"output": "ok"}))])]
    answers = await ask()
    assert "".join(a.text or "" for a in answers) == script.FINAL_TEXT
    counted = await client.aio.models.count_tokens(model=MODEL, contents=contents)
    assert counted.total_tokens == script.COUNTED_TOKENS


async def test_a_dialect_under_another_prefix_is_a_404(clients: Clients) -> None:
    """The chat-only prefix has no Responses API, as a chat-only vendor would not."""
    with pytest.raises(openai.NotFoundError):
        await clients.chat.responses.create(model=MODEL, input="hi")


async def test_gemini_refuses_an_unsigned_function_call_in_the_current_turn(
        clients: Clients) -> None:
    """As Gemini 3 does: the first functionCall of a model turn after the last user text must
    carry the signature the fake issued (or Gemini CLI's skip placeholder), and none may carry
    a signature it never issued; earlier turns are not checked."""
    call = gtypes.Part(function_call=gtypes.FunctionCall(name="write_file", args={}))
    result = gtypes.Part(function_response=gtypes.FunctionResponse(
        name="write_file", response={"output": "ok"}))

    def user(text: str) -> gtypes.Content:
        return gtypes.Content(role="user", parts=[gtypes.Part(text=text)])

    async def status(contents: Any) -> int:
        try:
            await clients.gemini.aio.models.generate_content(model=MODEL, contents=contents)
        except genai.errors.ClientError as refused:
            assert refused.code == 400
            return 400
        return 200

    current = [user("hi"), gtypes.Content(role="model", parts=[call]),
               gtypes.Content(role="user", parts=[result])]
    assert await status(current) == 400
    earlier = [user("hi"), gtypes.Content(role="model", parts=[call]),
               gtypes.Content(role="user", parts=[result]),
               gtypes.Content(role="model", parts=[gtypes.Part(text="done")]), user("again")]
    assert await status(earlier) == 200
    forged = gtypes.Part(function_call=call.function_call, thought_signature=b"forged")
    assert await status([user("hi"), gtypes.Content(role="model", parts=[forged]),
                         gtypes.Content(role="user", parts=[result])]) == 400


def test_prefix_break_finds_a_rewritten_item_of_the_same_conversation() -> None:
    """The matrix's prefix check: the request after a tool call must start with that call's
    request, item for item (breakpoints aside); side requests of another conversation and
    requests of the same length are not compared."""
    def seen(answer: str, *bodies: dict[str, Any]) -> Seen:
        raw = json.dumps({"system": "S", "messages": list(bodies)}).encode()
        return Seen("messages", "/v1/messages", MODEL, True, answer,
                    items=conversation_items("messages", raw))
    user = {"role": "user", "content": [{"type": "text", "text": "go",
                                         "cache_control": {"type": "ephemeral"}}]}
    call = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w",
                                              "input": {}}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
    side = seen("text", {"role": "user", "content": "title?"})
    stable = [seen("call w", user), side,
              seen("text", {**user, "content": [{"type": "text", "text": "go"}]}, call, result)]
    assert prefix_break(stable) is None
    rewritten = [seen("call w", user), side,
                 seen("text", {"role": "user", "content": "go"}, call, result)]
    broken = prefix_break(rewritten)
    assert broken is not None and broken.startswith("prefix: request 3 rewrote item 0")


def test_claude_codes_compaction_gets_a_tagged_summary_and_the_session_goes_on(
        tmp_path: Path) -> None:
    """Claude Code asks for a summary in its own words and retries one outside <summary>
    tags; after it, the files it read again come before the summary, and the step the summary
    names last is done; a new prompt after the summary is a new step."""
    task = task_for(tmp_path, MODEL)
    write = script.Tool("Write", "function", WRITE_SCHEMA)
    ask = "Your task is to create a detailed summary of the conversation so far, paying attention"
    asked = script.Turn((write,), (("user", task.prompt(0)), ("result", ""), ("user", ask)))
    answer = script.decide(asked, task)
    assert answer == script.Say(f"<summary>\n{script.SUMMARY_MARK}: {task.steps[0].marker}"
                                "\n</summary>")
    summary = (f"This session is being continued.\nSummary:\n{script.SUMMARY_MARK}: "
               f"{task.steps[0].marker}; {task.steps[1].marker}\n")
    after = script.Turn((write,), (("user", f"Result of calling the Read tool:\n"
                                            f"{task.steps[0].content}"), ("user", summary)))
    assert script.decide(after, task) == script.Say(script.FINAL_TEXT)
    assert script.current_step(after, task) == (1, True)
    resumed = script.Turn((write,), (("user", summary.replace(
        f"; {task.steps[1].marker}", "")), ("user", task.prompt(1))))
    assert script.current_step(resumed, task) == (1, False)


def test_gemini_clis_compression_gets_a_summary_that_replays_the_steps_it_names(
        tmp_path: Path) -> None:
    """Gemini CLI asks for a <state_snapshot>, then to check it: both get the summary; a later
    request carrying it (the marker once) still replays the steps it names."""
    task = task_for(tmp_path, MODEL)
    done = (("user", task.prompt(0)), ("result", ""))
    for ask in ("Generate a new <state_snapshot> based on the provided history.\n\nFirst, reason "
                "in your scratchpad. Then, generate the updated <state_snapshot>.",
                "Critically evaluate the <state_snapshot> you just generated."):
        answer = script.decide(script.Turn((), (*done, ("user", ask))), task)
        assert answer == script.Say(f"{script.SUMMARY_MARK}: {task.steps[0].marker}")
    after = json.dumps({"contents": [
        {"role": "user", "parts": [{"text": f"{script.SUMMARY_MARK}: {task.steps[0].marker}"}]},
        {"role": "user", "parts": [{"text": task.prompt(1)}]}]})
    assert script.replays(after, task, 1)
    assert not script.replays(json.dumps({"contents": [{"role": "user", "parts": [
        {"text": task.prompt(0)}, {"text": task.prompt(1)}]}]}), task, 1)
