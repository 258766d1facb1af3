"""OpenAI Chat Completions in the matrix: the openai SDK as the client, and a fake
OpenAI-compatible server (DeepSeek-style ``reasoning_content``) as the upstream."""

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

CREATED = 1_700_000_000


def _compact(arguments: Json) -> str:
    return orjson.dumps(arguments).decode()


def _user(entry: User) -> Any:
    if not (entry.image or entry.reminder):
        return entry.text
    content: list[Json] = [{"type": "text", "text": entry.text}]
    if entry.reminder:
        content.insert(0, {"type": "text", "text": entry.reminder})
    if entry.image:
        content.append({"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}"}})
    return content


def build(conversation: Conversation, stream: bool) -> Json:
    messages: list[Json] = []
    if conversation.system:
        messages.append({"role": "system", "content": "\n\n".join(conversation.system)})
    for entry in conversation.entries:
        if isinstance(entry, Note):
            messages.append({"role": "system", "content": entry.text})
        elif isinstance(entry, User):
            messages.append({"role": "user", "content": _user(entry)})
        elif isinstance(entry, Assistant):
            message: Json = {"role": "assistant", "content": entry.text or None}
            if entry.reasoning:
                message["reasoning_content"] = entry.reasoning
            if entry.calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": _compact(c.arguments)}}
                    for c in entry.calls]
            messages.append(message)
        elif isinstance(entry, Results):
            messages += [{"role": "tool", "tool_call_id": call_id, "content": output}
                         for call_id, output in entry.results]
    body: Json = {"model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS}
    if conversation.tools:
        body["tools"] = [{"type": "function", "function": WEATHER}]
    if conversation.reasoning:
        body["reasoning_effort"] = "high"
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _usage(usage: Any) -> tuple[int, int, int] | None:
    if usage is None:
        return None
    details = usage.prompt_tokens_details
    return (usage.prompt_tokens, usage.completion_tokens,
            details.cached_tokens or 0 if details else 0)


async def send(url: str, key: str, conversation: Conversation, stream: bool) -> Outcome:
    body = build(conversation, stream)
    outcome = Outcome()
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        try:
            if stream:
                await _stream(client, body, outcome)
            else:
                answer = await client.chat.completions.create(**body)
                outcome.events.append(answer.model_dump(exclude_unset=True))
                message = answer.choices[0].message
                outcome.assistant = Assistant(
                    text=message.content or "",
                    reasoning=(message.model_extra or {}).get("reasoning_content") or "",
                    calls=tuple(Call(c.id, c.function.name, orjson.loads(c.function.arguments))
                                for c in message.tool_calls or []))
                outcome.finish = answer.choices[0].finish_reason
                outcome.usage = _usage(answer.usage)
        except openai.APIStatusError as exc:
            error = exc.body.get("message") if isinstance(exc.body, dict) else str(exc.body)
            outcome.error = (exc.status_code, error)
        except openai.APIError as exc:  # an error object in the stream
            outcome.error = (200, exc.message)
    return outcome


async def _stream(client: openai.AsyncOpenAI, body: Json, outcome: Outcome) -> None:
    text, reasoning = [], []
    calls: dict[int, list[str]] = {}
    async for chunk in await client.chat.completions.create(**body):
        outcome.events.append(chunk.model_dump(exclude_unset=True))
        if chunk.usage is not None:
            outcome.usage = _usage(chunk.usage)
        for choice in chunk.choices:
            delta = choice.delta
            text.append(delta.content or "")
            reasoning.append((delta.model_extra or {}).get("reasoning_content") or "")
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, ["", "", ""])
                if call.id:
                    entry[0] = call.id
                if call.function and call.function.name:
                    entry[1] = call.function.name
                if call.function and call.function.arguments:
                    entry[2] += call.function.arguments
            if choice.finish_reason:
                outcome.finish = choice.finish_reason
    outcome.assistant = Assistant(
        text="".join(text), reasoning="".join(reasoning),
        calls=tuple(Call(i, n, orjson.loads(a)) for i, n, a in calls.values()))


class ChatUpstream(FakeUpstream):
    """An OpenAI-compatible server: ``/v1/chat/completions``, streamed and not."""

    dialect = "chat"

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.app.router.add_post("/v1/chat/completions", self.handle)

    def channel(self, name: str) -> Json:
        return {"name": name, "type": "openai", "base_url": self.url, "keys": ["sk-up"],
                "responses": False}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(body)
        self.paths.append(request.path)
        step: Step = self.queue.pop(0)
        if step.fault is not None and step.fault.status != 200:
            return web.json_response({"error": {
                "message": step.fault.message, "type": "invalid_request_error",
                "param": None, "code": None}}, status=step.fault.status)
        assert step.answer is not None
        mine = self._mint(step.answer)
        if not body.get("stream"):
            return web.json_response(self._completion(step.answer, mine))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include = (body.get("stream_options") or {}).get("include_usage") is True
        for n, event in enumerate(self._chunks(step.answer, mine, include)):
            if step.fault is not None and step.fault.cut == n:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(event)
        await response.write_eof()
        return response

    def _mint(self, answer: Answer) -> Assistant:
        mine = Assistant(text=answer.text, reasoning=answer.reasoning, calls=tuple(
            Call(f"call_m{next(self.ids)}", name, arguments)
            for name, arguments in answer.calls))
        self.answers.append(mine)
        return mine

    @staticmethod
    def _usage(answer: Answer) -> Json:
        prompt, completion, cached = answer.usage
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached}}

    def _completion(self, answer: Answer, mine: Assistant) -> Json:
        message: Json = {"role": "assistant", "content": answer.text or None}
        if answer.reasoning:
            message["reasoning_content"] = answer.reasoning
        if mine.calls:
            message["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": _compact(c.arguments)}} for c in mine.calls]
        return {"id": "chatcmpl-m", "object": "chat.completion", "created": CREATED,
                "model": "up-model", "choices": [{
                    "index": 0, "message": message, "logprobs": None,
                    "finish_reason": "tool_calls" if mine.calls else "stop"}],
                "usage": self._usage(answer)}

    def _chunks(self, answer: Answer, mine: Assistant, include_usage: bool) -> list[bytes]:
        def chunk(delta: Json, finish: str | None = None, **extra: Any) -> bytes:
            obj = {"id": "chatcmpl-m", "object": "chat.completion.chunk", "created": CREATED,
                   "model": "up-model", "choices": [{"index": 0, "delta": delta,
                                                     "logprobs": None,
                                                     "finish_reason": finish}], **extra}
            return b"data: " + orjson.dumps(obj) + b"\n\n"
        events = [chunk({"role": "assistant", "content": ""})]
        half = len(answer.reasoning) // 2
        if answer.reasoning:
            events += [chunk({"reasoning_content": answer.reasoning[:half]}),
                       chunk({"reasoning_content": answer.reasoning[half:]})]
        events += [chunk({"content": word}) for word in _words(answer.text)]
        for index, call in enumerate(mine.calls):
            arguments = _compact(call.arguments)
            events.append(chunk({"tool_calls": [{"index": index, "id": call.id,
                                                 "type": "function", "function": {
                                                     "name": call.name, "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                       for part in (arguments[:5], arguments[5:])]
        events.append(chunk({}, "tool_calls" if mine.calls else "stop"))
        if include_usage:
            events.append(b"data: " + orjson.dumps({
                "id": "chatcmpl-m", "object": "chat.completion.chunk", "created": CREATED,
                "model": "up-model", "choices": [], "usage": self._usage(answer)}) + b"\n\n")
        return [*events, b"data: [DONE]\n\n"]


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


DIALECTS["chat"] = Dialect("chat", build, send, ChatUpstream)
