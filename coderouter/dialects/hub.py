"""Serving a caller dialect from an upstream that speaks another: two codecs and a Bridge.

A `Bridge` decodes the caller's request to the neutral representation and encodes it in the
upstream's dialect; answers, stream events and error bodies go the other way. Codecs register
themselves in `CODECS` by dialect name; a pair is served once both of its codecs are there.

A request that cannot be decoded is the caller's error (`InvalidRequest`, 400); an upstream
answer or stream that cannot be decoded is the upstream's (`UpstreamError`, 502).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from ..config import Channel
from ..errors import InvalidRequest, UpstreamError
from ..estimate import estimate_tokens
from . import ir
from .codec import Codec, CodecError, StreamDecoder, StreamEncoder
from .crossing import Crossing, Down, up
from .envelope import Sealer

Json = dict[str, Any]

#: Every codec by the dialect it speaks; each dialect module registers its own.
CODECS: dict[str, Codec] = {}

#: Which upstream dialect to use, in order of preference, when a channel does not speak the
#: caller's: Chat is what most OpenAI-compatible servers get right.
PREFERENCE: tuple[ir.WireDialect, ...] = ("chat", "messages", "responses", "gemini")


_BRIDGES: dict[tuple[str, tuple[str, ...]], Bridge | None] = {}

#: Seals and opens the envelopes that carry foreign opaque state through callers. A random
#: secret until the app sets the configured one (`use_secret`).
_sealer = Sealer(secrets.token_bytes(32))


def use_secret(secret: bytes) -> None:
    """Seal and open envelopes with *secret* from now on; envelopes sealed with another
    secret no longer open (their state is dropped, never forwarded)."""
    global _sealer
    _sealer = Sealer(secret)


def sealer() -> Sealer:
    """The `Sealer` in use (see `use_secret`)."""
    return _sealer

#: The dialects (gateway endpoints) each channel type's upstream serves as they are; a caller
#: dialect not listed is translated by a Bridge. An openai or azure channel drops
#: "responses" when its ``responses:`` setting says the upstream has no Responses API.
CHANNEL_DIALECTS: dict[str, tuple[str, ...]] = {
    "openai": ("chat", "completions", "embeddings", "responses"),
    "azure": ("chat", "completions", "embeddings", "responses"),
    "anthropic": ("messages", "count_tokens"),
    "gemini": ("gemini", "gemini_count"),
    "mock": ("chat", "completions", "embeddings", "responses"),
}


#: The same for an openai or azure channel whose upstream has no Responses API.
_CHAT_ONLY = {kind: tuple(d for d in CHANNEL_DIALECTS[kind] if d != "responses")
              for kind in ("openai", "azure")}
#: And for one whose upstream has the Responses API and no Chat Completions
#: (``responses: only``).
_RESPONSES_ONLY = {kind: tuple(d for d in CHANNEL_DIALECTS[kind]
                               if d not in ("chat", "completions"))
                   for kind in ("openai", "azure")}


def dialects_of(channel: Channel) -> tuple[str, ...]:
    """What *channel*'s upstream serves natively (on every request: two lookups)."""
    if channel.type in _CHAT_ONLY:
        if channel.responses == "only":
            return _RESPONSES_ONLY[channel.type]
        if not channel.responses:
            return _CHAT_ONLY[channel.type]
    return CHANNEL_DIALECTS.get(channel.type, ())


def register(codec: Codec) -> Codec:
    """Make *codec* available to bridges; each dialect module calls it once at import."""
    CODECS[codec.name] = codec
    _BRIDGES.clear()
    return codec


def sse_events(block: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (event name, joined data) of each event in *block*; the name is "" when absent.

    *block* holds whole events (a last one may lack its blank line); comments and events
    without data are skipped.
    """
    for event in block.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        if data:
            yield name, b"\n".join(data)


#: The neutral kind of a gateway error code that ends a stream.
_KIND_OF_CODE = {"rate_limit_exceeded": "rate_limit", "context_length_exceeded": "context_length"}


class BridgeStream:
    """A StreamConverter: complete upstream SSE events in, the caller's SSE bytes out."""

    __slots__ = ("_decoder", "_down", "_encoder", "_kind", "_unsent")

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder, down: Down) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self._down = down
        self._kind: str | None = None  # the neutral kind of an upstream failure met
        self._unsent = b""  # what was encoded before a failure interrupted a feed

    def feed(self, events: bytes) -> bytes:
        out: list[bytes] = []
        try:
            for name, data in sse_events(events):
                try:
                    decoded = self._decoder.feed(name, data)
                except CodecError as exc:
                    raise UpstreamError(f"upstream stream cannot be translated: {exc}") from None
                self._encode(decoded, out)
        except UpstreamError:
            self._unsent = b"".join(out)
            raise
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        try:
            try:
                decoded = self._decoder.close()
            except CodecError as exc:
                raise UpstreamError(f"upstream stream cannot be translated: {exc}") from None
            self._encode(decoded, out)
        except UpstreamError:
            self._unsent = b"".join(out)
            raise
        return b"".join(out) + self._encoder.close()

    def _encode(self, events: list[ir.Event], out: list[bytes]) -> None:
        for event in events:
            if isinstance(event, ir.Failure):
                # The proxy records the failure, then ends the stream with `error_event`.
                self._kind = event.kind
                raise UpstreamError(f"upstream stream error: {event.message}")
            out.extend(self._encoder.feed(e) for e in self._down.event(event))

    def error_event(self, message: str, code: str) -> bytes:
        """The caller-dialect events that end this stream with an error, after whatever was
        encoded before the failure (a Responses caller gets ``response.failed`` with the
        next sequence number and a code it acts on)."""
        kind = self._kind or _KIND_OF_CODE.get(code, "server_error")
        failure = ir.Failure(message, kind)  # type: ignore[arg-type]
        unsent, self._unsent = self._unsent, b""
        return unsent + self._encoder.feed(failure) + self._encoder.close()


class Bridge:
    """Serves *client*'s dialect from an upstream speaking *upstream*'s (proxy.Conversion)."""

    __slots__ = ("_client", "_upstream", "upstream")

    def __init__(self, client: Codec, upstream: Codec) -> None:
        self._client = client
        self._upstream = upstream
        self.upstream = upstream.name

    def __repr__(self) -> str:
        return f"Bridge({self._client.name} <- {self._upstream.name})"

    def decode(self, payload: Json) -> ir.Request:
        try:
            return self._client.decode_request(payload)
        except CodecError as exc:
            raise InvalidRequest(str(exc)) from None

    def _cross(self, request: ir.Request) -> Crossing:
        upstream = self._upstream
        return up(request, self._client.name, upstream.name, sealer=_sealer,
                  max_tool_name=upstream.max_tool_name, custom_tools=upstream.custom_tools)

    def request(self, payload: Json) -> Json:
        """The upstream body for the caller's *payload*."""
        request = self.decode(payload)
        self._cross(request)
        try:
            return self._upstream.encode_request(request)
        except CodecError as exc:
            raise InvalidRequest(str(exc)) from None

    def response(self, body: Json, payload: Json) -> Json:
        """The caller's answer for the upstream's *body*."""
        down = Down(self._cross(self.decode(payload)))
        try:
            answer = self._upstream.decode_response(body)
        except CodecError as exc:
            raise UpstreamError(f"upstream answer cannot be translated: {exc}") from None
        down.answer(answer)
        return self._client.encode_response(answer, str(payload.get("model")))

    def stream(self, payload: Json) -> BridgeStream:
        request = self.decode(payload)
        down = Down(self._cross(request))
        encoder = self._client.stream_encoder(str(payload.get("model")), request,
                                              estimate_tokens(payload))
        return BridgeStream(self._upstream.stream_decoder(), encoder, down)

    def error(self, status: int, body: bytes) -> bytes:
        """An upstream's error body in the caller's error shape, message kept."""
        message, kind = self._upstream.decode_error(status, body)
        return self._client.encode_error(status, message, kind)


def bridge(client: str, upstreams: tuple[str, ...]) -> Bridge | None:
    """The Bridge serving *client* from the first of *upstreams* we can translate to, or
    None when a codec is missing on either side."""
    key = (client, upstreams)
    try:
        return _BRIDGES[key]
    except KeyError:
        pass
    found = None
    caller = CODECS.get(client)
    if caller is not None:
        for name in sorted(upstreams, key=_rank):
            codec = CODECS.get(name)
            if codec is not None and name != client:
                found = Bridge(caller, codec)
                break
    _BRIDGES[key] = found
    return found


def _rank(name: str) -> int:
    return PREFERENCE.index(name) if name in PREFERENCE else len(PREFERENCE)  # type: ignore[arg-type]
