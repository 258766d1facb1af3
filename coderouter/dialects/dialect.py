"""What the request path knows of one wire dialect without translating it: `Dialect`.

Every caller route speaks one dialect (`registry.DIALECTS`). Its facts are read by dict
lookups on the parsed payload as the caller sent it: the model, whether it streams, the most
output it asks for, whether it asks for reasoning, offers tools, carries an image or offers
server-side web search (each from the field that means it), the session hint it carries
and its conversation (system prompt and user messages, for a derived session). Its answers'
usage is read with the same parser the dialect's codec uses to tell a translated caller, so
what is billed is what is told. It
renders the gateway's wire-neutral errors (`errors.GatewayError`) as a body and as the event
that ends a stream. Subclasses live in each dialect's package (``facts.py``). Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from ..errors import GatewayError, Kind
from . import ir
from .codec import Codec

Json = dict[str, Any]
#: A dialect's name: what usage rows, the relay and the channel tables call it.
Name = Literal["chat", "completions", "embeddings", "responses", "responses_compact",
               "messages", "count_tokens", "gemini", "gemini_count"]

#: The neutral failure kind (`ir.Failure.kind`) a gateway error ends a stream with, the same
#: on the pass-through and the translated path.
FAILURE_KIND: dict[Kind, str] = {
    "server_error": "server_error", "authentication": "authentication",
    "permission": "authentication", "not_found": "invalid_request",
    "invalid_request": "invalid_request", "timeout": "server_error",
    "too_large": "invalid_request", "quota": "rate_limit", "rate_limit": "rate_limit",
    "upstream": "server_error", "overloaded": "overloaded"}


def positive(value: Any) -> int:
    """*value* when it is a positive integer, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def content_parts(turns: Any, *keys: str) -> Iterator[Json]:
    """Every part (an object in a turn's *keys* lists) of a conversation, and the parts a
    part holds under those keys (a tool result's content): what an image part is looked for
    in, never a tool schema or metadata."""
    for turn in turns if isinstance(turns, list) else ():
        if isinstance(turn, dict):
            yield from _parts_in(turn, keys, 2)


def _parts_in(holder: Json, keys: tuple[str, ...], levels: int) -> Iterator[Json]:
    for key in keys:
        parts = holder.get(key)
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict):
                yield part
                if levels > 1:
                    yield from _parts_in(part, keys, levels - 1)


def tool_types(payload: Json) -> Iterator[str]:
    """The ``type`` of each entry of the request's ``tools`` list (server tools are named by
    theirs); a function's parameters are never looked into."""
    tools = payload.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str):
            yield kind


def conversation_of(system: Any, turns: Any) -> tuple[Any, list[Any]]:
    """(system prompt, the content of each user message) of a conversation as sent: *turns*
    is a list of role-tagged turns or a bare string; a system or developer turn counts as the
    system prompt when *system* is None."""
    if isinstance(turns, str):
        return system, [turns]
    said: list[Any] = []
    for turn in turns if isinstance(turns, list) else ():
        if not isinstance(turn, dict):
            continue
        role = turn.get("role")
        if role in ("system", "developer") and system is None:
            system = turn.get("content")
        elif role == "user":
            said.append(turn.get("content", turn.get("parts")))
    return system, said


def system_of(system: Any, turns: Any) -> Any:
    """The system prompt as sent: *system*, else a leading system or developer turn (read
    without walking the conversation: a request's background check stays O(1))."""
    if system is not None or not isinstance(turns, list) or not turns:
        return system
    first = turns[0]
    if isinstance(first, dict) and first.get("role") in ("system", "developer"):
        return first.get("content")
    return None


class Dialect:
    """One wire dialect's facts; the defaults are those of a dialect that says nothing."""

    name: ClassVar[Name]
    #: The family of APIs it belongs to: which caller headers pass (`channels.forwarding`).
    family: ClassVar[str]
    #: Its ``gen_ai.operation.name`` in OpenTelemetry's GenAI conventions (`tracing`).
    operation: ClassVar[str] = "chat"
    #: Its codec, when requests in it can be translated (None: pass-through only).
    codec: ClassVar[Codec | None] = None
    #: Whose opaque state (`ir.Opaque.issuer`) its upstreams read back; None: none.
    issuer: ClassVar[str | None] = None
    #: Its requests only count tokens: they use none, pass no quota, never stream.
    counting: ClassVar[bool] = False
    #: A stream reports usage only when asked (``stream_options.include_usage``), so the
    #: gateway asks and hides the usage-only chunk from a caller who did not.
    injects_usage: ClassVar[bool] = False
    #: The upstream's model is in the URL, never in the body (Gemini).
    model_in_url: ClassVar[bool] = False
    #: Bytes only a stream's last event holds: a stream without one was cut short.
    terminal: ClassVar[tuple[bytes, ...]] = ()
    #: The key of the usage object in a stream event.
    usage_key: ClassVar[bytes] = b'"usage"'
    #: Every event repeats the running usage, so only the last one in a block is read.
    usage_repeats: ClassVar[bool] = False
    #: Each request asks for a compaction of a conversation in this other dialect (Codex's
    #: ``/responses/compact``): a channel without the route serves it through that dialect's
    #: compaction (`responses.compaction.CompactRoute`).
    compacts: ClassVar[Name | None] = None

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"

    # facts of a request, read from the parsed payload

    def model(self, payload: Json) -> str:
        return str(payload.get("model"))

    def stream(self, payload: Json) -> bool:
        return payload.get("stream") is True

    def max_output(self, payload: Json) -> int:
        """The most output tokens the request asks for, 0 when it names no maximum."""
        return 0

    def asks_reasoning(self, payload: Json) -> bool:
        return False

    def offers_tools(self, payload: Json) -> bool:
        return False

    def has_images(self, payload: Json) -> bool:
        """Whether a message carries an image part."""
        return False

    def asks_web_search(self, payload: Json) -> bool:
        """Whether the request offers the upstream's own web-search tool."""
        return False

    def session_hint(self, payload: Json) -> tuple[str, str] | None:
        """(carrier, id) of a session id the body carries: ``claude`` (Claude Code's
        ``metadata.user_id``) or ``pck`` (``prompt_cache_key``); None when it carries none."""
        return None

    def conversation(self, payload: Json) -> tuple[Any, list[Any]]:
        """(system prompt, the content of each user message) as sent, which a session
        without an id is derived from."""
        return None, []

    def system_prompt(self, payload: Json) -> Any:
        """The system prompt as sent, cheaply (`system_of`); None when there is none."""
        return None

    def unseal(self, payload: Json, caller: str = "") -> Json:
        """*payload* with the state the gateway sealed into an earlier answer for *caller* (its
        token) opened."""
        return payload

    def asks_compaction(self, payload: Json) -> bool:
        """Whether the request asks for its history to be compacted (Codex's remote
        compaction), which a channel that cannot compact answers through a summary."""
        return False

    # usage of an answer, with the codec's parser

    def body_usage(self, body: Json) -> ir.Usage | None:
        """The usage of a complete answer, None when it reports none."""
        return None

    def event_usage(self, event: Json, so_far: ir.Usage | None) -> ir.Usage | None:
        """The stream's usage after *event* (a parsed event holding ``usage_key``)."""
        return so_far

    def usage_only(self, event: Json) -> bool:
        """Whether *event* is the usage-only chunk a stream sends when asked for usage."""
        return False

    # an upstream body in this dialect

    def drop_reasoning(self, body: Json) -> None:
        """Take every reasoning setting and replayed reasoning text out of *body*."""

    def takes_cache_key(self, base_url: str) -> bool:
        """Whether an upstream at *base_url* reads ``prompt_cache_key``."""
        return False

    # errors

    def error_body(self, error: GatewayError) -> bytes:
        raise NotImplementedError

    def error_event(self, error: GatewayError) -> bytes:
        """The event that ends a stream which failed after its first byte."""
        raise NotImplementedError

    def count_answer(self, tokens: int) -> Json:
        """A counting route's answer of *tokens*, estimated locally."""
        raise NotImplementedError
