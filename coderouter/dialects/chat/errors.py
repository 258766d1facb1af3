"""Chat Completions error bodies and the in-band error chunk that ends a stream."""

from __future__ import annotations

from ..wire import (
    Json,
    Kind,
    dumps,
    error_body,
    error_message,
    kind_of_status,
    sse_data,
)

_ERROR_TYPES = {"invalid_request": "invalid_request_error",
                "authentication": "authentication_error", "rate_limit": "rate_limit_error",
                "overloaded": "server_error", "context_length": "invalid_request_error",
                "server_error": "server_error"}


# Errors


def _error_of(obj: Json) -> tuple[str, Kind]:
    error = obj.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    kind: Kind = "context_length" if code == "context_length_exceeded" else "server_error"
    return (message if isinstance(message, str) and message else "upstream stream error"), kind


def decode_error(status: int, body: bytes) -> tuple[str, str]:
    parsed = error_body(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    kind = "context_length" if code == "context_length_exceeded" else kind_of_status(status)
    return error_message(status, body, parsed), kind


def encode_error(status: int, message: str, kind: str) -> bytes:
    error = {"message": message, "type": _ERROR_TYPES.get(kind, "invalid_request_error"),
             "code": "context_length_exceeded" if kind == "context_length" else None,
             "param": None}
    return dumps({"error": error}).encode()


def error_event(message: str, kind: str) -> bytes:
    """An in-band error chunk, then ``[DONE]``: clients stop reading at either."""
    code = "context_length_exceeded" if kind == "context_length" else "upstream_error"
    return sse_data({"error": {"message": message, "type": "upstream_error", "code": code}}) \
        + b"data: [DONE]\n\n"
