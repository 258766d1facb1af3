"""The ``mock`` kind: answers locally in the OpenAI wire formats, streams included.

It lets a newcomer try the gateway with no provider account, and smoke tests run offline.
The reply echoes the start of the last user message, so a caller can see its request arrive.
It is one more kind to the relay: its `send` answers from memory instead of a pool.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from ..estimate import estimate_tokens
from .kind import Call, Kind
from .openai import OPENAI_PATHS

if TYPE_CHECKING:
    from .pool import Pools

_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class MockKind(Kind):
    """No upstream, no keys: every OpenAI dialect is answered from memory."""

    name = "mock"
    family = "openai"
    paths: ClassVar = {dialect: "" for dialect in OPENAI_PATHS
                       if dialect != "responses_compact"}  # served by a summary
    needs_upstream = False
    compacts = False

    async def send(self, pools: Pools, call: Call) -> MockResponse:
        return respond(call.dialect, call.body)


MOCK = MockKind()


class MockResponse:
    """An upstream response served from memory, chunk by chunk like a socket would."""

    status = 200
    headers = _NO_HEADERS

    def __init__(self, chunks: list[bytes], content_type: str) -> None:
        self._chunks = chunks
        self.content_type = content_type
        self.content_length = sum(map(len, chunks))
        self.content = self

    async def readany(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def is_eof(self) -> bool:
        return True  # every byte is here already

    async def iter_any(self) -> AsyncIterator[bytes]:
        while self._chunks:
            yield self._chunks.pop(0)

    async def read(self) -> bytes:
        body, self._chunks = b"".join(self._chunks), []
        return body

    def close(self) -> None:
        self._chunks = []


def respond(dialect: str, payload: dict[str, Any]) -> MockResponse:
    """The mock answer to *payload* on *dialect*."""
    model = str(payload.get("model", "mock"))
    if dialect == "embeddings":
        return _json(_embeddings(payload, model))
    words = _reply(payload).split(" ")
    prompt = estimate_tokens(payload)
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words),
             "total_tokens": prompt + len(words)}
    stream = payload.get("stream") is True
    if dialect == "responses":
        return _responses(model, words, prompt, stream)
    if not stream:
        return _json(_completion(dialect, model, " ".join(words), usage))
    options = payload.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return _stream(dialect, model, words, usage if include_usage else None)


def _reply(payload: dict[str, Any]) -> str:
    said = ""
    messages = payload.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        said = _text(messages[-1].get("content"))
    elif "input" in payload:
        said = _text(payload["input"])
    elif "prompt" in payload:
        said = _text(payload["prompt"])
    said = " ".join(said.split())[:120] or "nothing"
    return f"Hello from the Code Router mock channel. You said: {said}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(part.get("text") or part.get("content") if isinstance(part, dict)
                              else part) for part in content)
    return ""


def _json(obj: dict[str, Any]) -> MockResponse:
    return MockResponse([orjson.dumps(obj)], "application/json")


def _ids(prefix: str) -> tuple[str, int]:
    return f"{prefix}-mock{os.urandom(6).hex()}", int(time.time())


def _completion(dialect: str, model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    if dialect == "completions":
        ident, created = _ids("cmpl")
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None,
                                  "finish_reason": "stop"}
        return {"id": ident, "object": "text_completion", "created": created, "model": model,
                "choices": [choice], "usage": usage}
    ident, created = _ids("chatcmpl")
    choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
              "logprobs": None, "finish_reason": "stop"}
    return {"id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": usage}


def _stream(dialect: str, model: str, words: list[str],
            usage: dict[str, int] | None) -> MockResponse:
    chat = dialect == "chat"
    ident, created = _ids("chatcmpl" if chat else "cmpl")
    head = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created, "model": model}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n"

    def choice(text: str | None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
        if not chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, Any] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    chunks = [event([choice("", role=True)])] if chat else []
    chunks += [event([choice(w if i == 0 else " " + w)]) for i, w in enumerate(words)]
    chunks.append(event([choice(None, "stop")]))
    if usage is not None:
        chunks.append(event([], usage=usage))
    chunks.append(b"data: [DONE]\n\n")
    return MockResponse(chunks, "text/event-stream")


def _responses(model: str, words: list[str], prompt: int, stream: bool) -> MockResponse:
    ident, created = _ids("resp")
    text = " ".join(words)
    usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": len(words), "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": prompt + len(words)}
    message = {"id": f"msg_{ident}", "type": "message", "status": "completed",
               "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    done = {"id": ident, "object": "response", "created_at": created, "status": "completed",
            "model": model, "output": [message], "usage": usage}
    if not stream:
        return _json(done)
    pending = {**done, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": pending}),
        ("response.output_item.added", {"output_index": 0, "item": {
            **message, "status": "in_progress", "content": []}}),
    ]
    events += [("response.output_text.delta", {
        "item_id": message["id"], "output_index": 0, "content_index": 0,
        "delta": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    events += [
        ("response.output_text.done", {"item_id": message["id"], "output_index": 0,
                                       "content_index": 0, "text": text}),
        ("response.output_item.done", {"output_index": 0, "item": message}),
        ("response.completed", {"response": done}),
    ]
    chunks = [f"event: {name}\ndata: ".encode()
              + orjson.dumps({"type": name, "sequence_number": n, **data}) + b"\n\n"
              for n, (name, data) in enumerate(events)]
    return MockResponse(chunks, "text/event-stream")


def _embeddings(payload: dict[str, Any], model: str) -> dict[str, Any]:
    inputs = payload.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    data = []
    for index, item in enumerate(items):
        digest = hashlib.sha256(orjson.dumps(item)).digest()
        vector = [round(b / 255 * 2 - 1, 6) for b in digest[:8]]
        data.append({"object": "embedding", "index": index, "embedding": vector})
    prompt = estimate_tokens({"input": inputs})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
