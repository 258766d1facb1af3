"""What a Bridge changes on the way across, besides the codecs' own mapping. Pure.

On the way up (the caller's request, decoded, before the upstream's codec encodes it):

* envelopes the gateway minted are opened (`envelope`): opaque state the upstream issued on an
  earlier turn, carried by the caller in its own dialect's slot, goes back to the upstream as
  it was; a tool-call id carrying one gets its own id back;
* tool names longer than the upstream accepts (``max_tool_name``) are shortened, reversibly;
* freeform (custom) tools are wrapped as a function taking one string ``input`` for an
  upstream without custom tools, their past calls likewise;
* an upstream speaking Messages reached from a dialect with no cache breakpoints gets them
  where a prompt cache pays (the last system text, the last tool, the last message).

On the way down (the upstream's answer or stream events, before the caller's codec encodes
them) each of those is undone, and opaque state the upstream issued is sealed into the slot
the caller's dialect has for it: a thinking ``signature`` (Messages), ``encrypted_content``
(Responses), a ``thoughtSignature`` (Gemini). Chat has no such slot; its callers echo only the
tool-call id, so the turn's sealed reasoning rides on the id of its first tool call (and a
call's own signature, Gemini's, on that call's id for every caller). A turn without tool calls
needs no reasoning back (Anthropic and DeepSeek ask for it on tool-use turns only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, get_args

from . import ir
from .envelope import Sealer, find
from .wire import arguments_object, dumps, typed

#: Caller dialects with a slot of their own for reasoning state.
REASONING_SLOTS = frozenset({"messages", "responses", "gemini"})
_ISSUERS = frozenset(get_args(ir.WireDialect))
#: The one string argument a wrapped custom tool takes.
CUSTOM_ARGUMENT = "input"


@dataclass(slots=True)
class Crossing:
    """One request's way across, and what its answer needs undone."""

    client: str
    upstream: str
    sealer: Sealer
    #: Who envelopes are opened and sealed for (`envelope.binding`): the target's channel
    #: and key, and the caller's token.
    bound: str = ""
    #: shortened tool name -> the caller's name
    names: dict[str, str] = field(default_factory=dict)
    #: the caller's names of custom tools sent wrapped as functions
    custom: set[str] = field(default_factory=set)


def short_name(name: str, limit: int) -> str:
    """*name* cut to *limit* characters, a hash of the whole keeping it unique."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - 9]}_{digest}"


# On the way up


def up(request: ir.Request, client: str, upstream: str, *, max_tool_name: int,
       custom_tools: bool, sealer: Sealer, bound: str = "") -> Crossing:
    """Prepare the decoded caller *request* for *upstream*, opening only envelopes sealed
    for *bound* (others are foreign state, dropped); the returned Crossing undoes it on the
    answer and seals for *bound*."""
    crossing = Crossing(client, upstream, sealer, bound)
    for message in request.messages:
        _open_envelopes(message, crossing)
    if not custom_tools:
        _wrap_custom(request, crossing)
    _shorten_names(request, max_tool_name, crossing)
    if upstream == "messages" and client != "messages":
        _add_breakpoints(request)
    return crossing


def _opaque(value: Any) -> ir.Opaque | None:
    if isinstance(value, dict) and value.get("i") in _ISSUERS and isinstance(value.get("d"), str):
        return ir.Opaque(value["i"], value["d"])
    return None


def _reasoning(entry: Any) -> ir.Reasoning | None:
    if not isinstance(entry, dict):
        return None
    text = typed(entry.get("t"), str, "")
    key = typed(entry.get("k"), str, None)
    return ir.Reasoning(text, _opaque(entry), redacted=entry.get("x") is True, id=key)


def _open_signature(part: ir.Text | ir.Reasoning | ir.ToolCall,
                    crossing: Crossing) -> ir.Reasoning | None:
    """Open the envelope in *part*'s signature. Reasoning a Gemini caller carried on a text or
    a call (where it keeps signatures) is returned, to go back ahead of the turn's parts."""
    signature = part.signature
    if signature is None or signature.issuer != crossing.client or find(signature.data) != 0:
        return None
    opened = crossing.sealer.open(signature.data, crossing.bound)
    if not isinstance(part, ir.Reasoning) and isinstance(opened, dict) and "t" in opened:
        part.signature = None
        return _reasoning(opened)
    part.signature = _opaque(opened)
    if isinstance(part, ir.Reasoning) and isinstance(opened, dict):
        if isinstance(opened.get("t"), str):
            part.text = opened["t"]  # what the upstream signed, byte for byte
        if isinstance(opened.get("k"), str):
            part.id = opened["k"]
    return None


def _split_id(call_id: str) -> tuple[str, str | None]:
    at = find(call_id)
    return (call_id[:at - 1], call_id[at:]) if at > 0 else (call_id, None)


def _open_envelopes(message: ir.Message, crossing: Crossing) -> None:
    carried: list[ir.Reasoning] = []
    for part in message.parts:
        if isinstance(part, ir.Text | ir.Reasoning | ir.ToolCall):
            riding = _open_signature(part, crossing)
            if riding is not None:
                carried.append(riding)
        if isinstance(part, ir.ToolCall):
            part.id, token = _split_id(part.id)
            opened = crossing.sealer.open(token, crossing.bound) if token else None
            if isinstance(opened, dict):
                part.signature = _opaque(opened.get("g")) or part.signature
                entries = typed(opened.get("r"), list, [])
                carried += [r for e in entries if (r := _reasoning(e)) is not None]
        elif isinstance(part, ir.ToolResult):
            part.call_id = _split_id(part.call_id)[0]
    if carried:  # the turn's reasoning as the upstream issued it, ahead of its tool calls
        rest = [p for p in message.parts
                if not (isinstance(p, ir.Reasoning) and p.signature is None)]
        message.parts = [*carried, *rest]


def _wrap_custom(request: ir.Request, crossing: Crossing) -> None:
    for tool in request.tools:
        if tool.kind != "custom":
            continue
        crossing.custom.add(tool.name)
        grammar = tool.format or {}
        description = tool.description or ""
        if grammar.get("definition"):
            description += (f"\n\nThe input follows this {grammar.get('syntax') or 'grammar'}"
                            f" grammar:\n{grammar['definition']}")
        tool.kind, tool.format, tool.description = "function", None, description.strip() or None
        tool.parameters = {"type": "object", "properties": {CUSTOM_ARGUMENT: {
            "type": "string", "description": "The tool's whole input, as freeform text."}},
            "required": [CUSTOM_ARGUMENT]}
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, ir.ToolCall) and part.kind == "custom":
                part.kind, part.arguments = "function", dumps({CUSTOM_ARGUMENT: part.arguments})


def _shorten_names(request: ir.Request, limit: int, crossing: Crossing) -> None:
    longer = {t.name for t in request.tools if len(t.name) > limit}
    for message in request.messages:
        longer.update(p.name for p in message.parts
                      if isinstance(p, ir.ToolCall) and len(p.name) > limit)
    if not longer:
        return
    shorter = {name: short_name(name, limit) for name in longer}
    crossing.names.update({s: name for name, s in shorter.items()})
    for tool in request.tools:
        tool.name = shorter.get(tool.name, tool.name)
    if request.tool_choice is not None and request.tool_choice.name in shorter:
        request.tool_choice.name = shorter[request.tool_choice.name]
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, ir.ToolCall | ir.ToolResult) and part.name is not None:
                part.name = shorter.get(part.name, part.name)


def _add_breakpoints(request: ir.Request) -> None:
    """Anthropic caches a prompt prefix only up to a breakpoint; callers of other dialects
    send none, so mark where a coding agent's prefix grows: the system prompt, the tools,
    the conversation so far (three of Anthropic's four)."""
    parts = [p for m in request.messages for p in m.parts]
    if any(getattr(p, "cache", False) for p in parts) or any(t.cache for t in request.tools):
        return
    leading, conversation = ir.split_system(request.messages)
    system = [p for m in leading for p in m.parts if isinstance(p, ir.Text) and p.text]
    if system:
        system[-1].cache = True
    tools = [t for t in request.tools if t.kind != "builtin"]
    if tools:
        tools[-1].cache = True
    if conversation:
        last = [p for p in conversation[-1].parts
                if isinstance(p, ir.ToolResult) or (isinstance(p, ir.Text) and p.text)]
        if last:
            last[-1].cache = True


# On the way down


def _entry(part: ir.Reasoning) -> dict[str, Any]:
    """A reasoning part as a sealed entry: its text, its opaque state (when it has one), its
    id."""
    entry: dict[str, Any] = {"t": part.text}
    if part.signature is not None:
        entry.update(i=part.signature.issuer, d=part.signature.data)
    if part.redacted:
        entry["x"] = True
    if part.id:
        entry["k"] = part.id
    return entry


class Down:
    """Undoes a Crossing on the upstream's answer or stream events, and seals the upstream's
    opaque state for the caller."""

    __slots__ = ("_args", "_c", "_kinds", "_pending", "_reasoning")

    def __init__(self, crossing: Crossing) -> None:
        self._c = crossing
        self._pending: list[dict[str, Any]] = []  # a Chat caller's sealed reasoning, waiting
        self._kinds: dict[int, str] = {}
        self._reasoning: dict[int, ir.Reasoning] = {}  # open reasoning parts, text so far
        self._args: dict[int, list[str]] = {}  # a wrapped custom call's arguments so far

    def _foreign(self, opaque: ir.Opaque | None) -> bool:
        return opaque is not None and opaque.issuer != self._c.client

    def _seal_reasoning(self, part: ir.Reasoning) -> None:
        """Put *part*'s foreign state in the caller's slot, or keep it for a Chat caller's
        next tool call. A Gemini caller gets unsigned reasoning text sealed too: the Gemini
        CLI drops thought parts from the history it sends back, and keeps signatures."""
        if not self._foreign(part.signature) and not (
                self._c.client == "gemini" and part.signature is None and part.text):
            return
        if self._c.client in REASONING_SLOTS:
            token = self._c.sealer.seal(_entry(part), self._c.bound)
            part.signature = ir.Opaque(self._c.client, token)  # type: ignore[arg-type]
        else:
            self._pending.append(_entry(part))
            part.signature = None

    def _cross_call(self, call: ir.ToolCall) -> None:
        call.name = self._c.names.get(call.name, call.name)
        if call.name in self._c.custom and call.kind == "function":
            call.kind = "custom"
        carried: dict[str, Any] = {}
        if self._foreign(call.signature):
            assert call.signature is not None
            carried["g"] = {"i": call.signature.issuer, "d": call.signature.data}
            call.signature = None
        if self._pending:
            carried["r"], self._pending = self._pending, []
        if carried:
            call.id = f"{call.id}.{self._c.sealer.seal(carried, self._c.bound)}"

    def answer(self, response: ir.Response) -> None:
        """Rewrite a whole answer in place."""
        for part in response.parts:
            if isinstance(part, ir.Reasoning):
                self._seal_reasoning(part)
            elif isinstance(part, ir.ToolCall):
                self._cross_call(part)
                if part.kind == "custom":
                    part.arguments = _unwrap(part.arguments)
            elif isinstance(part, ir.Text) and self._foreign(part.signature):
                part.signature = None
        self._pending = []

    def event(self, event: ir.Event) -> list[ir.Event]:
        """The events that stand for one upstream stream event."""
        if isinstance(event, ir.PartStart):
            return self._start(event)
        if isinstance(event, ir.PartDelta):
            kind = self._kinds.get(event.index)
            if kind == "custom":
                self._args[event.index].append(event.text)
                return []
            if kind == "reasoning":
                reasoning = self._reasoning[event.index]
                reasoning.text += event.text
            return [event]
        if isinstance(event, ir.PartSignature):
            return self._signature(event)
        if isinstance(event, ir.PartEnd):
            return self._end(event)
        return [event]

    def _start(self, event: ir.PartStart) -> list[ir.Event]:
        part = event.part
        if isinstance(part, ir.ToolCall):
            self._cross_call(part)
            if part.kind == "custom":
                self._kinds[event.index] = "custom"
                self._args[event.index] = [part.arguments]
                part.arguments = ""
        elif isinstance(part, ir.Reasoning):
            self._kinds[event.index] = "reasoning"
            self._reasoning[event.index] = ir.Reasoning(part.text, part.signature,
                                                        part.redacted, part.id)
            if self._foreign(part.signature):  # redacted thinking comes with its state
                self._seal_reasoning(part)
                self._reasoning[event.index].signature = None
        elif isinstance(part, ir.Text) and self._foreign(part.signature):
            part.signature = None
        return [event]

    def _signature(self, event: ir.PartSignature) -> list[ir.Event]:
        if not self._foreign(event.signature):
            return [event]
        reasoning = self._reasoning.get(event.index)
        if reasoning is None:
            return []  # a call's state after its id went out: nowhere left to carry it
        reasoning.signature = event.signature
        self._seal_reasoning(reasoning)
        if reasoning.signature is None:
            return []  # kept for the Chat caller's next tool call
        return [ir.PartSignature(event.index, reasoning.signature)]

    def _end(self, event: ir.PartEnd) -> list[ir.Event]:
        kind = self._kinds.pop(event.index, None)
        if kind == "custom":
            text = _unwrap("".join(self._args.pop(event.index)))
            return [ir.PartDelta(event.index, text), event] if text else [event]
        if kind == "reasoning":
            reasoning = self._reasoning.pop(event.index, None)
            if self._c.client == "gemini" and reasoning is not None \
                    and reasoning.signature is None and reasoning.text:
                self._seal_reasoning(reasoning)  # the text is whole now
                assert reasoning.signature is not None
                return [ir.PartSignature(event.index, reasoning.signature), event]
        return [event]


def _unwrap(arguments: str) -> str:
    """A wrapped custom call's raw input: its one string argument (the text as it came when
    the model did not wrap it)."""
    value = arguments_object(arguments).get(CUSTOM_ARGUMENT)
    return value if isinstance(value, str) else arguments
