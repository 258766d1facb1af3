"""Gemini error bodies (google.rpc.Status) and the error chunk that ends a stream."""

from __future__ import annotations

import re
from typing import Any

import orjson

#: Google's RPC status name for an HTTP status (google.rpc.Code).
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
    502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_KIND_OF_STATUS = {
    "RESOURCE_EXHAUSTED": "rate_limit", "UNAVAILABLE": "overloaded",
    "UNAUTHENTICATED": "authentication", "PERMISSION_DENIED": "authentication",
    "INVALID_ARGUMENT": "invalid_request", "FAILED_PRECONDITION": "invalid_request",
    "NOT_FOUND": "invalid_request", "OUT_OF_RANGE": "invalid_request",
}
#: The HTTP code an in-stream error of a neutral kind is reported with.
_CODE_OF_KIND = {"invalid_request": 400, "context_length": 400, "authentication": 401,
                 "rate_limit": 429, "overloaded": 503, "server_error": 500}
_CONTEXT_LENGTH = re.compile(r"token count.*exceeds|exceeds the maximum number of tokens", re.I)


# Errors


def _error_of(obj: Any, status: int) -> tuple[str, str]:
    if isinstance(obj, list) and obj:
        obj = obj[0]
    error = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(error, dict):
        return (f"upstream answered {status}", _kind(status, None, ""))
    message = error.get("message")
    message = message if isinstance(message, str) and message else f"upstream answered {status}"
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    return message, _kind(code, error.get("status"), message)


def _kind(code: int, status: Any, message: str) -> str:
    kind = _KIND_OF_STATUS.get(status) if isinstance(status, str) else None
    if kind is None:
        kind = {400: "invalid_request", 401: "authentication", 403: "authentication",
                404: "invalid_request", 429: "rate_limit", 503: "overloaded"}.get(code)
        if kind is None:
            kind = "invalid_request" if 400 <= code < 500 else "server_error"
    if kind == "invalid_request" and _CONTEXT_LENGTH.search(message):
        return "context_length"
    return kind


def decode_error(status: int, body: bytes) -> tuple[str, str]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()[:1000]
        return text or f"upstream answered {status}", _kind(status, None, text)
    return _error_of(obj, status)


def error_body(status: int, message: str, status_name: str | None = None) -> bytes:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    return orjson.dumps({"error": {
        "code": status, "message": message,
        "status": status_name or STATUS_NAMES.get(status,
                                                  "INTERNAL" if status >= 500 else "UNKNOWN")}})


def _error_chunk(message: str, kind: str) -> bytes:
    code = _CODE_OF_KIND.get(kind, 500)
    return b"data: " + error_body(code, message) + b"\r\n\r\n"
