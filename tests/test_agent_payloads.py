"""What real coding agents send, end to end: Claude Code, Codex CLI and qwen-code bodies (as
agents-wire.md §1.3, §2.1 and §4 describe them) through the real gateway to fake upstreams,
asserting the exact JSON each upstream received and the answer the agent got.

The bodies carry what broke the gateway before: tool schemas with ``"type": [..., "null"]``
and properties named ``type``, null content, empty arrays, mid-conversation system messages,
``thinking``, ``output_config``, ``context_management``, beta tool fields, server tools and
content blocks Chat has no form for.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ALICE, Running, StartGateway, coding_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import USAGE, FakeUpstream

# -- Claude Code (Anthropic Messages) ----------------------------------------------------------

CLAUDE_CODE_USER_ID = orjson.dumps({
    "device_id": "4b1f6a3c9d0e8f7a2b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a",
    "account_uuid": "", "session_id": "0c5d2f0e-7a3b-4c1d-9e8f-6a5b4c3d2e1f"}).decode()
CLAUDE_CODE_HEADERS = {
    "Authorization": f"Bearer {ALICE}", "Content-Type": "application/json",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                      "context-management-2025-06-27,prompt-caching-scope-2026-01-05,"
                      "effort-2025-11-24,mid-conversation-tool-changes-2026-07",
    "anthropic-dangerous-direct-browser-access": "true", "x-app": "cli",
    "User-Agent": "claude-cli/2.1.181 (external, cli)",
    "x-claude-code-session-id": "0c5d2f0e-7a3b-4c1d-9e8f-6a5b4c3d2e1f",
    "x-stainless-lang": "js", "x-stainless-retry-count": "0",
}
BILLING = "x-anthropic-billing-header: cc_version=2.1.181.e4f; cc_entrypoint=cli; cch=9a1c2;"
IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
PROMPT = ("You are an interactive CLI tool that helps users with software engineering tasks. "
          "Use the instructions below and the tools available to you to assist the user.")
REMINDER = ("<system-reminder>\nAs you answer the user's questions, you can use the following "
            "context:\n# currentDate\nToday's date is 2026-12-01.\n</system-reminder>")
TASK = "Write hello.txt containing 'hi'"
WRITE_INPUT = {"file_path": "/tmp/work/hello.txt", "content": "hi"}
WRITTEN = "File created successfully at: /tmp/work/hello.txt"
MODE_NOTE = "The user switched the permission mode to acceptEdits."
BASH_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
    "properties": {"command": {"type": "string", "description": "The command to execute"},
                   "timeout": {"type": "number", "description": "Optional timeout in ms"},
                   "run_in_background": {"type": "boolean"}},
    "required": ["command"], "additionalProperties": False}
WRITE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
    "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["file_path", "content"], "additionalProperties": False}
DIAGNOSTICS_SCHEMA = {  # an MCP tool: a nullable parameter and a parameter named "type"
    "type": "object",
    "properties": {"uri": {"type": ["string", "null"]},
                   "type": {"type": "object", "properties": {"kind": {"type": "string"}}}}}


def claude_code_body(model: str) -> dict[str, Any]:
    """A current Claude Code turn after one Write tool call, with every Anthropic-only field."""
    return {
        "model": model,
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": BILLING},
            {"type": "text", "text": IDENTITY, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": REMINDER},
                {"type": "text", "text": TASK, "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants a file.",
                 "signature": "EqQBCkYIBxgCKkBsig"},
                {"type": "text", "text": "I'll create the file."},
                {"type": "tool_use", "id": "toolu_01A", "name": "Write", "input": WRITE_INPUT}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A",
                 "content": [{"type": "text", "text": WRITTEN}]}]},
            {"role": "system", "content": [{"type": "text", "text": MODE_NOTE}]},
            {"role": "user", "content": "Now say done."},
        ],
        "tools": [
            {"name": "Bash", "description": "Executes a bash command.",
             "input_schema": BASH_SCHEMA},
            {"name": "Write", "description": "Writes a file.", "input_schema": WRITE_SCHEMA,
             "strict": True, "input_examples": [WRITE_INPUT]},
            {"name": "mcp__ide__getDiagnostics", "description": "Language diagnostics.",
             "input_schema": DIAGNOSTICS_SCHEMA, "defer_loading": True,
             "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
            {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 5},
        ],
        "metadata": {"user_id": CLAUDE_CODE_USER_ID},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"},
                                         {"type": "clear_tool_uses_20250919"}]},
        "stream": True,
    }


def function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": name, "description": description, "parameters": parameters}}


#: What an OpenAI-compatible upstream must receive for `claude_code_body`.
CLAUDE_CODE_AS_CHAT = {
    "model": "upstream-model",
    "messages": [
        {"role": "system", "content": f"{BILLING}\n{IDENTITY}\n{PROMPT}"},
        {"role": "user", "content": f"{REMINDER}\n{TASK}"},
        {"role": "assistant", "content": "I'll create the file.", "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "Write", "arguments": orjson.dumps(WRITE_INPUT).decode()}}],
         # DeepSeek-style servers refuse a tool-call turn without its reasoning replayed
         "reasoning_content": "The user wants a file."},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": WRITTEN},
        {"role": "system", "content": MODE_NOTE},
        {"role": "user", "content": "Now say done."},
    ],
    "max_tokens": 32000,
    "reasoning_effort": "high",
    "user": "user_" + hashlib.sha256(CLAUDE_CODE_USER_ID.encode()).hexdigest()[:32],
    "stream": True,
    "stream_options": {"include_usage": True},
    "tools": [function("Bash", "Executes a bash command.", BASH_SCHEMA),
              function("Write", "Writes a file.", WRITE_SCHEMA),
              function("mcp__ide__getDiagnostics", "Language diagnostics.", DIAGNOSTICS_SCHEMA)],
}

# -- Codex CLI (OpenAI Responses) --------------------------------------------------------------

SHELL_SCHEMA = {
    "type": "object",
    "properties": {"command": {"type": "array", "items": {"type": "string"}},
                   "workdir": {"type": ["string", "null"]},
                   "timeout_ms": {"type": ["number", "null"]}},
    "required": ["command"], "additionalProperties": False}
PLAN_SCHEMA = {
    "type": "object",
    "properties": {"explanation": {"type": ["string", "null"]},
                   "plan": {"type": "array", "items": {
                       "type": "object",
                       "properties": {"step": {"type": "string"},
                                      "status": {"type": "string",
                                                 "enum": ["pending", "in_progress", "completed"]},
                                      "type": {"type": "object", "properties": {}}}}}}}
CODEX_BODY = {
    "model": "smart",
    "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the "
                    "Codex CLI on a user's computer.",
    "input": [
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": "<permissions instructions>workspace-write"
                                                    "</permissions instructions>"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>\n  <cwd>/tmp/work</cwd>\n"
                                           "</environment_context>"}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": TASK}]},
        {"type": "reasoning", "summary": [], "content": None,
         "encrypted_content": "gAAAAABpZ0x1c2VjcmV0"},
        {"type": "function_call", "name": "shell", "call_id": "call_1",
         "arguments": '{"command":["bash","-lc","printf hi > hello.txt"],"workdir":null}'},
        {"type": "function_call_output", "call_id": "call_1",
         "output": '{"output":"","metadata":{"exit_code":0,"duration_seconds":0.0}}'},
    ],
    "tools": [
        {"type": "function", "name": "shell", "description": "Runs a shell command.",
         "strict": False, "parameters": SHELL_SCHEMA},
        {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
         "format": {"type": "grammar", "syntax": "lark",
                    "definition": "start: begin_patch hunk+ end_patch\n"}},
        {"type": "local_shell"},
        {"type": "web_search"},
        {"type": "function", "name": "update_plan", "description": "Updates the task plan.",
         "strict": False, "parameters": PLAN_SCHEMA},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
    "text": {"verbosity": "medium"},
}

# -- qwen-code (OpenAI Chat Completions) -------------------------------------------------------

QWEN_SYSTEM = "You are Qwen Code, an interactive CLI agent specializing in software engineering."
TODO_SCHEMA = {
    "type": "object",
    "properties": {"todos": {"type": "array", "items": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "content": {"type": "string"},
                       "status": {"type": "string", "enum": ["pending", "completed"]},
                       "type": {"type": ["object", "null"],
                                "properties": {"kind": {"type": "string"}}}},
        "required": ["id", "content", "status"]}}},
    "required": ["todos"], "$schema": "http://json-schema.org/draft-07/schema#"}
READ_SCHEMA = {"type": "object",
               "properties": {"absolute_path": {"type": "string"},
                              "offset": {"type": ["number", "null"]},
                              "limit": {"type": ["number", "null"]}},
               "required": ["absolute_path"]}
QWEN_BODY = {
    "model": "smart",
    "messages": [
        {"role": "system", "content": QWEN_SYSTEM},
        {"role": "user", "content": TASK},
        {"role": "assistant", "content": None, "reasoning_content": "", "tool_calls": [
            {"id": "call_q1", "type": "function", "function": {
                "name": "write_file",
                "arguments": '{"file_path":"/tmp/work/hello.txt","content":"hi"}'}}]},
        {"role": "tool", "tool_call_id": "call_q1", "content": WRITTEN},
        {"role": "assistant", "content": "", "reasoning_content": "", "tool_calls": []},
        {"role": "user", "content": "Now say done."},
    ],
    "tools": [function("write_file", "Writes content to a file.", WRITE_SCHEMA),
              function("todo_write", "Manages the todo list.", TODO_SCHEMA),
              function("read_file", "Reads a file.", READ_SCHEMA)],
    "temperature": 0,
    "top_p": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
}
#: What an Anthropic upstream must receive for `QWEN_BODY`.
QWEN_AS_MESSAGES = {
    "model": "claude-upstream",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": TASK}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_q1", "name": "write_file", "input": WRITE_INPUT}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_q1", "content": WRITTEN},
            {"type": "text", "text": "Now say done.", "cache_control": {"type": "ephemeral"}}]},
    ],
    "max_tokens": 4096,
    # the hub adds cache breakpoints for a caller whose dialect has none: the system prompt,
    # the last tool, the last message
    "system": [{"type": "text", "text": QWEN_SYSTEM, "cache_control": {"type": "ephemeral"}}],
    "temperature": 0,
    "top_p": 1,
    "stream": True,
    "tools": [{"name": "write_file", "description": "Writes content to a file.",
               "input_schema": WRITE_SCHEMA},
              {"name": "todo_write", "description": "Manages the todo list.",
               "input_schema": TODO_SCHEMA},
              {"name": "read_file", "description": "Reads a file.", "input_schema": READ_SCHEMA,
               "cache_control": {"type": "ephemeral"}}],
}


# -- harness ------------------------------------------------------------------------------------


@pytest.fixture
async def agents_gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                         anthropic_upstream: FakeAnthropic, tmp_path: Path) -> Running:
    """`coding_config` plus `plain`: the OpenAI channel as a group without reasoning."""
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["model_groups"].append({"name": "plain", "reasoning": False, "targets": [
        {"channel": "up", "model": "upstream-model"}]})
    return await start_gateway(config)


async def post(gateway: Running, path: str, body: Any,
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST *body* (JSON-encoded unless bytes) and return (status, whole answer)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, data=data,
            headers=headers or {"Authorization": f"Bearer {ALICE}",
                                "Content-Type": "application/json"}) as resp:
        return resp.status, await resp.read()


def anthropic_events(raw: bytes) -> list[str]:
    """The event names of an Anthropic SSE answer."""
    return [line[7:].decode() for line in raw.split(b"\n") if line.startswith(b"event: ")]


# -- Claude Code --------------------------------------------------------------------------------


async def test_claude_code_turn_on_an_openai_channel(agents_gateway: Running,
                                                     upstream: FakeUpstream) -> None:
    """System blocks and a mid-conversation system message become system messages in place;
    thinking and output_config become reasoning_effort; Anthropic-only fields, beta tool fields
    and server tools stay behind; metadata.user_id (~150 characters of JSON, over what some
    servers take in ``user``) becomes a short stable hash; the answer is an Anthropic
    stream."""
    status, raw = await post(agents_gateway, "/v1/messages?beta=true",
                             claude_code_body("smart"), CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    [seen] = upstream.seen
    assert (seen.path, seen.query) == ("/v1/chat/completions", "")
    assert seen.json == CLAUDE_CODE_AS_CHAT
    assert b"device_id" not in seen.body
    assert anthropic_events(raw)[0] == "message_start"
    assert anthropic_events(raw)[-2:] == ["message_delta", "message_stop"]
    [row] = await agents_gateway.rows()
    assert (row["status"], row["channel"], row["prompt_tokens"], row["usage_source"]) == (
        200, "up", USAGE["prompt_tokens"], "upstream")


async def test_claude_code_turn_on_an_anthropic_channel_passes_through(
        agents_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """On an anthropic channel the same body arrives unchanged but for the model name."""
    body = claude_code_body("claude")
    status, raw = await post(agents_gateway, "/v1/messages?beta=true", body, CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    [seen] = anthropic_upstream.seen
    assert (seen.path, seen.query) == ("/v1/messages", "beta=true")
    assert seen.body == orjson.dumps({**body, "model": "claude-upstream"})
    assert anthropic_events(raw)[-1] == "message_stop"


async def test_claude_code_count_tokens_on_both_kinds_of_channel(
        agents_gateway: Running, anthropic_upstream: FakeAnthropic,
        upstream: FakeUpstream) -> None:
    """count_tokens with a Claude Code body: counted locally for an OpenAI route (no upstream
    call), passed through unchanged to an Anthropic one."""
    body = claude_code_body("smart")
    for key in ("max_tokens", "stream"):
        del body[key]
    status, raw = await post(agents_gateway, "/v1/messages/count_tokens?beta=true", body,
                             CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    assert orjson.loads(raw)["input_tokens"] > 0
    assert upstream.seen == []
    body["model"] = "claude"
    status, raw = await post(agents_gateway, "/v1/messages/count_tokens?beta=true", body,
                             CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    [seen] = anthropic_upstream.seen
    assert seen.body == orjson.dumps({**body, "model": "claude-upstream"})


async def test_claude_code_web_search_sub_request_sends_no_server_tool(
        agents_gateway: Running, upstream: FakeUpstream) -> None:
    """The WebSearch sub-request offers only a server tool and names it: Chat gets neither
    tools nor a tool_choice (which alone would be an upstream 400)."""
    body = {"model": "smart", "max_tokens": 8192, "stream": True,
            "system": [{"type": "text", "text": IDENTITY}],
            "messages": [{"role": "user",
                          "content": "Perform a web search for the query: aiohttp release"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
            "tool_choice": {"type": "tool", "name": "web_search"}}
    status, raw = await post(agents_gateway, "/v1/messages?beta=true", body, CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    assert upstream.seen[0].json == {
        "model": "upstream-model",
        "messages": [{"role": "system", "content": IDENTITY},
                     {"role": "user",
                      "content": "Perform a web search for the query: aiohttp release"}],
        "max_tokens": 8192, "stream": True, "stream_options": {"include_usage": True}}


async def test_history_with_server_tool_and_unknown_blocks_keeps_what_chat_can_carry(
        agents_gateway: Running, upstream: FakeUpstream) -> None:
    """Server tool calls, their results, redacted thinking and block types newer than the
    gateway are left out; the text around them is kept; null-free empty content is no 400."""
    body = {"model": "smart", "max_tokens": 1024, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Search, then answer."},
                                     {"type": "container_upload", "file_id": "file_1"}]},
        {"role": "assistant", "content": [
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
             "input": {"query": "aiohttp"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "url": "https://docs.aiohttp.org",
                 "title": "aiohttp", "encrypted_content": "EqgfCioIARgB"}]},
            {"type": "text", "text": "aiohttp is an async HTTP framework."}]},
        {"role": "assistant", "content": []},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": [
                {"type": "text", "text": "ok"}, {"type": "tool_reference", "tool_name": "x"}]},
            {"type": "text", "text": "Thanks."}]},
    ]}
    status, raw = await post(agents_gateway, "/v1/messages", body, CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    assert upstream.seen[0].json == {
        "model": "upstream-model",
        "messages": [{"role": "user", "content": "Search, then answer."},
                     {"role": "assistant", "content": "aiohttp is an async HTTP framework."},
                     {"role": "tool", "tool_call_id": "toolu_9", "content": "ok"},
                     {"role": "user", "content": "Thanks."}],
        "max_tokens": 1024}


@pytest.mark.parametrize(("thinking", "output_config", "effort"), [
    ({"type": "adaptive"}, None, None),
    ({"type": "adaptive", "display": "summarized"}, {"effort": "low"}, "low"),
    ({"type": "adaptive"}, {"effort": "medium"}, "medium"),
    ({"type": "adaptive"}, {"effort": "max"}, "high"),
    ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
    ({"type": "enabled", "budget_tokens": 2047}, None, "low"),
    ({"type": "enabled", "budget_tokens": 2048}, None, "medium"),
    ({"type": "enabled", "budget_tokens": 4096}, None, "high"),
    ({"type": "enabled", "budget_tokens": 8192}, None, "high"),
    ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
    ({"type": "disabled"}, None, None),
])
async def test_thinking_becomes_reasoning_effort(
        agents_gateway: Running, upstream: FakeUpstream, thinking: dict[str, Any],
        output_config: dict[str, Any] | None, effort: str | None) -> None:
    """Budgets map to low/medium/high (Chat's levels every server takes); adaptive takes
    output_config.effort or leaves the upstream's default; disabled sends nothing."""
    body: dict[str, Any] = {"model": "smart", "max_tokens": 32000, "thinking": thinking,
                            "messages": [{"role": "user", "content": "hi"}]}
    if output_config is not None:
        body["output_config"] = output_config
    status, raw = await post(agents_gateway, "/v1/messages", body, CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    expected = {"model": "upstream-model", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 32000}
    if effort is not None:
        expected["reasoning_effort"] = effort
    assert upstream.seen[0].json == expected


async def test_thinking_is_dropped_for_a_group_without_reasoning(
        agents_gateway: Running, upstream: FakeUpstream) -> None:
    """A group with ``reasoning: false``: the whole Claude Code turn without reasoning_effort
    and without replayed reasoning_content, which a model without reasoning may refuse."""
    status, raw = await post(agents_gateway, "/v1/messages?beta=true",
                             claude_code_body("plain"), CLAUDE_CODE_HEADERS)
    assert status == 200, raw
    expected = copy.deepcopy({k: v for k, v in CLAUDE_CODE_AS_CHAT.items()
                              if k != "reasoning_effort"})
    del expected["messages"][2]["reasoning_content"]
    assert upstream.seen[0].json == expected


# -- Codex CLI ----------------------------------------------------------------------------------


async def test_codex_turn_passes_through_on_an_openai_channel(agents_gateway: Running,
                                                              upstream: FakeUpstream) -> None:
    """Codex's Responses body (nullable parameters, a parameter named ``type``, custom and
    built-in tools, a reasoning item with null content) is forwarded unchanged but for the
    model, and the stream ends in response.completed."""
    status, raw = await post(agents_gateway, "/v1/responses", CODEX_BODY, {
        "Authorization": f"Bearer {ALICE}", "Content-Type": "application/json",
        "originator": "codex_cli_rs", "session-id": "0199a2b4", "thread-id": "0199a2b4"})
    assert status == 200, raw
    [seen] = upstream.seen
    assert (seen.path, seen.body) == (
        "/v1/responses", orjson.dumps({**CODEX_BODY, "model": "upstream-model"}))
    assert b"event: response.completed" in raw
    [row] = await agents_gateway.rows()
    assert (row["status"], row["total_tokens"]) == (200, 15)


# -- qwen-code ----------------------------------------------------------------------------------


async def test_qwen_code_turn_passes_through_on_an_openai_channel(
        agents_gateway: Running, upstream: FakeUpstream) -> None:
    """qwen-code's Chat body (null content, reasoning_content padding, an empty tool_calls
    list, nullable schema types) is forwarded unchanged but for the model."""
    status, raw = await post(agents_gateway, "/v1/chat/completions", QWEN_BODY)
    assert status == 200, raw
    [seen] = upstream.seen
    assert seen.body == orjson.dumps({**QWEN_BODY, "model": "upstream-model"})
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_qwen_code_turn_is_translated_for_an_anthropic_channel(
        agents_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """The same body for an Anthropic channel becomes the Messages request it stands for."""
    status, raw = await post(agents_gateway, "/v1/chat/completions",
                             {**QWEN_BODY, "model": "claude"})
    assert status == 200, raw
    [seen] = anthropic_upstream.seen
    assert seen.json == QWEN_AS_MESSAGES
    assert raw.endswith(b"data: [DONE]\n\n")


# -- every route, odd but valid JSON -------------------------------------------------------------

ODD_TOOL_SCHEMA = {"type": "object", "properties": {
    "a": {"type": ["string", "null"]}, "type": {"type": {"nested": "object"}},
    "b": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": None}], "tools": [
        function("f", "", ODD_TOOL_SCHEMA)], "functions": []}),
    ("/v1/completions", {"prompt": [], "logit_bias": {}}),
    ("/v1/embeddings", {"input": [[], [1, 2], {"type": ["x"]}]}),
    ("/v1/responses", {"input": [{"type": "message", "role": "user", "content": None},
                                 {"type": {"odd": True}}], "tools": [
        {"type": "function", "name": "f", "parameters": ODD_TOOL_SCHEMA}]}),
    ("/v1/messages", {"max_tokens": 10, "messages": [{"role": "user", "content": []}],
                      "tools": [{"name": "f", "input_schema": ODD_TOOL_SCHEMA}],
                      "system": [], "stop_sequences": [], "metadata": {"user_id": None}}),
    ("/v1/messages/count_tokens", {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": ["base64"]}}]}],
        "tools": [{"name": "f", "input_schema": ODD_TOOL_SCHEMA}]}),
])
async def test_odd_but_valid_json_is_never_a_500(agents_gateway: Running, path: str,
                                                 body: dict[str, Any]) -> None:
    """Type lists, objects under ``type``, null content and empty arrays on every route: the
    gateway answers (the fake upstream takes anything) and writes one row."""
    status, raw = await post(agents_gateway, path, {"model": "smart", **copy.deepcopy(body)})
    assert status == 200, raw
    [row] = await agents_gateway.rows()
    assert row["status"] == 200


# -- probes -------------------------------------------------------------------------------------


async def test_root_answers_get_and_head(agents_gateway: Running) -> None:
    """Claude Code probes ``HEAD /``: 200 without a key, as does ``GET /``."""
    async with aiohttp.ClientSession() as http:
        async with http.head(agents_gateway.url + "/") as resp:
            assert resp.status == 200
        async with http.get(agents_gateway.url + "/") as resp:
            assert (resp.status, await resp.json()) == (
                200, {"service": "coderouter", "status": "ok"})
    assert await agents_gateway.rows() == []


async def test_claude_codes_api_hello_probe_is_answered(agents_gateway: Running) -> None:
    """Claude Code preconnects with ``HEAD {ANTHROPIC_BASE_URL}/api/hello`` (its connectivity
    check asks ``GET`` of the same): 200 without a key, no usage row."""
    async with aiohttp.ClientSession() as http:
        async with http.head(agents_gateway.url + "/api/hello") as resp:
            assert resp.status == 200
        async with http.get(agents_gateway.url + "/api/hello") as resp:
            assert (resp.status, await resp.json()) == (
                200, {"service": "coderouter", "status": "ok"})
    assert await agents_gateway.rows() == []
