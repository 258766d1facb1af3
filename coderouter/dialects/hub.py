"""Serving a caller dialect from an upstream that speaks another: two codecs and a Bridge.

A `Bridge` decodes the caller's request to the neutral representation and encodes it in the
upstream's dialect; answers, stream events and error bodies go the other way. The codecs are
`registry.CODECS`; a pair is served once both of its codecs are there.

A request that cannot be decoded is the caller's error (`InvalidRequest`, 400); an upstream
answer or stream that cannot be decoded is the upstream's (`UpstreamError`, 502).
"""

from __future__ import annotations

from typing import Any

from ..errors import GatewayError, InvalidRequest, UpstreamError
from . import framing, ir
from .codec import Codec, CodecError, StreamDecoder, StreamEncoder
from .crossing import Crossing, Down, up
from .dialect import FAILURE_KIND
from .envelope import sealer as sealer  # re-exported: the relay calls hub.sealer
from .envelope import use_secret as use_secret  # re-exported: the app calls hub.use_secret
from .registry import CODECS

Json = dict[str, Any]

#: Which upstream dialect to use, in order of preference, when a channel does not speak the
#: caller's: Chat is what most OpenAI-compatible servers get right.
PREFERENCE: tuple[ir.WireDialect, ...] = ("chat", "messages", "responses", "gemini")


_BRIDGES: dict[tuple[str, tuple[str, ...]], Bridge | None] = {}


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
            for name, data in framing.events(events):
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

    def error_event(self, error: GatewayError) -> bytes:
        """The caller-dialect events that end this stream with an error, after whatever was
        encoded before the failure (a Responses caller gets ``response.failed`` with the
        next sequence number and a code it acts on). The kind is the upstream's when it sent
        the error, else the gateway error's, as on the pass-through path."""
        kind = self._kind or FAILURE_KIND[error.kind]
        failure = ir.Failure(error.message, kind)  # type: ignore[arg-type]
        unsent, self._unsent = self._unsent, b""
        return unsent + self._encoder.feed(failure) + self._encoder.close()


class Bridge:
    """Serves *client*'s dialect from an upstream speaking *upstream*'s: `translate` one
    caller request into a `Translation` that serves every attempt on this bridge."""

    __slots__ = ("_client", "_upstream", "upstream")

    def __init__(self, client: Codec, upstream: Codec) -> None:
        self._client = client
        self._upstream = upstream
        self.upstream = upstream.name

    def __repr__(self) -> str:
        return f"Bridge({self._client.name} <- {self._upstream.name})"

    def translate(self, payload: Json, prompt_tokens: int = 0, caller: str = "") -> Translation:
        """The caller's *payload* decoded once (a caller's mistake is found here, before any
        target); *prompt_tokens* is its estimate (a stream encoder shows it before the
        upstream reports usage)."""
        request = self._decode(payload)
        return Translation(self, payload, request, str(payload.get("model")), prompt_tokens)

    def _decode(self, payload: Json) -> ir.Request:
        try:
            return self._client.decode_request(payload)
        except CodecError as exc:
            raise InvalidRequest(str(exc)) from None

    def _cross(self, request: ir.Request, bound: str) -> Crossing:
        upstream = self._upstream
        return up(request, self._client.name, upstream.name, sealer=sealer(), bound=bound,
                  max_tool_name=upstream.max_tool_name, custom_tools=upstream.custom_tools)

    def error(self, status: int, body: bytes) -> bytes:
        """An upstream's error body in the caller's error shape, message kept."""
        message, kind = self._upstream.decode_error(status, body)
        return self._client.encode_error(status, message, kind)


class Translation:
    """One caller request on its way across a Bridge: decoded once, crossed once per binding
    (the envelopes it carries open only for the channel, key and token they were sealed for),
    encoded for each target's model, and the way back (answer, stream, error) for the
    caller of the attempt crossed last."""

    __slots__ = ("_bridge", "_crossing", "_model", "_payload", "_prompt_tokens", "_request",
                 "upstream")

    def __init__(self, bridge: Bridge, payload: Json, request: ir.Request, model: str,
                 prompt_tokens: int) -> None:
        self._bridge = bridge
        self._payload = payload
        self._request = request
        self._crossing: Crossing | None = None
        self._model = model  # the caller's, named back in the answer
        self._prompt_tokens = prompt_tokens
        self.upstream = bridge.upstream

    def request(self, model: str, bound: str = "") -> Json:
        """The upstream body asking *model* (a codec may encode by the model it reaches),
        with the envelopes sealed for *bound* (`envelope.binding`) opened."""
        crossing = self._crossing
        if crossing is None or crossing.bound != bound:
            if crossing is not None:  # another channel: cross a fresh decoding for it
                self._request = self._bridge._decode(self._payload)
            self._crossing = self._bridge._cross(self._request, bound)
        self._request.model = model
        try:
            return self._bridge._upstream.encode_request(self._request)
        except CodecError as exc:
            raise InvalidRequest(str(exc)) from None

    def response(self, body: Json) -> Json:
        """The caller's answer for the upstream's *body*."""
        if not isinstance(body, dict):
            raise UpstreamError("upstream answer cannot be translated: not a JSON object")
        try:
            answer = self._bridge._upstream.decode_response(body)
        except CodecError as exc:
            raise UpstreamError(f"upstream answer cannot be translated: {exc}") from None
        Down(self._crossed()).answer(answer)
        return self._bridge._client.encode_response(answer, self._model)

    def stream(self) -> BridgeStream:
        """A converter of the upstream's stream events into the caller's."""
        bridge = self._bridge
        encoder = bridge._client.stream_encoder(self._model, self._request, self._prompt_tokens)
        return BridgeStream(bridge._upstream.stream_decoder(), encoder, Down(self._crossed()))

    def error(self, status: int, body: bytes) -> bytes:
        return self._bridge.error(status, body)

    def _crossed(self) -> Crossing:
        if self._crossing is None:  # an answer before any request: crossed unbound
            self._crossing = self._bridge._cross(self._request, "")
        return self._crossing


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
    return PREFERENCE.index(name) if name in PREFERENCE else len(PREFERENCE)
