"""The Responses WebSocket's frames (Codex's built-in provider), pure: no I/O.

Codex opens ``GET /v1/responses`` as a WebSocket and sends each request as one text frame
``{"type": "response.create", ...}`` holding a Responses request's fields; the answer is the
request's stream events, one JSON text frame each. A first frame with ``"generate": false``
only warms the connection up: it is answered ``response.created`` and ``response.completed``
with no model called. Later frames name the response they continue (``previous_response_id``)
and carry only the new input items.

No upstream is asked to remember a response (Codex sends ``store: false``, and a translated
upstream has no such thing): `History` keeps, per connection, the full input and the output of
the last few answered responses, and a continuing frame becomes the whole request again.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

from ...errors import InvalidRequest
from .compaction import user_message
from .items import envelope

Json = dict[str, Any]

#: The type of a client frame that asks for a response.
CREATE = "response.create"
#: Fields of a ``response.create`` frame that an HTTP Responses request does not have.
_FRAME_ONLY = ("type", "generate", "previous_response_id", "client_metadata")
#: How many answered responses a connection keeps to continue from (Codex continues the last).
KEPT = 4


class UnknownResponse(InvalidRequest):
    """A frame continues a response this connection does not hold."""

    code = "previous_response_not_found"


def as_items(given: Any) -> list[Any]:
    """A request's ``input`` as a list of items (a bare string is one user message)."""
    if isinstance(given, str):
        return [user_message(given)]
    return list(given) if isinstance(given, list) else []


class History:
    """The answered responses of one connection, newest last, at most *kept*: each one's full
    input and its output items, which a continuing frame's request is rebuilt from."""

    __slots__ = ("_kept", "_responses")

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._responses: OrderedDict[str, list[Any]] = OrderedDict()

    def request(self, frame: Any) -> tuple[Json, bool]:
        """(the whole Responses request of a client *frame*, whether it asks for an answer);
        `InvalidRequest` for a frame that is no ``response.create``."""
        if not isinstance(frame, dict) or frame.get("type") != CREATE:
            raise InvalidRequest(f"a frame must be a JSON object with \"type\": \"{CREATE}\"")
        payload = {k: v for k, v in frame.items() if k not in _FRAME_ONLY}
        payload["stream"] = True  # the socket carries the stream's events
        previous = frame.get("previous_response_id")
        if previous is not None:
            before = self._responses.get(previous) if isinstance(previous, str) else None
            if before is None:
                raise UnknownResponse(f"previous response '{previous}' is not one this "
                                      "connection answered")
            payload["input"] = [*before, *as_items(frame.get("input"))]
        return payload, frame.get("generate") is not False

    def answered(self, rid: str, payload: Json, output: list[Any]) -> None:
        """Keep response *rid*, answered to the whole request *payload* with *output*."""
        self._responses[rid] = [*as_items(payload.get("input")), *output]
        self._responses.move_to_end(rid)
        while len(self._responses) > self._kept:
            self._responses.popitem(last=False)


class Collector:
    """Reads one response's events as they go out to the caller: its id, its output items
    and whether it completed (only a completed response can be continued)."""

    __slots__ = ("completed", "output", "rid")

    def __init__(self) -> None:
        self.rid: str | None = None
        self.output: list[Any] = []
        self.completed = False

    def see(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            self.output.append(event["item"])
        elif kind == "response.completed" and isinstance(event.get("response"), dict):
            response = event["response"]
            rid = response.get("id")
            self.rid = rid if isinstance(rid, str) and rid else None
            self.completed = self.rid is not None
            if not self.output and isinstance(response.get("output"), list):
                self.output = list(response["output"])


def warm_up(model: str) -> tuple[str, list[Json]]:
    """(the id, the events) of a warm-up frame's answer: no model called, nothing used."""
    rid = f"resp_{os.urandom(12).hex()}"
    created = int(time.time())
    events: list[Json] = []
    for seq, status in enumerate(("in_progress", "completed")):
        response = envelope(rid, model, status=status, output=[], usage=None,
                            created_at=created)
        if status == "completed":
            response["usage"] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        kind = "response.created" if status == "in_progress" else "response.completed"
        events.append({"type": kind, "sequence_number": seq, "response": response})
    return rid, events


def error_frame(status: int, body: Any) -> Json:
    """The frame of a refused request: its HTTP *status* and its OpenAI-shaped error *body*."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": f"the request failed ({status})", "type": "api_error"}
    return {"type": "error", "status": status, "error": error}
