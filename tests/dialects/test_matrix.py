"""The conformance matrix, end to end through the real gateway: every client dialect (its
official SDK) on every upstream dialect (a scripted fake server), streamed and not, for each
scenario of `matrix.SCENARIOS`. Each request asserts the exact body the upstream received
(what a native caller of the upstream's dialect would have sent, carrying the upstream's own
ids and signatures back) and exactly what the client got (text, reasoning, tool calls,
finish, usage, or the error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALICE, StartGateway
from tests.dialects.matrix import (
    DIALECTS,
    SCENARIOS,
    UPSTREAM_MODEL,
    Assistant,
    Call,
    Entry,
    Outcome,
    Scenario,
    Step,
    next_conversation,
    with_answer_ids,
)
from tests.dialects.matrix import chat as _chat  # noqa: F401  (registers the dialect)
from tests.dialects.matrix import gemini as _gemini  # noqa: F401
from tests.dialects.matrix import messages as _messages  # noqa: F401
from tests.dialects.matrix import responses as _responses  # noqa: F401

#: Cells that do not pass yet, with the reason (strict: they must flip when fixed).
GAPS: dict[tuple[str, str, str], str] = {}


def cells() -> list[Any]:
    out = []
    for client in DIALECTS:
        for upstream in [name for name, d in DIALECTS.items() if d.upstream is not None]:
            for stream in (False, True):
                for name, scenario in SCENARIOS.items():
                    if scenario.stream_only and not stream:
                        continue
                    marks = []
                    gap = GAPS.get((client, upstream, name))
                    if gap:
                        marks.append(pytest.mark.xfail(reason=gap, strict=True))
                    out.append(pytest.param(client, upstream, stream, name, marks=marks,
                                            id=f"{client}-on-{upstream}-"
                                               f"{'stream' if stream else 'body'}-{name}"))
    return out


def expected_outcome(step: Step, shows_reasoning: bool, stream: bool) -> Outcome:
    """What the client must get for *step*, in neutral terms."""
    fault = step.fault
    if fault is not None and fault.status != 200:
        return Outcome(error=(fault.status, fault.message))
    if fault is not None and fault.cut is not None:
        return Outcome(error=(200, "upstream connection lost mid-stream"))
    answer = step.answer
    assert answer is not None
    return Outcome(
        assistant=Assistant(text=answer.text,
                            reasoning=answer.reasoning if shows_reasoning else "",
                            calls=tuple(Call("", name, args) for name, args in answer.calls)),
        finish="tool_calls" if answer.calls else "stop", usage=answer.usage)


def comparable(outcome: Outcome) -> tuple[Any, ...]:
    """An outcome without the parts that are the client's own view (call ids, signatures)."""
    calls = tuple((c.name, c.arguments) for c in outcome.assistant.calls)
    return (outcome.assistant.text, outcome.assistant.reasoning, outcome.finish, outcome.usage,
            outcome.error, calls if outcome.error is None else ())


@pytest.mark.parametrize(("client", "upstream", "stream", "scenario"), cells())
async def test_cell(client: str, upstream: str, stream: bool, scenario: str,
                    aiohttp_server: Any, start_gateway: StartGateway, tmp_path: Path) -> None:
    caller, origin = DIALECTS[client], DIALECTS[upstream]
    plan: Scenario = SCENARIOS[scenario]
    assert origin.upstream is not None
    fake = origin.upstream()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    if upstream not in ("messages", "gemini"):  # base URLs as each vendor's SDK takes them
        fake.url += "/v1"
    gateway = await start_gateway({
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [fake.channel("up")],
        "model_groups": [{"name": "matrix", "retry": {"attempts": 1},
                          "targets": [{"channel": "up", "model": UPSTREAM_MODEL}]}],
        "tokens": [{"name": "alice", "key": ALICE}]})
    history: tuple[Entry, ...] = ()
    for n, step in enumerate(plan.steps):
        conversation = next_conversation(plan, history, step)
        fake.queue.append(step)
        outcome = await caller.send(gateway.url, ALICE, conversation, stream)
        theirs = with_answer_ids(conversation, fake.answers[:sum(
            isinstance(e, Assistant) for e in conversation.entries)])
        assert fake.seen[n] == origin.expect(theirs, stream, client), f"request {n}"
        wanted = expected_outcome(step, caller.shows_reasoning, stream)
        assert comparable(outcome) == comparable(wanted), f"answer {n}"
        history = (*conversation.entries, outcome.assistant)
    assert len(fake.seen) == len(plan.steps)
    rows = await gateway.rows()
    assert len(rows) == len(plan.steps)
