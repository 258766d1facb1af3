"""The fake LLM's script: what to answer an agent, whatever dialect it speaks.

With no tool result in the conversation yet, call the agent's file-writing tool to write the
run's file; once a tool result is present, answer with final text. An agent that offers no
tools (aider) gets its edit format instead: the whole file in a fenced block under its name.
Pure functions: the dialect modules turn requests into a `Turn` and `Action`s into bytes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

#: Token usage the fake reports for every answer, in every dialect; the usage rows must match.
PROMPT_TOKENS = 321
COMPLETION_TOKENS = 54
TOTAL_TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS
#: What countTokens / count_tokens answer.
COUNTED_TOKENS = 77

FINAL_TEXT = "Done: the file is written."
SIDE_TEXT = "OK"

#: Tools that write a whole file, by name, as the agents name them.
WRITE_TOOLS = ("Write", "write_file", "write", "create_file")
PATH_KEYS = ("file_path", "filePath", "absolute_path", "path")
CONTENT_KEYS = ("content", "contents", "file_text", "text")
SHELL_TOOLS = ("shell", "shell_command", "exec_command", "run_shell_command", "bash", "Bash")


@dataclass(frozen=True)
class Tool:
    """A tool the agent offered: a JSON-schema function, or a freeform (`custom`) one."""

    name: str
    kind: str  # "function" | "custom"
    schema: dict[str, Any]


@dataclass(frozen=True)
class Task:
    """What one run must produce: *content* in *workdir*/*filename*."""

    workdir: str
    filename: str
    content: str

    @property
    def path(self) -> str:
        return f"{self.workdir.rstrip('/')}/{self.filename}"

    @property
    def prompt(self) -> str:
        return (f"Create the file {self.filename} in the current directory. Its entire content "
                f"must be this one line: {self.content.rstrip()}")


@dataclass(frozen=True)
class Turn:
    """The parts of a request the script looks at."""

    tools: tuple[Tool, ...]
    has_tool_result: bool
    user_text: str


@dataclass(frozen=True)
class Call:
    """Call *tool*: JSON *arguments* for a function, raw *input* for a custom tool."""

    tool: Tool
    arguments: dict[str, Any] | None = None
    input: str | None = None

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments if self.arguments is not None else {})


@dataclass(frozen=True)
class Say:
    text: str


Action = Call | Say


def decide(turn: Turn, task: Task | None) -> Action:
    """The scripted answer to *turn* for a run whose task is *task* (None: not a run's model)."""
    if task is None:
        return Say(SIDE_TEXT)
    if turn.has_tool_result:
        return Say(FINAL_TEXT)
    if turn.tools:
        call = write_call(turn.tools, task)
        return call if call is not None else Say(SIDE_TEXT)
    if task.content.strip() in turn.user_text:
        return Say(whole_file(task))
    return Say(SIDE_TEXT)


def whole_file(task: Task) -> str:
    """aider's "whole" edit format: the file name, then the whole file in a fence."""
    return f"{task.filename}\n```\n{task.content}```\n"


def write_call(tools: tuple[Tool, ...], task: Task) -> Call | None:
    """A call of the best file-writing tool among *tools*, or None if none can write."""
    by_name = {tool.name: tool for tool in tools}
    for name in WRITE_TOOLS:
        tool = by_name.get(name)
        if tool is None or tool.kind != "function":
            continue
        props = properties(tool.schema)
        path_key = next((k for k in PATH_KEYS if k in props), None)
        content_key = next((k for k in CONTENT_KEYS if k in props), None)
        if path_key and content_key:
            return Call(tool, arguments={path_key: task.path, content_key: task.content})
    patch = by_name.get("apply_patch")
    if patch is not None:
        text = add_file_patch(task)
        if patch.kind == "custom":
            return Call(patch, input=text)
        props = properties(patch.schema)
        key = next(iter(props), "input")
        return Call(patch, arguments={key: text})
    for name in SHELL_TOOLS:
        tool = by_name.get(name)
        if tool is not None and tool.kind == "function":
            return shell_call(tool, task)
    return None


def add_file_patch(task: Task) -> str:
    """An apply_patch envelope adding the task's file (relative to the working directory)."""
    lines = "".join(f"+{line}\n" for line in task.content.splitlines())
    return f"*** Begin Patch\n*** Add File: {task.filename}\n{lines}*** End Patch\n"


def shell_call(tool: Tool, task: Task) -> Call:
    """Write the file with a shell command, shaped as *tool*'s schema wants the command."""
    script = f"printf %s {shlex.quote(task.content)} > {shlex.quote(task.path)}"
    props = properties(tool.schema)
    key = next((k for k in ("command", "cmd") if k in props), "command")
    wanted = props.get(key, {}).get("type")
    command: str | list[str] = ["bash", "-lc", script] if wanted == "array" else script
    arguments: dict[str, Any] = {key: command}
    if "workdir" in props:
        arguments["workdir"] = task.workdir
    return Call(tool, arguments=arguments)


def properties(schema: Any) -> dict[str, Any]:
    """The object properties of a JSON schema (empty when it has none)."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def texts(value: Any) -> str:
    """Every string inside a JSON value, joined: a crude view of what a request says."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(texts(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(texts(v) for v in value.values())
    return ""
