"""The fake LLM's script: what to answer an agent, whatever dialect it speaks.

A run has steps, one prompt each (the second resumes the first's session). With no tool
result after the latest step's prompt yet, call the agent's file-writing tool to write that
step's file; once a tool result follows it, answer with final text. An agent that offers no
tools (aider) gets its edit format instead: the whole file in a fenced block under its name.
Pure functions: the dialect modules turn requests into a `Turn` and `Action`s into bytes.
"""

from __future__ import annotations

import json
import re
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

#: How the fake's summary of a compacted conversation starts; it names the steps asked so far,
#: so a resumed request after a compaction still replays them. A user text holding it (the
#: summary as the agent or the gateway puts it back) counts as a step's work done.
SUMMARY_MARK = "FAKE-SUMMARY"
#: Asks for a summary whose answer must be inside a tag (the agent retries or drops it
#: otherwise), and that tag: Claude Code's and qwen-code's.
TAGGED_SUMMARY_ASKS = {
    "Your task is to create a detailed summary of the conversation so far": "summary",
    "produce the <state_snapshot> XML": "state_snapshot"}
#: What a request asking for a summary says last: the gateway's compaction instruction,
#: Codex's local compaction prompt, Gemini CLI's two, and the tagged ones.
SUMMARY_ASKS = ("Context checkpoint.", "CONTEXT CHECKPOINT COMPACTION",
                "generate the updated <state_snapshot>", "Critically evaluate the <state_snapshot>",
                *TAGGED_SUMMARY_ASKS)

#: Tools that write a whole file, by name, as the agents name them.
WRITE_TOOLS = ("Write", "write_file", "write", "create_file", "editor")
PATH_KEYS = ("file_path", "filePath", "absolute_path", "path")
CONTENT_KEYS = ("content", "contents", "file_text", "text", "new_text")
#: Tools an agent's run ends by (Cline's): once the file is written, the answer calls it.
FINISH_TOOLS = ("submit_and_exit",)
SHELL_TOOLS = ("shell", "shell_command", "exec_command", "run_shell_command", "bash", "Bash")


@dataclass(frozen=True)
class Tool:
    """A tool the agent offered: a JSON-schema function, or a freeform (`custom`) one."""

    name: str
    kind: str  # "function" | "custom"
    schema: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One prompt of a run: write *content* to *filename*."""

    filename: str
    content: str

    @property
    def marker(self) -> str:
        """The text that finds this step in a conversation (the content's one line)."""
        return self.content.strip()


@dataclass(frozen=True)
class Task:
    """What one run must produce, one prompt (agent invocation) per step, in *workdir*."""

    workdir: str
    steps: tuple[Step, ...]

    def path(self, step: int) -> str:
        return f"{self.workdir.rstrip('/')}/{self.steps[step].filename}"

    def prompt(self, step: int) -> str:
        s = self.steps[step]
        return (f"Create the file {s.filename} in the current directory. Its entire content "
                f"must be this one line: {s.marker}")

    def step_in(self, text: str) -> int | None:
        """The last step whose marker *text* contains, if any."""
        found = [n for n, s in enumerate(self.steps) if s.marker in text]
        return found[-1] if found else None


@dataclass(frozen=True)
class Turn:
    """The parts of a request the script looks at: the tools offered, and the conversation's
    user texts and tool results in order, as ("user", text) and ("result", "")."""

    tools: tuple[Tool, ...]
    events: tuple[tuple[str, str], ...]


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


def current_step(turn: Turn, task: Task) -> tuple[int | None, bool]:
    """The step the latest prompt asks for, and whether a tool result came after it. A summary
    of the work so far answers the latest step it names (or the one before it)."""
    step: int | None = None
    answered = False
    for kind, text in summaries_apart(turn.events):
        found = task.step_in(text)
        if kind == "user" and found is not None and found != step:
            step, answered = found, False
        elif kind == "summary":
            step = found if found is not None else step
            answered = step is not None
        elif kind == "result" and step is not None:
            answered = True
    return step, answered


def summaries_apart(events: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """*events* with each line of a user text that holds a summary as its own ("summary",
    line) event (a translation may merge the summary with the user messages around it; Claude
    Code puts the files it read again before it)."""
    out: list[tuple[str, str]] = []
    for kind, text in events:
        if kind != "user" or SUMMARY_MARK not in text:
            out.append((kind, text))
            continue
        out += [("summary" if SUMMARY_MARK in line else "user", line)
                for line in text.splitlines()]
    return out


def replays(request: str, task: Task, step: int) -> bool:
    """Whether *request* (its body as text) carries every step before *step*: the step's prompt
    and tool call (its marker twice), or a summary of the work naming it."""
    summaries = "\n".join(re.findall(SUMMARY_MARK + r'[^"\\]*', request))
    return all(request.count(s.marker) >= 2 or s.marker in summaries
               for s in task.steps[:step])


def asked_summary(turn: Turn) -> str | None:
    """Which of `SUMMARY_ASKS` *turn*'s last user text makes (a compaction), if any."""
    said = [text for kind, text in turn.events if kind == "user"]
    return next((ask for ask in SUMMARY_ASKS if said and ask in said[-1]), None)


def summary(turn: Turn, task: Task) -> str:
    """The fake's summary: the mark and the markers of the steps asked so far."""
    asked = sorted({n for kind, text in turn.events if kind == "user"
                    for n, s in enumerate(task.steps) if s.marker in text})
    return f"{SUMMARY_MARK}: " + "; ".join(task.steps[n].marker for n in asked)


def decide(turn: Turn, task: Task | None) -> Action:
    """The scripted answer to *turn* for a run whose task is *task* (None: not a run's model)."""
    if task is None:
        return Say(SIDE_TEXT)
    ask = asked_summary(turn)
    if ask in TAGGED_SUMMARY_ASKS:
        tag = TAGGED_SUMMARY_ASKS[ask]
        return Say(f"<{tag}>\n{summary(turn, task)}\n</{tag}>")
    if ask is not None:
        return Say(summary(turn, task))
    step, answered = current_step(turn, task)
    if step is None:
        return Say(SIDE_TEXT)
    if answered:
        finish = next((t for t in turn.tools if t.name in FINISH_TOOLS), None)
        if finish is not None:
            return Call(finish, arguments={"summary": FINAL_TEXT, "verified": True})
        return Say(FINAL_TEXT)
    if turn.tools:
        call = write_call(turn.tools, task, step)
        return call if call is not None else Say(SIDE_TEXT)
    return Say(whole_file(task.steps[step]))


def whole_file(step: Step) -> str:
    """aider's "whole" edit format: the file name, then the whole file in a fence."""
    return f"{step.filename}\n```\n{step.content}```\n"


def write_call(tools: tuple[Tool, ...], task: Task, step: int) -> Call | None:
    """A call of the best file-writing tool among *tools* for *step*, or None if none can."""
    by_name = {tool.name: tool for tool in tools}
    for name in WRITE_TOOLS:
        tool = by_name.get(name)
        if tool is None or tool.kind != "function":
            continue
        props = properties(tool.schema)
        path_key = next((k for k in PATH_KEYS if k in props), None)
        content_key = next((k for k in CONTENT_KEYS if k in props), None)
        if path_key and content_key:
            return Call(tool, arguments={path_key: task.path(step),
                                         content_key: task.steps[step].content})
    patch = by_name.get("apply_patch")
    if patch is not None:
        text = add_file_patch(task.steps[step])
        if patch.kind == "custom":
            return Call(patch, input=text)
        props = properties(patch.schema)
        key = next(iter(props), "input")
        return Call(patch, arguments={key: text})
    for name in SHELL_TOOLS:
        tool = by_name.get(name)
        if tool is not None and tool.kind == "function":
            return shell_call(tool, task, step)
    return None


def add_file_patch(step: Step) -> str:
    """An apply_patch envelope adding the step's file (relative to the working directory)."""
    lines = "".join(f"+{line}\n" for line in step.content.splitlines())
    return f"*** Begin Patch\n*** Add File: {step.filename}\n{lines}*** End Patch\n"


def shell_call(tool: Tool, task: Task, step: int) -> Call:
    """Write the file with a shell command, shaped as *tool*'s schema wants the command."""
    content, path = task.steps[step].content, task.path(step)
    script = f"printf %s {shlex.quote(content)} > {shlex.quote(path)}"
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
