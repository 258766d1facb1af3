"""What a dialect module provides: the `Codec` protocol. Pure, no I/O.

One module per wire dialect (``chat``, ``messages``, ``responses``, ``gemini``), each exposing
``CODEC``: an object satisfying `Codec`. The hub pairs any two of them; a codec knows only its
own dialect and the neutral representation in `ir`.

Errors: a request body that is structurally wrong for the dialect raises `CodecError` with the
path of the offending value (``messages[2].content[0].type: …``); the gateway answers the
caller 400 in the caller's dialect. An upstream body or event that cannot be decoded raises
`CodecError` too; the gateway treats that as the upstream's failure (502). Anything the
dialect allows must decode without raising (unknown block types are skipped, not refused).
"""

from __future__ import annotations

from typing import Any, Protocol

from . import ir


class CodecError(ValueError):
    """A body or event that does not fit its dialect; the message names the path."""


class StreamDecoder(Protocol):
    """Upstream SSE events of one dialect in, neutral events out."""

    def feed(self, name: str, data: bytes) -> list[ir.Event]:
        """The events of one SSE event: its ``event:`` name ("" when absent) and its data."""
        ...

    def close(self) -> list[ir.Event]:
        """The upstream's stream ended: whatever closing events follow (open parts end, a
        `Finish` the dialect implies, e.g. after Chat's ``[DONE]``). A stream cut before its
        end yields a `Failure` here rather than a clean `Finish`."""
        ...


class StreamEncoder(Protocol):
    """Neutral events in, the caller dialect's SSE bytes out (complete events only)."""

    def feed(self, event: ir.Event) -> bytes: ...

    def close(self) -> bytes:
        """Bytes owed at the end (Chat's ``data: [DONE]``); b"" when nothing is owed."""
        ...


class Codec(Protocol):
    """Decode and encode one wire dialect."""

    name: ir.WireDialect
    #: Capabilities the hub consults before encoding a request for this dialect upstream.
    custom_tools: bool        # freeform (grammar) tools are native
    max_tool_name: int        # longest tool name the dialect accepts (64 where it is capped)

    # requests: caller side decodes, upstream side encodes
    def decode_request(self, body: dict[str, Any]) -> ir.Request: ...

    def encode_request(self, request: ir.Request) -> dict[str, Any]: ...

    # answers: upstream side decodes, caller side encodes (*model* = the name the caller used)
    def decode_response(self, body: dict[str, Any]) -> ir.Response: ...

    def encode_response(self, response: ir.Response, model: str) -> dict[str, Any]: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> StreamEncoder:
        """*request* is the caller's decoded request (Chat reads its include_usage hint);
        *estimated_input_tokens* fills usage a dialect must show before the upstream said."""
        ...

    # errors
    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        """(message, neutral kind) of an upstream error body; never raises."""
        ...

    def encode_error(self, status: int, message: str, kind: str) -> bytes:
        """A non-stream error body in this dialect's shape."""
        ...

    def error_event(self, message: str, kind: str) -> bytes:
        """The terminal SSE event(s) that end a stream with an error in this dialect."""
        ...
