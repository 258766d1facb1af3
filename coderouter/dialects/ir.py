"""The neutral representation every dialect decodes to and encodes from. Pure data, no I/O.

A conversation turn is a `Request`: `Message`s of typed parts, `Tool`s and generation
settings. An answer is a `Response`. A stream is a sequence of `Event`s whose parts are
addressed by an output index, opened by `PartStart`, grown by `PartDelta`, closed by
`PartEnd`, and ended by exactly one `Finish` or `Failure`.

Conventions every codec keeps:

* Roles are "system", "user" and "assistant". A system message may stand anywhere in
  `Request.messages` (Anthropic's top-level ``system`` and Responses' ``instructions`` decode
  to system messages at the front; OpenAI's ``developer`` role is "system").
* A tool result is a `ToolResult` part in a "user" message; Chat's ``tool`` messages and
  Responses' ``function_call_output`` items decode to that, and encoders split them back out.
* `ToolCall.arguments` is the raw JSON text of the arguments (for a ``custom`` call: the raw
  input text), exactly as the model produced it; nothing is re-serialised on the way.
* Opaque state (Anthropic ``signature``/``data``, Responses ``encrypted_content``, Gemini
  ``thoughtSignature``) is an `Opaque` that names its issuer. A codec reads and writes only
  its own issuer's payloads and drops every other one; carrying foreign state through a
  client is the hub's job (it seals it into an envelope the client dialect can hold).
* `Usage.input_tokens` counts the whole prompt, cached tokens included (OpenAI's meaning);
  Anthropic's split counts are added up when decoded and split again when encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
#: Why an answer ended, in the neutral vocabulary.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
#: The four wire dialects; also the issuer name of an `Opaque`.
WireDialect = Literal["chat", "messages", "responses", "gemini"]
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


@dataclass(slots=True)
class Opaque:
    """State only its issuer can read: a thinking signature, encrypted reasoning, a Gemini
    thought signature, or redacted thinking data."""

    issuer: WireDialect
    data: str


@dataclass(slots=True)
class Text:
    text: str
    #: A prompt-cache breakpoint after this part (Anthropic ``cache_control``).
    cache: bool = False
    #: Gemini may sign a text part.
    signature: Opaque | None = None


@dataclass(slots=True)
class Image:
    """An image by URL, or inline as base64 *data* with its *media_type*."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class File:
    """A document (PDF, text) inline as base64 *data*, or by URL or provider file id."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None


@dataclass(slots=True)
class Reasoning:
    """Thinking the model did: its readable *text* (a summary or raw thoughts, possibly
    empty), and the opaque *signature* its issuer needs back on later turns. *redacted*
    thinking has no text, only the opaque payload."""

    text: str = ""
    signature: Opaque | None = None
    redacted: bool = False
    #: The issuer's id of this reasoning (a Responses ``rs_…`` item id), when it has one.
    id: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    #: Raw JSON arguments text (``"{}"`` when none); for kind "custom", the raw input text.
    arguments: str = ""
    kind: Literal["function", "custom"] = "function"
    #: Gemini's ``thoughtSignature`` on a functionCall part.
    signature: Opaque | None = None


@dataclass(slots=True)
class ToolResult:
    call_id: str
    #: A string, or text and image parts.
    content: str | list[Text | Image] = ""
    is_error: bool = False
    #: The called tool's name, when the dialect carries it (Gemini needs it).
    name: str | None = None
    #: A prompt-cache breakpoint after this part (Anthropic ``cache_control``).
    cache: bool = False


Part = Text | Image | File | Reasoning | ToolCall | ToolResult


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)


def split_system(messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """For a dialect with one system prompt ahead of the conversation: the system messages
    before the conversation starts, and the conversation, where a later system message stays
    in its place as a user turn. Hoisting it would change the system prompt as the
    conversation grows, and the upstream's prefix cache would miss from the first byte."""
    start = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    rest = [Message("user", m.parts) if m.role == "system" else m for m in messages[start:]]
    return messages[:start], rest


@dataclass(slots=True)
class Tool:
    """A tool the model may call.

    kind "function": JSON-schema *parameters*. kind "custom": freeform text input, with an
    optional grammar *format* (Responses ``custom`` tools such as Codex's apply_patch).
    kind "builtin": a provider-run tool (web search, code execution, Codex ``local_shell``),
    kept as its dialect's raw JSON in *raw* and the dialect in *dialect*; encoders of another
    dialect map the ones they know and drop the rest.
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    kind: Literal["function", "custom", "builtin"] = "function"
    format: dict[str, Any] | None = None
    strict: bool | None = None
    raw: dict[str, Any] | None = None
    dialect: WireDialect | None = None
    cache: bool = False


@dataclass(slots=True)
class ToolChoice:
    """auto, none, required (any tool), or one named tool."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


@dataclass(slots=True)
class ReasoningConfig:
    """What the caller asked of reasoning. *effort* and *budget* may both be set (a codec
    fills the one its dialect lacks from the other); *enabled* False means thinking off."""

    enabled: bool = True
    effort: Effort | None = None
    budget: int | None = None
    #: Readable summaries/thoughts wanted back (Responses ``summary``, Gemini includeThoughts).
    summary: bool = False


@dataclass(slots=True)
class Request:
    model: str
    messages: list[Message] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    reasoning: ReasoningConfig | None = None
    #: Structured output: a JSON schema object ({"name", "schema", "strict"}) or {"type": "json"}.
    response_format: dict[str, Any] | None = None
    #: The conversation's cache/session key (``prompt_cache_key``, Claude Code's session).
    cache_key: str | None = None
    #: An end-user id the upstream may see; short and stable, never a raw caller blob.
    user: str | None = None
    #: Upstream-facing hints the hub fills (e.g. "include_usage"); codecs may ignore them.
    hints: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    #: Prompt tokens read from a cache (part of input_tokens).
    cached_tokens: int = 0
    #: Prompt tokens written to a cache (part of input_tokens; Anthropic cache creation).
    cache_write_tokens: int = 0
    #: The part of cache_write_tokens written for an hour (Anthropic's ephemeral_1h); the
    #: rest is written for five minutes.
    cache_write_1h_tokens: int = 0
    #: Output tokens spent on reasoning (part of output_tokens).
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class Response:
    id: str
    model: str
    parts: list[Part] = field(default_factory=list)
    finish: FinishReason = "stop"
    usage: Usage | None = None
    #: The stop sequence that ended the answer, when one did.
    stop_sequence: str | None = None


# A stream, as events.


@dataclass(slots=True)
class Start:
    """The answer begins. *usage* is what is known up front (Anthropic's input counts)."""

    id: str
    model: str
    usage: Usage | None = None


@dataclass(slots=True)
class PartStart:
    """Part *index* of the answer opens: an empty `Text` or `Reasoning`, or a `ToolCall`
    with its id and name and empty arguments."""

    index: int
    part: Text | Reasoning | ToolCall


@dataclass(slots=True)
class PartDelta:
    """More of part *index*: text for `Text`/`Reasoning`, argument JSON text for `ToolCall`."""

    index: int
    text: str


@dataclass(slots=True)
class PartSignature:
    """The opaque state of part *index* (arrives before its `PartEnd`)."""

    index: int
    signature: Opaque


@dataclass(slots=True)
class PartEnd:
    index: int


@dataclass(slots=True)
class UsageUpdate:
    """Usage known so far (cumulative, replaces what came before)."""

    usage: Usage


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    usage: Usage | None = None
    stop_sequence: str | None = None


@dataclass(slots=True)
class Failure:
    """The upstream reported an error mid-stream. *kind* is the neutral error class."""

    message: str
    kind: Literal["invalid_request", "rate_limit", "overloaded", "context_length",
                  "authentication", "server_error"] = "server_error"


Event = Start | PartStart | PartDelta | PartSignature | PartEnd | UsageUpdate | Finish | Failure
