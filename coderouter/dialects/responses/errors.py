"""Responses error bodies and the ``response.failed`` event that ends a stream."""

from __future__ import annotations

import orjson

from ..wire import typed
from .items import error_code, failed_event

_CODE_TO_KIND = {
    "context_length_exceeded": "context_length",
    "rate_limit_exceeded": "rate_limit",
    "insufficient_quota": "rate_limit",
    "server_error": "server_error",
    "invalid_prompt": "invalid_request",
    "invalid_api_key": "authentication",
}
_KIND_TO_TYPE = {
    "context_length": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "insufficient_quota": "insufficient_quota",
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
}


# -- errors ---------------------------------------------------------------------------------


def decode_error(status: int, body: bytes) -> tuple[str, str]:
    """(message, neutral kind) of an OpenAI-shaped error body; never raises."""
    message, code, etype = "", None, None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    error = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(obj, dict) and obj.get("type") in ("error", "response.failed"):
        error = obj.get("error", obj) if obj.get("type") == "error" else (
            (obj.get("response") or {}).get("error"))
        if obj.get("type") == "error" and "message" in obj:
            error = obj
    if isinstance(error, dict):
        message = typed(error.get("message"), str, "")
        code = typed(error.get("code"), str, None)
        etype = typed(error.get("type"), str, None)
    elif isinstance(error, str):
        message = error
    if not message:
        message = body.decode("utf-8", "replace").strip()[:1000] or f"upstream answered {status}"
    kind = _CODE_TO_KIND.get(code or "") or _CODE_TO_KIND.get(etype or "")
    if kind is None:
        if status == 429:
            kind = "rate_limit"
        elif status in (401, 403):
            kind = "authentication"
        elif status in (503, 529):
            kind = "overloaded"
        elif status >= 500 or status == 0:
            kind = "server_error"
        else:
            kind = "invalid_request"
    return message, kind


def encode_error(status: int, message: str, kind: str) -> bytes:
    """An OpenAI-shaped error body, ``{"error": {message, type, param, code}}``."""
    etype = _KIND_TO_TYPE.get(kind, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None,
                                   "code": error_code(kind)}})


def error_event(message: str, kind: str) -> bytes:
    """A ``response.failed`` event ending a stream that has no encoder state."""
    return failed_event(message, error_code(kind))
