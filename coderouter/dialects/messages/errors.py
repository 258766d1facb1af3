"""Messages error bodies and the ``error`` event that ends a stream."""

from __future__ import annotations

from ..wire import Kind, dumps, error_body, error_message, kind_of_status, sse

_KIND_OF_TYPE: dict[str, Kind] = {
    "invalid_request_error": "invalid_request", "authentication_error": "authentication",
    "permission_error": "authentication", "rate_limit_error": "rate_limit",
    "overloaded_error": "overloaded", "api_error": "server_error",
    "timeout_error": "server_error", "request_too_large": "invalid_request"}

#: Anthropic's ``error.type`` by HTTP status (api.anthropic.com's table).
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}
_TYPE_OF_KIND = {"invalid_request": "invalid_request_error",
                 "authentication": "authentication_error", "rate_limit": "rate_limit_error",
                 "overloaded": "overloaded_error", "context_length": "invalid_request_error",
                 "server_error": "api_error"}


# Errors


def decode_error(status: int, body: bytes) -> tuple[str, str]:
    parsed = error_body(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    kind = _KIND_OF_TYPE.get(str(error.get("type"))) if isinstance(error, dict) else None
    message = error_message(status, body, parsed)
    if "prompt is too long" in message:
        kind = "context_length"
    return message, kind or kind_of_status(status)


def encode_error(status: int, message: str, kind: str) -> bytes:
    kind_type = ERROR_TYPES.get(status) or _TYPE_OF_KIND.get(kind) or (
        "api_error" if status >= 500 else "invalid_request_error")
    return dumps({"type": "error", "error": {"type": kind_type, "message": message}}).encode()


def error_event(message: str, kind: str) -> bytes:
    return sse("error", {"type": "error", "error": {
        "type": _TYPE_OF_KIND.get(kind, "api_error"), "message": message}})
