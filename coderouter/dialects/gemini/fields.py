"""Gemini field access (JSON or proto names), thought signatures on the wire, ids."""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

import orjson

from .. import ir

Json = dict[str, Any]

#: The signature Gemini accepts for a function call it did not produce itself.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def _get(obj: Json, camel: str) -> Any:
    """*obj*'s field by its JSON name, or by the proto name Google's servers also accept."""
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel))


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _signature(part: Json) -> ir.Opaque | None:
    sig = _get(part, "thoughtSignature")
    if not isinstance(sig, str) or not sig or sig == SKIP_SIGNATURE:
        return None
    return ir.Opaque("gemini", _from_wire(sig))


def _own(sig: ir.Opaque | None) -> str | None:
    """The payload of a signature Gemini issued, as it goes on the wire; None for any other
    issuer's."""
    return _to_wire(sig.data) if sig is not None and sig.issuer == "gemini" else None


#: ``thoughtSignature`` is bytes in base64 (google-genai refuses anything else). State that is
#: not base64 (an envelope the gateway sealed) travels as base64 of a marker and its text; the
#: marker starts with a zero byte, which no real signature (a protobuf message) starts with.
_WRAPPED = b"\x00cr:"
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _to_wire(data: str) -> str:
    if len(data) % 4 == 0 and _BASE64.fullmatch(data):
        return data
    return base64.urlsafe_b64encode(_WRAPPED + data.encode()).decode()


def _from_wire(sig: str) -> str:
    if not sig.startswith("AGNy"):  # base64 of the marker's first bytes
        return sig
    try:
        raw = base64.urlsafe_b64decode(sig)
    except (ValueError, binascii.Error):
        return sig
    return raw[len(_WRAPPED):].decode("utf-8", "replace") if raw.startswith(_WRAPPED) else sig


def _args_text(args: Any) -> str:
    return orjson.dumps(args if args is not None else {}).decode()


def _new_id() -> str:
    return os.urandom(8).hex()
