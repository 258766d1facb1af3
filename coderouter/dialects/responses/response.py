"""Responses answers: an upstream answer object to `ir.Response` and back."""

from __future__ import annotations

import time

from .. import ir
from ..codec import CodecError
from ..wire import typed
from .items import (
    Json,
    decode_usage,
    envelope,
    finish_reason,
    kind_of,
    output_item,
    output_parts,
    response_id,
)

# -- answers --------------------------------------------------------------------------------


def decode_response(body: Json) -> ir.Response:
    """A Responses answer object as an `ir.Response`."""
    output = body.get("output")
    if not isinstance(output, list):
        raise CodecError(f"output: expected an array, got {kind_of(output)}")
    parts = [p for item in output for p in output_parts(item)]
    return ir.Response(
        id=typed(body.get("id"), str, ""),
        model=typed(body.get("model"), str, ""),
        parts=parts,
        finish=finish_reason(body.get("status"), body.get("incomplete_details"), parts),
        usage=decode_usage(body.get("usage")))


_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def encode_response(response: ir.Response, model: str) -> Json:
    """An `ir.Response` as a Responses answer object for the caller."""
    rid = response_id(response.id)
    output = [item for i, part in enumerate(response.parts)
              if (item := output_item(part, rid, i, local_shell=True)) is not None]
    incomplete = _INCOMPLETE_REASONS.get(response.finish)
    status = "incomplete" if incomplete else (
        "failed" if response.finish == "error" else "completed")
    error = {"code": "server_error", "message": "the upstream failed"} if (
        status == "failed") else None
    return envelope(rid, model, status=status, output=output,
                    usage=response.usage or ir.Usage(), created_at=int(time.time()),
                    incomplete=incomplete, error=error)
