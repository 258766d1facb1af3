"""Counting tokens across dialects: Anthropic's ``count_tokens`` answered by Gemini's
``countTokens`` and the other way round, through the two codecs. Pure.

A counting request is a conversation without an answer: the caller's codec decodes it, the
upstream's encodes it, and the count comes back in the caller's shape. A route whose channels
count in neither dialect is answered with a local estimate by the proxy instead.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest, UpstreamError
from . import ir
from .codec import Codec, CodecError
from .registry import CODECS

Json = dict[str, Any]

#: Counting dialect -> the codec of the conversations it counts, and its answer's field.
_COUNTS = {"count_tokens": ("messages", "input_tokens"),
           "gemini_count": ("gemini", "totalTokens")}
#: What Anthropic's count_tokens accepts of a Messages body.
_MESSAGES_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")


class CountBridge:
    """A proxy `Conversion` for a counting route on a channel counting in another dialect."""

    __slots__ = ("_client", "_field", "_upstream", "_upstream_field", "upstream")

    def __init__(self, client: str, upstream: str) -> None:
        self._client: Codec = CODECS[_COUNTS[client][0]]
        self._upstream: Codec = CODECS[_COUNTS[upstream][0]]
        self._field = _COUNTS[client][1]
        self._upstream_field = _COUNTS[upstream][1]
        self.upstream = upstream

    def __repr__(self) -> str:
        return f"CountBridge({self._client.name} <- {self._upstream.name})"

    def translate(self, payload: Json, prompt_tokens: int = 0,
                  caller: str = "") -> CountTranslation:
        """The caller's counting request, decoded once for every attempt."""
        inner = payload.get("generateContentRequest")  # Gemini's fuller form
        if isinstance(inner, dict):
            payload = {**inner, "model": payload.get("model")}
        try:
            request = self._client.decode_request(payload)
        except CodecError as exc:
            raise InvalidRequest(str(exc)) from None
        return CountTranslation(self, request)

    def error(self, status: int, body: bytes) -> bytes:
        message, kind = self._upstream.decode_error(status, body)
        return self._client.encode_error(status, message, kind)


class CountTranslation:
    """One counting request across a CountBridge (a relay Translation)."""

    __slots__ = ("_bridge", "_request", "upstream")

    def __init__(self, bridge: CountBridge, request: ir.Request) -> None:
        self._bridge = bridge
        self._request = request
        self.upstream = bridge.upstream

    def request(self, model: str, bound: str = "") -> Json:
        bridge = self._bridge
        self._request.model = model
        try:
            body = bridge._upstream.encode_request(self._request)
        except CodecError as exc:
            raise InvalidRequest(str(exc)) from None
        if self.upstream == "gemini_count":  # the relay names the model inside
            return {"generateContentRequest": {"model": "", **body}}
        return {k: v for k, v in body.items() if k in _MESSAGES_COUNTED}

    def response(self, body: Json) -> Json:
        field = self._bridge._upstream_field
        count = body.get(field)
        if isinstance(count, bool) or not isinstance(count, int):
            raise UpstreamError(f"upstream count has no integer '{field}'")
        return {self._bridge._field: count}

    def stream(self) -> Any:
        raise InvalidRequest("counting tokens does not stream")

    def error(self, status: int, body: bytes) -> bytes:
        return self._bridge.error(status, body)


_BRIDGES: dict[tuple[str, str], CountBridge] = {}


def bridge(client: str, native: tuple[str, ...]) -> CountBridge | None:
    """How a channel speaking *native* dialects answers a *client* counting route, or None."""
    if client not in _COUNTS:
        return None
    for upstream in _COUNTS:
        if upstream != client and upstream in native:
            key = (client, upstream)
            if key not in _BRIDGES:
                _BRIDGES[key] = CountBridge(client, upstream)
            return _BRIDGES[key]
    return None
