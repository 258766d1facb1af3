"""The OpenAI Chat Completions dialect: ``/v1/chat/completions`` bodies, answers and chunks.

Spoken by most OpenAI-compatible vendors (DeepSeek, Qwen, Kimi, GLM, OpenRouter, vLLM,
Ollama) and by opencode, qwen-code, aider, Cline and Continue. Reasoning travels as
``reasoning_content`` (``reasoning`` on some servers); Chat has no slot for opaque state.
"""

from __future__ import annotations

from .. import ir
from .errors import decode_error, encode_error, error_event
from .request import decode_request, encode_request
from .response import decode_response, encode_response
from .stream import ChatStreamDecoder, ChatStreamEncoder


class ChatCodec:
    name: ir.WireDialect = "chat"
    custom_tools = False  # OpenAI's own Chat has them; the compatible servers do not
    max_tool_name = 64

    decode_request = staticmethod(decode_request)
    encode_request = staticmethod(encode_request)
    decode_response = staticmethod(decode_response)
    encode_response = staticmethod(encode_response)
    decode_error = staticmethod(decode_error)
    encode_error = staticmethod(encode_error)
    error_event = staticmethod(error_event)

    def stream_decoder(self) -> ChatStreamDecoder:
        return ChatStreamDecoder()

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> ChatStreamEncoder:
        return ChatStreamEncoder(model, request.hints.get("include_usage") is True)


CODEC = ChatCodec()
