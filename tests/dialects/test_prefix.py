"""Translation keeps upstream prompt caches warm: for every crossing of the conformance matrix
(client dialect x upstream dialect), a long agent conversation sent turn by turn through the
real gateway reaches the upstream as a growing byte prefix. Turn N+1's conversation list
(``messages``, ``input``, ``contents``) starts with turn N's, item for item and byte for byte,
and the system prompt and tools stay byte-identical.

The conversation has what coding agents send: a system prompt of several blocks, Claude
Code's ``<system-reminder>`` blocks in mid-conversation user turns, a Codex-style developer
message in mid-conversation, tool calls and their results, reasoning with signatures.

Anthropic's ``cache_control`` breakpoints are left out of the comparison: the gateway marks
the last message of each request, as Claude Code does, and a breakpoint is no part of the
cached prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ALICE, StartGateway
from tests.dialects.matrix import (
    DIALECTS,
    UPSTREAM_MODEL,
    Answer,
    Assistant,
    Entry,
    Json,
    Note,
    Scenario,
    Step,
    User,
    next_conversation,
)
from tests.dialects.matrix import chat as _chat  # noqa: F401  (registers the dialect)
from tests.dialects.matrix import gemini as _gemini  # noqa: F401
from tests.dialects.matrix import messages as _messages  # noqa: F401
from tests.dialects.matrix import responses as _responses  # noqa: F401

REMINDER = ("<system-reminder>\nAs you answer the user's questions, you can use the following "
            "context:\n# currentDate\nToday's date is 2026-12-07.\n</system-reminder>")
SESSION = Scenario("long_session", (
    Step((User("Weather in Paris?", reminder=REMINDER),), Answer(
        reasoning="The user wants Paris weather; call the tool.",
        calls=(("get_weather", {"city": "Paris"}),))),
    Step((), Answer(reasoning="It said sunny.", text="It is sunny in Paris.")),
    Step((Note("The user switched to plan mode: do not edit files."),
          User("And Tokyo and Oslo?", reminder="<system-reminder>\nPlan mode is active.\n"
                                               "</system-reminder>")),
         Answer(reasoning="Two cities, two calls.", calls=(
             ("get_weather", {"city": "Tokyo"}), ("get_weather", {"city": "Oslo"})))),
    Step((), Answer(reasoning="Both answered.", text="Sunny in both.")),
    Step((User("Thanks!"),), Answer(text="You're welcome.")),
    Step((User("Bye."),), Answer(text="Bye!")),
), tools=True, reasoning=True,
    system=("You are a coding agent.", "Use the tools you are given. Be brief."))

#: Where each upstream dialect keeps the conversation, and its system prompt.
CONVERSATION = {"chat": "messages", "messages": "messages", "responses": "input",
                "gemini": "contents"}
SYSTEM = {"chat": None, "messages": "system", "responses": "instructions",
          "gemini": "systemInstruction"}


def crossings() -> list[Any]:
    upstreams = [name for name, d in DIALECTS.items() if d.upstream is not None]
    return [pytest.param(client, upstream, id=f"{client}-on-{upstream}")
            for client in DIALECTS for upstream in upstreams]


def without_breakpoints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_breakpoints(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_breakpoints(v) for v in value]
    return value


def items(body: Json, upstream: str) -> list[bytes]:
    return [orjson.dumps(without_breakpoints(item)) for item in body[CONVERSATION[upstream]]]


def fixed(body: Json, upstream: str) -> list[bytes]:
    """What must not change between turns: the system prompt and the tools."""
    system = SYSTEM[upstream]
    return [orjson.dumps(without_breakpoints(body.get(key)))
            for key in (system, "tools") if key is not None]


@pytest.mark.parametrize(("client", "upstream"), crossings())
async def test_each_turn_extends_the_last_as_a_byte_prefix(
        client: str, upstream: str, aiohttp_server: Any, start_gateway: StartGateway,
        tmp_path: Path) -> None:
    caller, origin = DIALECTS[client], DIALECTS[upstream]
    assert origin.upstream is not None
    fake = origin.upstream()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    if upstream not in ("messages", "gemini"):
        fake.url += "/v1"
    gateway = await start_gateway({
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [fake.channel("up")],
        "model_groups": [{"name": "matrix", "retry": {"attempts": 1},
                          "targets": [{"channel": "up", "model": UPSTREAM_MODEL}]}],
        "tokens": [{"name": "alice", "key": ALICE}]})
    history: tuple[Entry, ...] = ()
    for step in SESSION.steps:
        conversation = next_conversation(SESSION, history, step)
        fake.queue.append(step)
        outcome = await caller.send(gateway.url, ALICE, conversation, True)
        assert outcome.error is None, outcome.error
        history = (*conversation.entries, outcome.assistant)
    bodies = fake.seen
    assert len(bodies) == len(SESSION.steps)
    assert all(isinstance(e, Assistant) for e in history[-1:])
    first_system = fixed(bodies[0], upstream)
    if SYSTEM[upstream] is not None:
        assert orjson.loads(first_system[0]), "the system prompt reached the upstream"
    for n in range(1, len(bodies)):
        before, after = items(bodies[n - 1], upstream), items(bodies[n], upstream)
        assert after[:len(before)] == before, f"turn {n + 1} rewrote turn {n}'s prefix"
        assert len(after) > len(before)
        assert fixed(bodies[n], upstream) == first_system, f"turn {n + 1}: system or tools"
