"""Helpers the codecs share: typed access with path-precise errors, data: URIs, SSE framing,
upstream error bodies. Pure."""

from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

import orjson

from .codec import CodecError

Json = dict[str, Any]
T = TypeVar("T")
D = TypeVar("D")
#: The neutral error classes of `ir.Failure.kind`.
Kind = Literal["invalid_request", "rate_limit", "overloaded", "context_length",
               "authentication", "server_error"]

#: Neutral error kinds (`ir.Failure.kind`) by HTTP status, for bodies that do not say.
_KIND_BY_STATUS: dict[int, Kind] = {
    400: "invalid_request", 401: "authentication", 403: "authentication",
    404: "invalid_request", 413: "invalid_request", 422: "invalid_request",
    429: "rate_limit", 503: "overloaded", 529: "overloaded"}
_MAX_MESSAGE = 1000


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def need_dict(value: Any, where: str) -> Json:
    if not isinstance(value, dict):
        raise CodecError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def need_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def need_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CodecError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def opt_int(body: Json, key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(f"{key}: expected an integer, got {value!r}")
    return value


def opt_number(body: Json, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CodecError(f"{key}: expected a number, got {value!r}")
    return value


def count(value: Any) -> int:
    """A token count from an upstream usage field; anything else is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def arguments_object(arguments: str) -> Json:
    """Tool-call arguments as an object for dialects that carry one; unusable text is {}."""
    try:
        parsed = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def data_uri(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def split_data_uri(uri: str, where: str) -> tuple[str, str]:
    """(media_type, base64 data) of a ``data:...;base64,...`` URI."""
    header, sep, data = uri.partition(",")
    if not sep or not header.endswith(";base64"):
        raise CodecError(f"{where}: only base64 data: URIs are supported")
    return header[len("data:"):-len(";base64")], data


def loads_event(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise CodecError(f"{where}: the upstream sent an event that is not JSON") from None


def sse(name: str, payload: Json) -> bytes:
    """One named SSE event, compact JSON."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def sse_data(payload: Json) -> bytes:
    """One unnamed SSE event, compact JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def estimate_output(chars: int, per_token: int) -> int:
    return math.ceil(chars / per_token)


def error_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def error_message(status: int, body: bytes, parsed: Any) -> str:
    """The message of an OpenAI-, Anthropic- or Google-shaped error body, else its text."""
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # Google sometimes wraps its error in a list
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(parsed.get("message"), str):
            return parsed["message"]
    text = body.decode("utf-8", "replace").strip()[:_MAX_MESSAGE]
    return text or f"upstream answered {status}"


def kind_of_status(status: int) -> Kind:
    if status in _KIND_BY_STATUS:
        return _KIND_BY_STATUS[status]
    return "server_error" if status >= 500 else "invalid_request"


def typed(value: Any, kind: type[T], default: D) -> T | D:
    """*value* when it is a *kind*, else *default* (a field of an upstream body read leniently)."""
    return value if isinstance(value, kind) else default
