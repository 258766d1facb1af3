"""A real fake Gemini API upstream: an aiohttp app speaking ``generativelanguage`` on loopback.

Answers are shaped as the API reference shows them and written as Google's servers write them
(``": "`` after keys, ``data: …`` events ended by ``\\r\\n\\r\\n`` on ``?alt=sse`` streams). It
records every request (`Seen`) and answers each by the next queued `Reply`, else the default:
a functionCall (with a thoughtSignature, after a thought when thoughts are asked for) when the
request offers functions and its last turn is not a functionResponse, text otherwise. Like
Gemini 3 it refuses (400) a model turn whose first functionCall carries no thoughtSignature,
and a signature it did not issue.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import Seen

MODEL_VERSION = "gemini-2.5-flash"
RESPONSE_ID = "Y2dlbW1hX3Jlc3BvbnNl"
SIGNATURE = "CiwBjz1rX2V4YW1wbGVfdGhvdWdodF9zaWduYXR1cmVfYnl0ZXM="
TEXT = ["Hello", " from", " Gemini!"]
THOUGHT = "The user wants the weather; call the tool."
CALL = {"name": "get_weather", "args": {"location": "Paris"}}
USAGE = {"promptTokenCount": 30, "candidatesTokenCount": 7, "totalTokenCount": 57,
         "cachedContentTokenCount": 10, "thoughtsTokenCount": 20}
#: The usage row of one default answer: 30 prompt tokens (10 cached), 7 + 20 thought tokens.
ROW_USAGE = {"prompt_tokens": 30, "completion_tokens": 27, "total_tokens": 57,
             "cached_tokens": 10, "usage_source": "upstream"}
COUNTED = 42
SKIP = "skip_thought_signature_validator"


def dumps(obj: Any) -> bytes:
    """JSON as Google's servers write it."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode()


def sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\r\n\r\n"


def error(code: int, message: str, status: str) -> bytes:
    return dumps({"error": {"code": code, "message": message, "status": status}})


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None          # answer these exact bytes instead
    tool: bool | None = None           # force a functionCall (True) or text (False)
    cut_after: int | None = None       # close the connection after this many stream events
    events: list[bytes] | None = None  # stream exactly these events


def signature_problem(payload: dict[str, Any]) -> str | None:
    """What Gemini 3 answers 400 about, in the current turn (the steps since the last user
    message that is not only function responses): a model step whose first functionCall has
    no thoughtSignature, or a signature it did not issue (nor the documented placeholder)."""
    contents = payload.get("contents") or []
    start = max((n for n, c in enumerate(contents) if c.get("role", "user") == "user" and any(
        "functionResponse" not in p for p in c.get("parts") or [])), default=0)
    for n, content in enumerate(contents[start:], start):
        if content.get("role") != "model":
            continue
        calls = [p for p in content.get("parts") or [] if "functionCall" in p]
        if calls and "thoughtSignature" not in calls[0]:
            return (f"Function call is missing a thought_signature in functionCall parts. "
                    f"Position {n}")
        for part in content.get("parts") or []:
            sig = part.get("thoughtSignature")
            if sig is not None and sig not in (SIGNATURE, SKIP):
                return f"Corrupted thought signature at position {n}"
    return None


def wants_tool(payload: dict[str, Any]) -> bool:
    contents = payload.get("contents") or [{}]
    parts = contents[-1].get("parts") or []
    answered = any(isinstance(p, dict) and "functionResponse" in p for p in parts)
    declared = any("functionDeclarations" in t for t in payload.get("tools") or [])
    return declared and not answered


def wants_thoughts(payload: dict[str, Any]) -> bool:
    thinking = (payload.get("generationConfig") or {}).get("thinkingConfig") or {}
    return thinking.get("includeThoughts") is True


def chunk(parts: list[dict[str, Any]] | None, *, finish: str | None = None,
          usage: dict[str, int] | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    out: dict[str, Any] = {"candidates": [candidate]}
    out["usageMetadata"] = usage or {"promptTokenCount": USAGE["promptTokenCount"],
                                     "totalTokenCount": USAGE["promptTokenCount"]}
    out["modelVersion"] = MODEL_VERSION
    out["responseId"] = RESPONSE_ID
    return out


def answer_parts(payload: dict[str, Any], tool: bool | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if wants_thoughts(payload):
        parts.append({"text": THOUGHT, "thought": True})
    if wants_tool(payload) if tool is None else tool:
        parts.append({"functionCall": CALL, "thoughtSignature": SIGNATURE})
    else:
        parts.append({"text": "".join(TEXT)})
    return parts


def stream_events(payload: dict[str, Any], tool: bool | None) -> list[bytes]:
    """The events of one answer: a thought, then the text word by word or the call whole, and
    a last chunk with finishReason and the full usage."""
    events = []
    if wants_thoughts(payload):
        events.append(sse(chunk([{"text": THOUGHT, "thought": True}])))
    if wants_tool(payload) if tool is None else tool:
        events.append(sse(chunk([{"functionCall": CALL, "thoughtSignature": SIGNATURE}],
                                finish="STOP", usage=USAGE)))
        return events
    events += [sse(chunk([{"text": word}])) for word in TEXT[:-1]]
    events.append(sse(chunk([{"text": TEXT[-1]}], finish="STOP", usage=USAGE)))
    return events


class FakeGemini:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.queue: deque[Reply] = deque()
        self.url = ""  # set once served: http://127.0.0.1:PORT (as Google's SDK takes it)
        self.app = web.Application()
        self.app.router.add_post("/v1beta/models/{target}", self.handle)

    def then(self, **kwargs: Any) -> FakeGemini:
        self.queue.append(Reply(**kwargs))
        return self

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, request.query_string,
                              request.headers, body))
        reply = self.queue.popleft() if self.queue else Reply()
        if reply.body is not None or reply.status != 200:
            return web.Response(status=reply.status, content_type="application/json",
                                body=reply.body if reply.body is not None else error(
                                    reply.status, "fake failure", "INTERNAL"))
        payload = json.loads(body)
        method = request.match_info["target"].rpartition(":")[2]
        problem = signature_problem(payload) if method != "countTokens" else None
        if problem is not None:
            return web.Response(status=400, content_type="application/json",
                                body=error(400, problem, "INVALID_ARGUMENT"))
        if method == "countTokens":
            return web.Response(body=dumps({"totalTokens": COUNTED}),
                                content_type="application/json")
        if method == "generateContent":
            out = chunk(answer_parts(payload, reply.tool), finish="STOP", usage=USAGE)
            return web.Response(body=dumps(out), content_type="application/json")
        assert method == "streamGenerateContent" and request.query.get("alt") == "sse"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n, event in enumerate(reply.events or stream_events(payload, reply.tool)):
            if reply.cut_after is not None and n == reply.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(event)
        await response.write_eof()
        return response
