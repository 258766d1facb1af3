"""OpenAI Responses in the matrix, as a client: the openai SDK's ``responses.create``, the
way Codex sends a conversation (input items, reasoning items replayed with their
``encrypted_content``); and as an upstream: a fake Responses-only API (``responses: only``)
streaming the full event lifecycle, reasoning items with ``encrypted_content``."""

from __future__ import annotations

import itertools
from typing import Any

import openai
import orjson
from aiohttp import web

from tests.dialects.matrix import (
    DIALECTS,
    MAX_TOKENS,
    MODEL,
    PNG,
    UPSTREAM_MODEL,
    WEATHER,
    Answer,
    Assistant,
    Call,
    Conversation,
    Dialect,
    FakeUpstream,
    Json,
    Note,
    Outcome,
    Results,
    Step,
    User,
)


def _user(entry: User) -> Any:
    if not (entry.image or entry.reminder):
        return entry.text
    content: list[Json] = [{"type": "input_text", "text": entry.text}]
    if entry.reminder:
        content.insert(0, {"type": "input_text", "text": entry.reminder})
    if entry.image:
        content.append({"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"})
    return content


def _assistant_items(entry: Assistant) -> list[Json]:
    items: list[Json] = []
    if entry.reasoning:
        item: Json = {"type": "reasoning", "summary": [
            {"type": "summary_text", "text": entry.reasoning}]}
        if entry.signature:
            item["encrypted_content"] = entry.signature
        items.append(item)
    if entry.text:
        items.append({"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": entry.text}]})
    items += [{"type": "function_call", "call_id": c.id, "name": c.name,
               "arguments": orjson.dumps(c.arguments).decode()} for c in entry.calls]
    return items


def build(conversation: Conversation, stream: bool) -> Json:
    items: list[Json] = []
    for entry in conversation.entries:
        if isinstance(entry, Note):
            items.append({"role": "developer", "content": entry.text})
        elif isinstance(entry, User):
            items.append({"role": "user", "content": _user(entry)})
        elif isinstance(entry, Assistant):
            items += _assistant_items(entry)
        elif isinstance(entry, Results):
            items += [{"type": "function_call_output", "call_id": call_id, "output": output}
                      for call_id, output in entry.results]
    body: Json = {"model": MODEL, "input": items, "max_output_tokens": MAX_TOKENS}
    if conversation.system:
        body["instructions"] = "\n\n".join(conversation.system)
    if conversation.tools:
        body["tools"] = [{"type": "function", **WEATHER}]
    if conversation.reasoning:
        body["reasoning"] = {"effort": "high"}
    if stream:
        body["stream"] = True
    return body


def _read(response: Any, outcome: Outcome) -> None:
    text, reasoning, signature, calls = [], [], "", []
    for item in response.output:
        if item.type == "message":
            text += [c.text for c in item.content if c.type == "output_text"]
        elif item.type == "reasoning":
            reasoning += [s.text for s in item.summary]
            signature = signature or item.encrypted_content or ""
        elif item.type == "function_call":
            calls.append(Call(item.call_id, item.name, orjson.loads(item.arguments)))
    outcome.assistant = Assistant(text="".join(text), reasoning="".join(reasoning),
                                  signature=signature, calls=tuple(calls))
    outcome.finish = "tool_calls" if calls else "stop"
    usage = response.usage
    if usage is not None:
        details = usage.input_tokens_details
        outcome.usage = (usage.input_tokens, usage.output_tokens,
                         details.cached_tokens if details else 0)


async def send(url: str, key: str, conversation: Conversation, stream: bool) -> Outcome:
    body = build(conversation, stream)
    outcome = Outcome()
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        try:
            if not stream:
                response = await client.responses.create(**body)
                outcome.events.append(response.model_dump(exclude_unset=True))
                _read(response, outcome)
                return outcome
            async for event in await client.responses.create(**body):
                outcome.events.append(event.model_dump(exclude_unset=True))
                if event.type == "response.completed":
                    _read(event.response, outcome)
                elif event.type == "response.failed":
                    error = event.response.error
                    outcome.error = (200, error.message if error else "")
        except openai.APIStatusError as exc:
            error = exc.body.get("message") if isinstance(exc.body, dict) else str(exc.body)
            outcome.error = (exc.status_code, error)
    return outcome


# -- the Responses upstream: a fake OpenAI Responses API ---------------------------------------

CREATED = 1_700_000_000


def _message(text: str) -> Json:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def expected(conversation: Conversation, stream: bool, client: str) -> Json:
    """What a Responses upstream receives: from a Responses caller its own body (a byte
    pass-through); from any other caller the hub's encoding, which replays the upstream's
    reasoning items by id with their ``encrypted_content`` and asks for them back."""
    if client == "responses":
        return {**build(conversation, stream), "model": UPSTREAM_MODEL}
    items: list[Json] = []
    for entry in conversation.entries:
        if isinstance(entry, User):
            item = _message(entry.text)
            if entry.image:
                item["content"].append({"type": "input_image", "detail": "auto",
                                        "image_url": f"data:image/png;base64,{PNG}"})
            items.append(item)
        elif isinstance(entry, Assistant):
            if entry.signature:
                items.append({"type": "reasoning", "id": entry.signature.split(":", 1)[1],
                              "encrypted_content": entry.signature, "summary": [
                                  {"type": "summary_text", "text": entry.reasoning}]})
            if entry.text:
                items.append({"type": "message", "role": "assistant", "content": entry.text})
            items += [{"type": "function_call", "call_id": c.id, "name": c.name,
                       "arguments": orjson.dumps(c.arguments).decode()} for c in entry.calls]
        elif isinstance(entry, Results):
            items += [{"type": "function_call_output", "call_id": call_id, "output": output}
                      for call_id, output in entry.results]
    body: Json = {"model": UPSTREAM_MODEL, "input": items, "max_output_tokens": MAX_TOKENS,
                  "store": False, "stream": stream}
    if conversation.tools:
        body["tools"] = [{"type": "function", **WEATHER, "strict": False}]
    if conversation.reasoning:
        # a Gemini caller asks for its thoughts (includeThoughts): summaries wanted back
        body["reasoning"] = {"effort": "high", "summary": "auto"} if client == "gemini" \
            else {"effort": "high"}
        body["include"] = ["reasoning.encrypted_content"]
    return body


class ResponsesUpstream(FakeUpstream):
    """The Responses API alone (``responses: only``): ``/v1/responses``, streamed with the
    full event lifecycle and not, reasoning items carrying ``encrypted_content``."""

    dialect = "responses"

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.cache_keys: list[str] = []
        self.app.router.add_post("/v1/responses", self.handle)

    def channel(self, name: str) -> Json:
        return {"name": name, "type": "openai", "base_url": self.url, "keys": ["sk-up"],
                "responses": "only"}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        # the gateway's session key, for the upstream's prompt cache: present, not asserted
        self.cache_keys.append(body.pop("prompt_cache_key", ""))
        self.seen.append(body)
        self.paths.append(request.path)
        step: Step = self.queue.pop(0)
        if step.fault is not None and step.fault.status != 200:
            return web.json_response({"error": {
                "message": step.fault.message, "type": "invalid_request_error",
                "param": None, "code": None}}, status=step.fault.status)
        assert step.answer is not None
        n = next(self.ids)
        mine = Assistant(text=step.answer.text, reasoning=step.answer.reasoning,
                         signature=f"gAAAAB-enc:rs_m{n}" if step.answer.reasoning else "",
                         calls=tuple(Call(f"call_m{n}{i}", name, arguments)
                                     for i, (name, arguments) in enumerate(step.answer.calls)))
        self.answers.append(mine)
        items = self._items(mine, n)
        if not body.get("stream"):
            return web.json_response(self._response(step.answer, items, n, "completed"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, event in enumerate(self._events(step.answer, items, n)):
            if step.fault is not None and step.fault.cut == i:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(event)
        await response.write_eof()
        return response

    @staticmethod
    def _items(mine: Assistant, n: int) -> list[Json]:
        items: list[Json] = []
        if mine.reasoning:
            items.append({"id": f"rs_m{n}", "type": "reasoning", "summary": [
                {"type": "summary_text", "text": mine.reasoning}],
                "encrypted_content": mine.signature})
        if mine.text:
            items.append({"id": f"msg_m{n}", "type": "message", "role": "assistant",
                          "status": "completed", "content": [
                              {"type": "output_text", "text": mine.text, "annotations": []}]})
        items += [{"id": f"fc_m{n}{i}", "type": "function_call", "status": "completed",
                   "call_id": c.id, "name": c.name,
                   "arguments": orjson.dumps(c.arguments).decode()}
                  for i, c in enumerate(mine.calls)]
        return items

    @staticmethod
    def _response(answer: Answer, items: list[Json], n: int, status: str) -> Json:
        prompt, completion, cached = answer.usage
        return {"id": f"resp_m{n}", "object": "response", "created_at": CREATED,
                "status": status, "model": UPSTREAM_MODEL, "output": items,
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": prompt,
                          "input_tokens_details": {"cached_tokens": cached},
                          "output_tokens": completion,
                          "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": prompt + completion} if status == "completed"
                else None}

    def _events(self, answer: Answer, items: list[Json], n: int) -> list[bytes]:
        out: list[Json] = [
            {"type": "response.created", "response": self._response(answer, [], n, "in_progress")},
            {"type": "response.in_progress",
             "response": self._response(answer, [], n, "in_progress")}]
        for index, item in enumerate(items):
            ids = {"item_id": item["id"], "output_index": index}
            if item["type"] == "reasoning":
                text = item["summary"][0]["text"]
                out += [{"type": "response.output_item.added", "output_index": index,
                         "item": {**item, "summary": [], "encrypted_content": None}},
                        {"type": "response.reasoning_summary_part.added", **ids,
                         "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
                        *[{"type": "response.reasoning_summary_text.delta", **ids,
                           "summary_index": 0, "delta": part} for part in _halves(text)],
                        {"type": "response.reasoning_summary_text.done", **ids,
                         "summary_index": 0, "text": text},
                        {"type": "response.reasoning_summary_part.done", **ids,
                         "summary_index": 0, "part": {"type": "summary_text", "text": text}}]
            elif item["type"] == "message":
                text = item["content"][0]["text"]
                part = {"type": "output_text", "text": "", "annotations": []}
                out += [{"type": "response.output_item.added", "output_index": index,
                         "item": {**item, "status": "in_progress", "content": []}},
                        {"type": "response.content_part.added", **ids, "content_index": 0,
                         "part": part},
                        *[{"type": "response.output_text.delta", **ids, "content_index": 0,
                           "delta": part, "logprobs": []} for part in _halves(text)],
                        {"type": "response.output_text.done", **ids, "content_index": 0,
                         "text": text, "logprobs": []},
                        {"type": "response.content_part.done", **ids, "content_index": 0,
                         "part": {**part, "text": text}}]
            else:
                out += [{"type": "response.output_item.added", "output_index": index,
                         "item": {**item, "status": "in_progress", "arguments": ""}},
                        *[{"type": "response.function_call_arguments.delta", **ids,
                           "delta": part} for part in _halves(item["arguments"])],
                        {"type": "response.function_call_arguments.done", **ids,
                         "arguments": item["arguments"]}]
            out.append({"type": "response.output_item.done", "output_index": index,
                        "item": item})
        out.append({"type": "response.completed",
                    "response": self._response(answer, items, n, "completed")})
        return [b"event: " + e["type"].encode() + b"\ndata: "
                + orjson.dumps({**e, "sequence_number": i}) + b"\n\n" for i, e in enumerate(out)]


def _halves(text: str) -> list[str]:
    half = len(text) // 2
    return [p for p in (text[:half], text[half:]) if p]


DIALECTS["responses"] = Dialect("responses", build, send, ResponsesUpstream, expected)
