"""The OpenAI Responses API dialect (Codex CLI, opencode with @ai-sdk/openai). Pure, no I/O.

Caller side: a ``/v1/responses`` body decodes to an `ir.Request`; answers and streams encode
back to Responses objects and the full event lifecycle Codex needs (see `responses_stream`).
Upstream side: an `ir.Request` encodes to a Responses body, answers and events decode to ir.

What each Responses input item becomes (decode), and why:

* ``message``: user/assistant text, images and files; ``system``/``developer`` roles and the
  top-level ``instructions`` are system messages.
* ``reasoning``: a `Reasoning` part (summary text, or raw ``content`` text when there is no
  summary), its ``encrypted_content`` as ``Opaque("responses", …)``, its ``rs_…`` id kept.
* ``function_call`` / ``custom_tool_call``: `ToolCall` (kind function / custom), arguments or
  input kept as raw text; their ``*_output`` items: `ToolResult` parts in a user message.
  Consecutive assistant items (reasoning, messages, calls) merge into one assistant message,
  consecutive results and user messages into one user message.
* ``local_shell_call``: a function `ToolCall` named ``local_shell`` whose arguments are the
  action's JSON (``command``, ``workdir``, ``timeout_ms``, ``env``, ``user``); its output item
  a `ToolResult`. The ``local_shell`` tool likewise becomes a function tool (`LOCAL_SHELL`
  schema, ``raw`` kept), so any upstream can run Codex's shell; such calls are encoded back as
  ``local_shell_call`` items.
* ``compaction``: OpenAI's (ours were opened before, see `compaction`) is a note that earlier
  turns are unreadable here. Other OpenAI-side state and unknown types: skipped.

Tools: ``function`` and ``custom`` (freeform, with its grammar ``format``) map to `Tool`;
``local_shell`` as above; a ``namespace`` (Codex's sub-agent and MCP tool groups) is flattened
into function tools named ``{namespace}__{name}``, and calls to them go back to the caller with
``name`` and ``namespace`` apart again. Every other type (``web_search``, ``image_generation``,
``file_search``, ``mcp`` …) is a builtin `Tool` with its raw JSON kept, for the other dialect's
encoder to map (web search) or leave out.

``previous_response_id`` and ``conversation`` refer to history stored at OpenAI; a translated
request cannot carry them, so they are refused with a clear 400 rather than silently dropped.
"""

from __future__ import annotations

from .. import ir
from .errors import decode_error, encode_error, error_event
from .items import Json
from .request import decode_request, encode_request
from .response import decode_response, encode_response
from .stream import ResponsesStreamDecoder, ResponsesStreamEncoder


class ResponsesCodec:
    """The `Codec` of the Responses API."""

    name: ir.WireDialect = "responses"
    custom_tools = True
    max_tool_name = 64

    def decode_request(self, body: Json) -> ir.Request:
        return decode_request(body)

    def encode_request(self, request: ir.Request) -> Json:
        return encode_request(request)

    def decode_response(self, body: Json) -> ir.Response:
        return decode_response(body)

    def encode_response(self, response: ir.Response, model: str) -> Json:
        return encode_response(response, model)

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(model, request, estimated_input_tokens)

    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        return decode_error(status, body)

    def encode_error(self, status: int, message: str, kind: str) -> bytes:
        return encode_error(status, message, kind)

    def error_event(self, message: str, kind: str) -> bytes:
        return error_event(message, kind)


CODEC = ResponsesCodec()
