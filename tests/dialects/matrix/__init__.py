"""The conformance matrix's kit: scenarios in neutral terms, and per dialect a client driver
(the official SDK) and a scripted fake upstream (an aiohttp app writing the wire format).

A dialect module (``chat``, ``messages``, ...) registers one `Dialect` in `DIALECTS`. Its
``build`` turns a neutral `Conversation` into the request body a client of that dialect sends;
the same function gives the body its upstream must receive: the hub translates the caller's
conversation, so whatever the caller's dialect, the upstream gets what a native caller of its
own dialect would have sent, carrying the upstream's own ids and signatures back (the
exceptions, such as cache breakpoints the hub adds, are the dialect's ``expected`` hook).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

Json = dict[str, Any]

MODEL = "matrix"            # the model group the client asks for
UPSTREAM_MODEL = "up-model"  # the target's model name the upstream sees
MAX_TOKENS = 8192
#: A 1x1 transparent PNG.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
       "RU5ErkJggg==")
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: Json


@dataclass(frozen=True)
class User:
    text: str
    image: bool = False
    #: A text block before *text* in the same turn, as Claude Code's ``<system-reminder>``s.
    reminder: str = ""


@dataclass(frozen=True)
class Note:
    """A system (developer) message in mid-conversation, as Codex and Chat agents send them;
    a client of a dialect without one sends it as a user turn."""

    text: str


@dataclass(frozen=True)
class Assistant:
    """An answer as one side sees it: ids and signatures are that side's."""

    text: str = ""
    reasoning: str = ""
    #: Opaque reasoning state in that side's slot (a thinking signature, ...); "" when none.
    signature: str = ""
    calls: tuple[Call, ...] = ()


@dataclass(frozen=True)
class Results:
    results: tuple[tuple[str, str], ...]  # (call id, output)


Entry = User | Assistant | Results | Note


@dataclass(frozen=True)
class Conversation:
    entries: tuple[Entry, ...]
    tools: bool = False
    reasoning: bool = False  # ask for reasoning (effort high, a 4096-token budget)
    #: The system prompt's blocks (one text where the dialect has no blocks).
    system: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What the scripted upstream answers (it mints its own ids and signature)."""

    text: str = ""
    reasoning: str = ""
    calls: tuple[tuple[str, Json], ...] = ()  # (name, arguments)
    usage: tuple[int, int, int] = (20, 7, 5)  # input (cached included), output, cached


@dataclass(frozen=True)
class Fault:
    """The upstream fails: an error *status* with *message*, or a stream cut after *cut*
    events (the connection closes)."""

    status: int = 200
    message: str = ""
    cut: int | None = None


@dataclass
class Outcome:
    """What a client got, in neutral terms."""

    assistant: Assistant = field(default_factory=Assistant)
    finish: str = ""  # stop | length | tool_calls
    usage: tuple[int, int, int] | None = None
    error: tuple[int, str] | None = None  # (HTTP status, message); status 200 mid-stream
    #: Every stream event the client received (decoded JSON), or the one answer body.
    events: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One request of a scenario: the conversation so far is built from the previous steps'
    outcomes plus *ask*; the upstream answers *answer* (or fails with *fault*)."""

    ask: tuple[Entry, ...]
    answer: Answer | None = None
    fault: Fault | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    tools: bool = False
    reasoning: bool = False
    stream_only: bool = False
    system: tuple[str, ...] = ()


def results_for(previous: Assistant, output: str = "sunny") -> Results:
    return Results(tuple((c.id, f"{output} in {c.arguments.get('city')}")
                         for c in previous.calls))


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("text", (Step((User("Say hello."),), Answer(text="Hello there!")),)),
    Scenario("tool_round_trip", (
        Step((User("Weather in Paris?"),), Answer(calls=(("get_weather", {"city": "Paris"}),))),
        Step((), Answer(text="It is sunny in Paris.")),
    ), tools=True),
    Scenario("parallel_tool_calls", (
        Step((User("Weather in Paris and Tokyo?"),), Answer(calls=(
            ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})))),
        Step((), Answer(text="Sunny in both.")),
    ), tools=True),
    Scenario("image", (Step((User("What is this?", image=True),),
                            Answer(text="A transparent pixel.")),)),
    Scenario("reasoning_round_trip", (
        Step((User("Weather in Paris?"),), Answer(
            reasoning="The user wants Paris weather; call the tool.",
            calls=(("get_weather", {"city": "Paris"}),), usage=(30, 12, 0))),
        Step((), Answer(reasoning="It said sunny.", text="Sunny in Paris.")),
    ), tools=True, reasoning=True),
    Scenario("upstream_error", (Step((User("Say hello."),),
                                     fault=Fault(400, "fake upstream: bad request")),)),
    Scenario("stream_cut", (Step((User("Say hello."),), Answer(text="Hello there!"),
                                 fault=Fault(cut=3)),), stream_only=True),
)}


def next_conversation(scenario: Scenario, history: tuple[Entry, ...], step: Step) -> Conversation:
    """The conversation of *step*: the history, then the step's ask, or tool results for the
    calls of the last answer when the step asks nothing."""
    entries = history + step.ask
    if not step.ask and history and isinstance(history[-1], Assistant):
        entries = (*history, results_for(history[-1]))
    return Conversation(entries, tools=scenario.tools, reasoning=scenario.reasoning,
                        system=scenario.system)


def with_answer_ids(conversation: Conversation, answers: list[Assistant]) -> Conversation:
    """*conversation* as the upstream must see it: each assistant entry replaced by the
    upstream's own view of that answer (its ids and signatures), results re-keyed to match."""
    ids: dict[str, str] = {}
    entries: list[Entry] = []
    own = iter(answers)
    for entry in conversation.entries:
        if isinstance(entry, Assistant):
            mine = next(own)
            ids.update({c.id: m.id for c, m in zip(entry.calls, mine.calls, strict=True)})
            entries.append(mine)
        elif isinstance(entry, Results):
            entries.append(Results(tuple((ids.get(i, i), out) for i, out in entry.results)))
        else:
            entries.append(entry)
    return replace(conversation, entries=tuple(entries))


@dataclass
class Dialect:
    """One wire dialect's part in the matrix."""

    name: str
    #: The request body a client of this dialect sends for a conversation.
    build: Callable[[Conversation, bool], Json]
    #: Send *body* through the gateway at *url* with *key* using the official SDK.
    send: Callable[[str, str, Conversation, bool], Awaitable[Outcome]]
    #: The upstream fake: an aiohttp app factory, and the channel config that reaches it;
    #: None while the dialect is in the matrix as a client only.
    upstream: Callable[[], FakeUpstream] | None
    #: What the upstream must receive, given the conversation in its own terms and the
    #: caller's dialect; defaults to ``build`` with the target's model.
    expected: Callable[[Conversation, bool, str], Json] | None = None
    #: Whether answers in this dialect show reasoning text to the caller.
    shows_reasoning: bool = True

    def expect(self, conversation: Conversation, stream: bool, client: str) -> Json:
        if self.expected is not None:
            return self.expected(conversation, stream, client)
        return {**self.build(conversation, stream), "model": UPSTREAM_MODEL}


class FakeUpstream:
    """Base of a dialect's scripted fake: records requests, answers from a queue."""

    dialect = ""

    def __init__(self) -> None:
        self.seen: list[Json] = []
        self.paths: list[str] = []
        self.queue: list[Step] = []
        #: The answers as this upstream minted them (its ids and signatures), in order.
        self.answers: list[Assistant] = []
        self.app = web.Application()
        self.url = ""

    def channel(self, name: str) -> Json:
        """The gateway's channel config reaching this fake."""
        raise NotImplementedError


#: Every dialect in the matrix, by name; each dialect module adds its own.
DIALECTS: dict[str, Dialect] = {}
