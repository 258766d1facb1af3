"""The Anthropic Messages dialect: ``/v1/messages`` bodies, answers and events.

Spoken by Claude Code and Anthropic's API. Thinking blocks carry a ``signature`` (redacted
ones their ``data``): opaque state issued by "messages", returned byte for byte. Fields only
Anthropic understands (``context_management``, ``output_config``, beta tool fields, server
tools) are not part of the neutral request, so no other dialect ever sees them.
"""

from __future__ import annotations

from .. import ir
from .errors import decode_error, encode_error, error_event
from .request import decode_request, encode_request
from .response import decode_response, encode_response
from .stream import MessagesStreamDecoder, MessagesStreamEncoder


class MessagesCodec:
    name: ir.WireDialect = "messages"
    custom_tools = False
    max_tool_name = 64

    decode_request = staticmethod(decode_request)
    encode_request = staticmethod(encode_request)
    decode_response = staticmethod(decode_response)
    encode_response = staticmethod(encode_response)
    decode_error = staticmethod(decode_error)
    encode_error = staticmethod(encode_error)
    error_event = staticmethod(error_event)

    def stream_decoder(self) -> MessagesStreamDecoder:
        return MessagesStreamDecoder()

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> MessagesStreamEncoder:
        return MessagesStreamEncoder(model, estimated_input_tokens)


CODEC = MessagesCodec()
