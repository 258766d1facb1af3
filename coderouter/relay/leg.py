"""A leg: one target's way of serving an exchange, decided once per target.

A `PassThrough` leg sends the caller's body on with the target's model and relays the
upstream's bytes as they come, secrets scrubbed. A `Translated` leg serves the caller from an
upstream of another dialect: the caller's request is decoded and crossed once per exchange
(`Conversion.translate`, kept in ``Exchange.translations`` for a failover to the same kind of
upstream), encoded for each target's model, and every answer, stream event and error goes
back through it. The attempt and the relays call the same methods on either.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from ..channels import Call, Kind, dialects_of, kind_of
from ..channels.body_rules import apply_all
from ..config import Target
from ..dialects import counting, envelope, foreign, hub
from ..dialects.registry import DIALECTS
from ..dialects.responses import compaction
from ..errors import GatewayError
from ..sse import Dialect, error_event
from .exchange import Exchange


class StreamConverter(Protocol):
    """Turns complete upstream SSE events into the caller's dialect."""

    def feed(self, events: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def error_event(self, error: GatewayError) -> bytes:
        """The caller-dialect events that end the stream with an error after what was sent."""
        ...


class Translation(Protocol):
    """One caller request decoded and crossed for an upstream of another dialect."""

    @property
    def upstream(self) -> str: ...

    def request(self, model: str, bound: str = "") -> dict[str, Any]: ...

    def response(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream(self) -> StreamConverter: ...

    def error(self, status: int, body: bytes) -> bytes: ...


class CallerStream(Protocol):
    """A leg's stream: complete upstream events in, the caller's bytes out."""

    def feed(self, events: bytes) -> bytes: ...

    def end(self, rest: bytes, complete: bool) -> bytes:
        """The caller's last bytes: *rest* is what the upstream left without a blank line;
        *complete*, whether the upstream's stream reached its terminal event."""
        ...

    def error_event(self, error: GatewayError) -> bytes: ...


class Conversion(Protocol):
    """Serves a caller dialect from a channel that speaks another one (`hub.Bridge`,
    `counting.CountBridge`)."""

    @property
    def upstream(self) -> str: ...

    def translate(self, payload: dict[str, Any], prompt_tokens: int = 0,
                  caller: str = "") -> Translation:
        """*caller*: the token's name, what state any channel may be handed is sealed for."""
        ...


def plan_for(dialect: Dialect, target: Target) -> Conversion | bool:
    """True when *target*'s channel speaks *dialect*, its Conversion, or False."""
    native = dialects_of(target.channel)
    if dialect in native:
        return True
    compacts = DIALECTS[dialect].compacts
    if compacts is not None:  # a compaction route the channel lacks: through a summary
        inner = plan_for(compacts, target)
        return False if inner is False else _compact_route(None if inner is True else inner)
    conversion: Conversion | None = hub.bridge(dialect, native) or counting.bridge(dialect,
                                                                                   native)
    return conversion or False


def leg_for(ex: Exchange, target: Target, plan: Conversion | bool) -> Leg:
    """The leg serving *ex* on *target*, whose `plan_for` is *plan*."""
    if DIALECTS[ex.dialect].asks_compaction(ex.payload):
        plan = _compacting(target, plan)
    if plan is True or plan is False:
        return PassThrough(ex, target)
    translation = ex.translations.get(plan)
    if translation is None:
        translation = ex.translations[plan] = plan.translate(ex.payload, ex.prompt_estimate,
                                                               ex.record.token or "")
    return Translated(ex, target, translation)


#: The Compactor over each Conversion (None: over a Responses upstream that cannot compact).
_COMPACTORS: dict[Conversion | None, Conversion] = {}


def _compacting(target: Target, plan: Conversion | bool) -> Conversion | bool:
    """Codex's compaction request (`compaction`): a channel that compacts a Responses request
    itself passes it through; a translated one, or one that cannot (the mock), is served by a
    `compaction.Compactor` over its plan."""
    if plan is True and kind_of(target.channel).compacts:
        return plan
    inner = plan if not isinstance(plan, bool) else None
    compactor = _COMPACTORS.get(inner)
    if compactor is None:
        compactor = _COMPACTORS[inner] = compaction.Compactor(inner)
    return compactor


_COMPACT_ROUTES: dict[Conversion | None, Conversion] = {}


def _compact_route(inner: Conversion | None) -> Conversion:
    route = _COMPACT_ROUTES.get(inner)
    if route is None:
        route = _COMPACT_ROUTES[inner] = compaction.CompactRoute(inner)
    return route


class Leg:
    """What a pass-through and a translation share: the target and the upstream call."""

    __slots__ = ("channel", "ex", "injected", "kind", "model", "upstream")

    #: The caller's query string goes upstream only to the caller's own API.
    keeps_query = True

    def __init__(self, ex: Exchange, target: Target, upstream: str) -> None:
        self.ex = ex
        self.channel = target.channel
        self.kind: Kind = kind_of(target.channel)
        self.model = target.model
        #: The dialect the upstream is spoken to in.
        self.upstream = upstream
        #: The gateway asked the upstream's stream for usage the caller did not ask for.
        self.injected = False

    @property
    def hide_usage(self) -> bool:
        """Whether the stream's usage chunk is taken out again before the caller sees it."""
        return self.injected

    def body(self, key: str) -> dict[str, Any]:
        """The upstream body for an attempt with channel *key*, before the model is placed."""
        raise NotImplementedError

    def bound(self, key: str) -> str:
        """Who the envelopes of an attempt with *key* are for: this channel and key, and the
        caller's token (`envelope.binding`)."""
        return envelope.binding(self.channel.base_url, key, self.ex.record.token or "")

    def encode(self, body: dict[str, Any]) -> bytes:
        """The bytes of *body*: model placed, prompt cache key and stream usage asked for."""
        ex, facts = self.ex, DIALECTS[self.upstream]
        if ex.session is not None and "prompt_cache_key" not in body \
                and facts.takes_cache_key(self.channel.base_url):
            body["prompt_cache_key"] = ex.session  # keeps the upstream's prompt cache warm
        if facts.model_in_url:
            return self.dumps(gemini_body(body, self.model))
        body["model"] = self.model
        if ex.stream and facts.injects_usage:
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            self.injected = options.get("include_usage") is not True
            options["include_usage"] = True
            body["stream_options"] = options
        return self.dumps(body)

    def dumps(self, body: dict[str, Any]) -> bytes:
        """The bytes sent: *body* with the channel's body rules applied."""
        rules = self.channel.body_rules
        return orjson.dumps(apply_all(rules, body) if rules else body)

    def call(self, key: str) -> Call:
        """The upstream call of one attempt with channel *key*."""
        ex = self.ex
        body = self.body(key)
        data = self.encode(body)
        return Call(channel=self.channel, dialect=self.upstream, caller_dialect=ex.dialect,
                    model=self.model, body=body, data=data, key=key,
                    query=ex.request.query_string if self.keeps_query else "",
                    stream=ex.stream, caller_headers=ex.request.headers.items(),
                    request_id=ex.record.request_id,
                    trace_headers=ex.trace.upstream if ex.trace is not None else None)

    # the way back

    # The way back. Upstream bytes are scrubbed once, as they arrive, before anything reads
    # them: a translation seals upstream state into what the caller holds.

    def answer(self, raw: bytes, obj: Any) -> bytes:
        """The caller's body for the upstream's scrubbed answer *raw* (parsed: *obj*)."""
        raise NotImplementedError

    def error(self, status: int, body: bytes, content_type: str) -> tuple[bytes, str]:
        """The caller's error body and its content type for an upstream's scrubbed refusal."""
        raise NotImplementedError

    def stream(self) -> CallerStream:
        """What turns the upstream's complete events into the caller's bytes, scrubbing them
        on the way in."""
        raise NotImplementedError


class PassThrough(Leg):
    """The caller's dialect is the upstream's: its body and the answer's bytes pass as they
    are, with the target's model and secrets scrubbed."""

    __slots__ = ()

    def __init__(self, ex: Exchange, target: Target) -> None:
        super().__init__(ex, target, ex.dialect)

    def body(self, key: str) -> dict[str, Any]:
        ex = self.ex
        if ex.sealed:  # our envelopes in the caller's native slots: open or drop each
            return foreign.restore(ex.payload, DIALECTS[ex.dialect].issuer,
                                   envelope.sealer(), self.bound(key))
        return dict(ex.payload)

    def encode(self, body: dict[str, Any]) -> bytes:
        raw = self.ex.raw
        if raw is not None and DIALECTS[self.upstream].model_in_url and not self.ex.sealed \
                and "generateContentRequest" not in body and not self.channel.body_rules:
            return raw  # as it came: it names no model inside
        return super().encode(body)

    def answer(self, raw: bytes, obj: Any) -> bytes:
        return raw

    def error(self, status: int, body: bytes, content_type: str) -> tuple[bytes, str]:
        return body, content_type

    def stream(self) -> CallerStream:
        return _Scrubbed(self.ex)


class _Scrubbed:
    """A pass-through stream: the upstream's events with secrets scrubbed."""

    __slots__ = ("_clean", "_dialect")

    def __init__(self, ex: Exchange) -> None:
        self._clean = ex.scrubber.clean
        self._dialect = ex.dialect

    def feed(self, events: bytes) -> bytes:
        return self._clean(events)

    def end(self, rest: bytes, complete: bool) -> bytes:
        return self._clean(rest)

    def error_event(self, error: GatewayError) -> bytes:
        return error_event(self._dialect, error)


class Translated(Leg):
    """The caller is served from an upstream of another dialect through its Translation."""

    __slots__ = ("translation",)

    keeps_query = False  # a caller's query string belongs to its API, not a translated one

    def __init__(self, ex: Exchange, target: Target, translation: Translation) -> None:
        super().__init__(ex, target, translation.upstream)
        self.translation = translation

    @property
    def hide_usage(self) -> bool:
        return False  # the caller's codec writes the caller's usage itself

    def body(self, key: str) -> dict[str, Any]:
        # a codec encoding for the upstream decides by the model it will reach
        body = self.translation.request(self.model, self.bound(key))
        if not self.ex.route.reasoning:  # the group's models have none: they may refuse it
            DIALECTS[self.upstream].drop_reasoning(body)
        return body

    def answer(self, raw: bytes, obj: Any) -> bytes:
        return orjson.dumps(self.translation.response(obj))

    def error(self, status: int, body: bytes, content_type: str) -> tuple[bytes, str]:
        return self.translation.error(status, body), "application/json"

    def stream(self) -> CallerStream:
        return _TranslatedStream(self.translation.stream(), self.ex.scrubber.clean)


class _TranslatedStream:
    """A translated stream: upstream events scrubbed, then converted."""

    __slots__ = ("_clean", "_convert")

    def __init__(self, convert: StreamConverter, clean: Any) -> None:
        self._convert = convert
        self._clean = clean

    def feed(self, events: bytes) -> bytes:
        return self._convert.feed(self._clean(events))

    def end(self, rest: bytes, complete: bool) -> bytes:
        if not complete:
            return b""  # the error event follows
        return self._convert.feed(self._clean(rest)) + self._convert.finish()

    def error_event(self, error: GatewayError) -> bytes:
        return self._convert.error_event(error)


def gemini_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A Gemini upstream's body: without the ``model`` and ``stream`` the gateway keeps beside
    a Gemini caller's request; a countTokens ``generateContentRequest`` names *model*."""
    out = {k: v for k, v in body.items() if k not in ("model", "stream")}
    inner = out.get("generateContentRequest")
    if isinstance(inner, dict):
        out["generateContentRequest"] = {**inner, "model": f"models/{model}"}
    return out
