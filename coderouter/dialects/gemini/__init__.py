"""The Gemini API dialect (``generateContent`` / ``streamGenerateContent``): `CODEC`. Pure.

Gemini carries no model and no stream flag in its body: the model is in the URL path and the
stream is the method. The gateway adds both to the decoded body as ``model`` and ``stream``
(keys Gemini does not have) before `decode_request`; `encode_request` never writes them.

What Gemini lacks and this codec makes up:

* Call ids. ``functionCall.id`` is optional. A request's calls without one get ids from their
  position (``call_{content}_{part}``), the same on every turn of a conversation; a
  ``functionResponse`` without one answers the oldest unanswered call of its name. The
  ``{name}__`` prefix the Gemini CLI puts on ids it was given is taken off again. An answer's
  calls without one get ``call_<random>_<n>``, fixed for the whole stream.
* ``functionResponse.name``: Gemini needs it, other dialects do not send it; it is looked up
  from the call with the same id earlier in the request.
* Thought signatures. ``thoughtSignature`` on a part is kept on that part as
  ``Opaque("gemini", …)``. The Gemini CLI's placeholder ``skip_thought_signature_validator`` is
  not state and decodes to nothing. Encoding a request, the first ``functionCall`` of each model
  turn that has no signature gets the placeholder, which Gemini 3 accepts (its 400 otherwise).
  Encoding an answer for a Gemini caller, a reasoning part's signature is put on the next part
  that is not a thought (the first function call or text), where Gemini itself puts it: callers
  such as the Gemini CLI keep those parts in their history and drop thought parts.
* Arguments. ``functionCall.args`` is a JSON object; the neutral form is its raw text.
"""

from __future__ import annotations

from .. import ir
from .errors import _error_chunk, decode_error, error_body
from .fields import Json
from .request import decode_request, encode_request
from .response import decode_response, encode_response
from .stream import StreamDecoder, StreamEncoder


class GeminiCodec:
    name: ir.WireDialect = "gemini"
    custom_tools = False
    max_tool_name = 64

    def decode_request(self, body: Json) -> ir.Request:
        return decode_request(body)

    def encode_request(self, request: ir.Request) -> Json:
        return encode_request(request)

    def decode_response(self, body: Json) -> ir.Response:
        return decode_response(body)

    def encode_response(self, response: ir.Response, model: str) -> Json:
        return encode_response(response, model)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder()

    def stream_encoder(self, model: str, request: ir.Request,
                       estimated_input_tokens: int) -> StreamEncoder:
        return StreamEncoder(model, estimated_input_tokens)

    def decode_error(self, status: int, body: bytes) -> tuple[str, str]:
        return decode_error(status, body)

    def encode_error(self, status: int, message: str, kind: str) -> bytes:
        return error_body(status, message)

    def error_event(self, message: str, kind: str) -> bytes:
        return _error_chunk(message, kind)


CODEC = GeminiCodec()
