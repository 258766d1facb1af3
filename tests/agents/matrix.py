"""The agent matrix: which agent on which channel, what is expected, and running it all.

`CASES` is the table. A case that is not expected to pass yet carries an `Expect` saying why
(strict: it must fail until the fix lands; not strict: it may pass); when the fix lands, delete
the expectation from the case's line. `CHANNELS` is how the gateway reaches the fake LLM for
each channel kind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from coderouter.config import ConfigError, parse
from tests.agents.agents import AGENTS, Agent, Endpoint
from tests.agents.fake_llm import FakeLLM, Seen
from tests.agents.runner import Outcome, run_agent, task_for
from tests.agents.script import COMPLETION_TOKENS, PROMPT_TOKENS, TOTAL_TOKENS, Task
from tests.service import serving

UPSTREAM_KEY = "sk-fake-llm-upstream-key-0123456789"
CONTROL_KEY = "sk-fake-llm-direct-key-0123456789"
TIMEOUT = float(os.environ.get("CODEROUTER_AGENT_TIMEOUT", "180"))
JOBS = int(os.environ.get("CODEROUTER_AGENT_JOBS", "3"))


@dataclass(frozen=True)
class Expect:
    """Why a case is not expected to pass yet; *strict*: it must fail until the fix lands."""

    reason: str
    strict: bool = True


#: Channel kinds: the gateway's channel entry (type, base URL under the fake, other options).
CHANNELS: dict[str, dict[str, Any]] = {
    "anthropic": {"type": "anthropic", "path": "/anthropic"},
    "openai": {"type": "openai", "path": "/openai/v1", "responses": True},
    "openai-chat": {"type": "openai", "path": "/openai-chat/v1", "responses": False},
    "gemini": {"type": "gemini", "path": "/gemini"},
}
#: Where an agent's base URL points, by the dialect it speaks: the fake (control) and gateway.
FAKE_BASE = {"messages": "/anthropic", "responses": "/openai/v1", "chat": "/openai-chat/v1",
             "gemini": "/gemini"}
GATEWAY_BASE = {"messages": "", "responses": "/v1", "chat": "/v1", "gemini": ""}


@dataclass(frozen=True)
class Case:
    agent: str
    channel: str
    expect: Expect | None = None

    @property
    def id(self) -> str:
        return f"{self.agent}-via-{self.channel}"


CASES = [
    Case("claude-code", "anthropic"),
    Case("claude-code", "openai"),
    Case("claude-code", "openai-chat"),
    Case("claude-code", "gemini"),
    *(Case(codex, channel) for codex in ("codex", "codex-builtin", "codex-openai-http")
      for channel in CHANNELS),
    Case("gemini-cli", "anthropic"),
    Case("gemini-cli", "openai"),
    Case("gemini-cli", "openai-chat"),
    Case("gemini-cli", "gemini"),
    Case("opencode", "openai"),
    Case("opencode", "openai-chat"),
    Case("opencode", "anthropic"),
    Case("opencode", "gemini"),
    Case("qwen-code", "openai"),
    Case("qwen-code", "openai-chat"),
    Case("qwen-code", "anthropic"),
    Case("qwen-code", "gemini"),
    Case("aider", "openai"),
    Case("aider", "openai-chat"),
    Case("aider", "anthropic"),
    Case("aider", "gemini"),
    *(Case(f"pi-{dialect}", channel) for dialect in ("chat", "responses", "messages", "gemini")
      for channel in CHANNELS),
    *(Case(f"continue-{dialect}", channel) for dialect in ("chat", "messages", "gemini")
      for channel in CHANNELS),
    *(Case(f"kilo-{dialect}", channel) for dialect in ("chat", "responses", "messages", "gemini")
      for channel in CHANNELS),
    *(Case(f"cline-{dialect}", channel) for dialect in ("chat", "responses", "messages", "gemini")
      for channel in CHANNELS),
]


@dataclass
class Run:
    """One agent run, judged: *cause* is None when it passed, else the first reason it did not."""

    model: str
    outcomes: list[Outcome] = field(default_factory=list)  # one per step run
    seen: list[Seen] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    cause: str | None = "not run"

    @property
    def ok(self) -> bool:
        return self.cause is None

    @property
    def seconds(self) -> float:
        return sum(o.seconds for o in self.outcomes)


@dataclass
class Matrix:
    controls: dict[str, Run]
    cases: dict[str, Run]


def judge_agent(agent: Agent, run: Run, task: Task) -> str | None:
    """The first thing wrong with an agent run, step by step: its exit, the step's file, a
    tool round trip (aider: an edit) answering the step, and a resumed step's request carrying
    the earlier steps' prompts and tool calls; or None."""
    for step, out in enumerate(run.outcomes):
        which = f"step {step + 1}: "
        if out.timed_out:
            return f"{which}timed out after {out.seconds:.0f}s: {last_line(out)}"
        if out.exit_code != 0:
            return f"{which}exit {out.exit_code}: {last_line(out)}"
        expected = task.steps[step].content
        if out.written is None:
            return f"{which}no file written: {last_line(out)}"
        if out.written != expected:
            return f"{which}file holds {out.written[:80]!r}, expected {expected!r}"
        seen = [s for s in run.seen if s.step == step]
        answers = [s.answer for s in seen]
        if agent.name != "aider":
            calls = [n for n, a in enumerate(answers) if a.startswith("call ")]
            if not calls or not {"text", "finish"} & set(answers[calls[0] + 1:]):
                return f"{which}no tool round trip: the fake answered {answers}"
        elif "text" not in answers:
            return f"{which}the fake answered {answers}"
        if step and agent.resumes and not seen[0].replayed:
            return f"{which}the resumed session's first request lacks the earlier steps"
    return None


#: Agents whose session is made long enough to compact (`agents.CODEX_SETUPS`,
#: `agents.claude_code`, `agents.gemini_cli`, `agents.qwen_code`).
COMPACTING = frozenset({"codex", "codex-builtin", "codex-openai-http", "claude-code",
                        "gemini-cli", "qwen-code"})


def judge_compaction(agent: Agent, run: Run) -> str | None:
    """A compacting agent's run must have asked the fake (or the gateway) for a summary."""
    if agent.name in COMPACTING and run.outcomes and \
            not any(s.answer == "summary" for s in run.seen):
        return "the session never compacted"
    return None


#: The `client` each agent's usage rows must name (from its User-Agent).
CLIENTS = {"claude-code": "claude-code", "codex": "codex", "codex-builtin": "codex",
           "codex-openai-http": "codex", "gemini-cli": "gemini-cli", "opencode": "opencode",
           "qwen-code": "qwen-code"}


def judge_rows(run: Run, agent: str) -> str | None:
    """The first thing wrong with a gateway run's usage rows, or None."""
    bad = [r for r in run.rows if r["status"] != 200]
    if bad:
        r = bad[0]
        return f"HTTP {r['status']} on {r['endpoint']}: {(r['error'] or '')[:160]}"
    generated = [r for r in run.rows if "count" not in r["endpoint"].lower()]
    upstream = [s for s in run.seen if s.answer not in ("count", "list", "404")]
    if len(generated) != len(upstream):
        return (f"{len(generated)} usage rows for {len(upstream)} answered requests "
                f"({[r['endpoint'] for r in generated]})")
    for r in generated:
        got = (r["prompt_tokens"], r["completion_tokens"], r["total_tokens"])
        if got != (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS):
            return (f"usage row {r['endpoint']} has tokens {got} ({r['usage_source']}), the "
                    f"fake reported {(PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS)}")
        if not r["session"]:
            return f"usage row {r['endpoint']} names no session"
        if agent in CLIENTS and r["client"] != CLIENTS[agent]:
            return f"usage row {r['endpoint']} names client {r['client']!r}, not {agent!r}"
    return None


def prefix_break(seen: list[Seen]) -> str | None:
    """Where the request after a tool call's (the next one with the same system prompt and
    more items) did not start with that call's request, item for item, or None: the upstream's
    prompt cache would miss from there."""
    generations = [s for s in seen if s.items and s.answer.startswith("call ")]
    for before in generations:
        later = [s for s in seen[seen.index(before) + 1:]
                 if s.items and len(s.items) > len(before.items)
                 and s.items[0] == before.items[0]]
        if not later:
            continue
        after = later[0].items
        for k, item in enumerate(before.items):
            if after[k] != item:
                where = "the system prompt" if k == 0 else f"item {k - 1}"
                return (f"prefix: request {seen.index(later[0]) + 1} rewrote {where} of "
                        f"request {seen.index(before) + 1} ({item[:60]!r} -> {after[k][:60]!r})")
    return None


def last_line(out: Outcome) -> str:
    """The last non-empty line of stderr, else of stdout."""
    for text in (out.stderr, out.stdout):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return lines[-1][:200]
    return "(no output)"


def gateway_config(fake_url: str,
                   db: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The gateway's config for every case, the channels it rejects (why), and case keys."""
    rejected: dict[str, str] = {}
    channels = []
    for kind, spec in CHANNELS.items():
        entry = {"name": f"fake-{kind}", "type": spec["type"],
                 "base_url": fake_url + spec["path"], "keys": [UPSTREAM_KEY],
                 **{k: v for k, v in spec.items() if k not in ("type", "path")}}
        probe = {"database": {"path": str(db)}, "channels": [entry]}
        try:
            parse(yaml.safe_dump(probe))
        except ConfigError as exc:
            rejected[kind] = f"channel {kind!r} rejected by the config check: {exc}"
            continue
        channels.append(entry)
    keys = {case.id: f"sk-cr-{case.id}-{secrets.token_hex(12)}" for case in CASES}
    usable = [case for case in CASES if case.channel not in rejected]
    config = {
        "database": {"path": str(db)},
        "channels": channels,
        "model_groups": [{"name": case.id, "targets": [
            {"channel": f"fake-{case.channel}", "model": case.id}]} for case in usable],
        "tokens": [{"name": case.id, "key": keys[case.id], "models": [case.id]}
                   for case in usable],
    }
    return config, rejected, keys


async def run_matrix(agents: list[str] | None = None) -> Matrix:
    """Every control and every case (of *agents*, default all), bounded by `JOBS` at a time."""
    chosen = [a for a in AGENTS.values() if agents is None or a.name in agents]
    cases = [c for c in CASES if c.agent in {a.name for a in chosen}]
    fake = FakeLLM()
    runner = web.AppRunner(fake.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    root = Path(tempfile.mkdtemp(prefix="coderouter-agents-"))
    limit = asyncio.Semaphore(JOBS)
    controls = {a.name: Run(f"{a.name}-control") for a in chosen}
    results = {c.id: Run(c.id) for c in cases}
    try:
        config, rejected, keys = gateway_config(fake_url, root / "usage.sqlite")
        async with serving(config, root) as gateway:

            async def one(agent: Agent, run: Run, endpoint: Endpoint) -> None:
                async with limit:
                    task = task_for(root / run.model, run.model)
                    fake.register(run.model, task)
                    for step in range(len(task.steps)):
                        out = await run_agent(agent, endpoint, task, step, root / run.model,
                                              TIMEOUT)
                        run.outcomes.append(out)
                        if out.exit_code != 0:
                            break
                    run.seen = [s for s in fake.seen if s.model == run.model]
                    run.cause = judge_agent(agent, run, task) or judge_compaction(agent, run)

            jobs = [one(a, controls[a.name], Endpoint(fake_url + FAKE_BASE[a.dialect],
                                                      CONTROL_KEY, controls[a.name].model))
                    for a in chosen]
            for case in cases:
                if case.channel in rejected:
                    results[case.id].cause = rejected[case.channel]
                    continue
                agent = AGENTS[case.agent]
                jobs.append(one(agent, results[case.id], Endpoint(
                    gateway.url + GATEWAY_BASE[agent.dialect], keys[case.id], case.id)))
            await asyncio.gather(*jobs)
            gateway.signal(signal.SIGTERM)  # a graceful stop flushes every usage row
            await gateway.exit_code()
        with sqlite3.connect(root / "usage.sqlite") as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
        for case in cases:
            run = results[case.id]
            run.rows = [r for r in rows if r["token"] == case.id]
            if run.outcomes:
                run.cause = judge_rows(run, case.agent) or run.cause
            # the translation keeps a prefix the agent itself keeps (compared at the fake)
            if run.cause is None and prefix_break(controls[case.agent].seen) is None:
                run.cause = prefix_break(run.seen)
    finally:
        await runner.cleanup()
    return Matrix(controls, results)


def render(matrix: Matrix) -> str:
    """The matrix as a table: case, control, through gateway, expectation, first cause."""
    def mark(run: Run) -> str:
        if not run.outcomes:
            return "-"
        return f"{'pass' if run.ok else 'FAIL'} {run.seconds:4.0f}s"

    lines = [f"{'case':<28} {'control':<11} {'gateway':<11} {'expected':<9} first cause",
             "-" * 100]
    for case in CASES:
        run = matrix.cases.get(case.id)
        if run is None:
            continue
        control = matrix.controls[case.agent]
        expected = "pass" if case.expect is None else (
            "xfail" if case.expect.strict else "xfail?")
        cause = run.cause or ""
        if not control.ok:
            cause = f"control: {control.cause}" + (f" | gateway: {cause}" if cause else "")
        lines.append(f"{case.id:<28} {mark(control):<11} {mark(run):<11} {expected:<9} "
                     f"{cause}")
    return "\n".join(lines)
