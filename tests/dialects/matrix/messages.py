"""Anthropic Messages in the matrix: the anthropic SDK as the client, and a fake Anthropic
API (thinking blocks with signatures, pings, cache usage) as the upstream."""

from __future__ import annotations

import base64
import itertools

import anthropic
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

_FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
BREAKPOINT = {"type": "ephemeral"}


def _turn(role: str, blocks: list[Json]) -> Json:
    if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
        return {"role": role, "content": blocks[0]["text"]}
    return {"role": role, "content": blocks}


def _user_blocks(entry: User) -> list[Json]:
    blocks: list[Json] = [{"type": "text", "text": entry.text}]
    if entry.reminder:
        blocks.insert(0, {"type": "text", "text": entry.reminder})
    if entry.image:
        blocks.append({"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": PNG}})
    return blocks


def _assistant_blocks(entry: Assistant) -> list[Json]:
    blocks: list[Json] = []
    if entry.reasoning:
        blocks.append({"type": "thinking", "thinking": entry.reasoning,
                       "signature": entry.signature})
    if entry.text:
        blocks.append({"type": "text", "text": entry.text})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
               for c in entry.calls]
    return blocks


def build(conversation: Conversation, stream: bool) -> Json:
    messages: list[Json] = []
    for entry in conversation.entries:
        if isinstance(entry, Note):
            messages.append(_turn("user", [{"type": "text", "text": entry.text}]))
        elif isinstance(entry, User):
            messages.append(_turn("user", _user_blocks(entry)))
        elif isinstance(entry, Assistant):
            messages.append(_turn("assistant", _assistant_blocks(entry)))
        elif isinstance(entry, Results):
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call_id, "content": output}
                for call_id, output in entry.results]})
    body: Json = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": messages}
    if conversation.system:
        body["system"] = [{"type": "text", "text": text} for text in conversation.system]
    if conversation.tools:
        body["tools"] = [{"name": WEATHER["name"], "description": WEATHER["description"],
                          "input_schema": WEATHER["parameters"]}]
    if conversation.reasoning:
        body["thinking"] = {"type": "enabled", "budget_tokens": 4096}
    if stream:
        body["stream"] = True
    return body


def expected(conversation: Conversation, stream: bool, client: str) -> Json:
    """What a Messages upstream receives: a native caller's body; from a dialect without
    cache breakpoints, the hub adds them (the last tool, the last message)."""
    body = {**build(conversation, stream), "model": UPSTREAM_MODEL}
    if client == "messages":
        return body
    for turn in body["messages"]:  # translated turns are always blocks, never a lone string
        if isinstance(turn["content"], str):
            turn["content"] = [{"type": "text", "text": turn["content"]}]
    if body.get("tools"):
        body["tools"][-1]["cache_control"] = BREAKPOINT
    last = body["messages"][-1]
    marked = [b for b in last["content"] if b["type"] in ("text", "tool_result")]
    marked[-1]["cache_control"] = BREAKPOINT  # text or a tool result: an image is not marked
    return body


async def send(url: str, key: str, conversation: Conversation, stream: bool) -> Outcome:
    body = build(conversation, stream)
    outcome = Outcome()
    async with anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as client:
        try:
            if stream:
                del body["stream"]
                async with client.messages.stream(**body) as events:
                    async for event in events:
                        outcome.events.append(event.model_dump(exclude_unset=True))
                    message = await events.get_final_message()
            else:
                message = await client.messages.create(**body)
                outcome.events.append(message.model_dump(exclude_unset=True))
        except anthropic.APIStatusError as exc:
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            outcome.error = (exc.status_code, error.get("message") if isinstance(error, dict)
                             else str(exc.body))
            return outcome
    thinking = [b for b in message.content if b.type == "thinking"]
    outcome.assistant = Assistant(
        text="".join(b.text for b in message.content if b.type == "text"),
        reasoning="".join(b.thinking for b in thinking),
        signature=thinking[0].signature if thinking else "",
        calls=tuple(Call(b.id, b.name, dict(b.input)) for b in message.content
                    if b.type == "tool_use"))
    outcome.finish = _FINISH.get(message.stop_reason or "", str(message.stop_reason))
    usage = message.usage
    read = usage.cache_read_input_tokens or 0
    outcome.usage = (usage.input_tokens + read + (usage.cache_creation_input_tokens or 0),
                     usage.output_tokens, read)
    return outcome


def _event(name: str, data: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesUpstream(FakeUpstream):
    """The Messages API: ``/v1/messages``, streamed and not, thinking signed."""

    dialect = "messages"

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.app.router.add_post("/v1/messages", self.handle)

    def channel(self, name: str) -> Json:
        return {"name": name, "type": "anthropic", "base_url": self.url, "keys": ["sk-up"]}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(body)
        self.paths.append(request.path)
        step: Step = self.queue.pop(0)
        if step.fault is not None and step.fault.status != 200:
            return web.json_response({"type": "error", "error": {
                "type": "invalid_request_error", "message": step.fault.message}},
                status=step.fault.status)
        assert step.answer is not None
        mine = self._mint(step.answer)
        if not body.get("stream"):
            return web.json_response(self._message(step.answer, mine))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for n, event in enumerate(self._events(step.answer, mine)):
            if step.fault is not None and step.fault.cut == n:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(event)
        await response.write_eof()
        return response

    def _mint(self, answer: Answer) -> Assistant:
        n = next(self.ids)
        signature = base64.b64encode(f"signed-by-anthropic-{n}".encode()).decode() \
            if answer.reasoning else ""
        mine = Assistant(text=answer.text, reasoning=answer.reasoning, signature=signature,
                         calls=tuple(Call(f"toolu_m{n}{i}", name, arguments)
                                     for i, (name, arguments) in enumerate(answer.calls)))
        self.answers.append(mine)
        return mine

    @staticmethod
    def _usage(answer: Answer, output: int | None = None) -> Json:
        prompt, completion, cached = answer.usage
        return {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": cached,
                "output_tokens": completion if output is None else output}

    def _blocks(self, mine: Assistant) -> list[Json]:
        blocks: list[Json] = []
        if mine.reasoning:
            blocks.append({"type": "thinking", "thinking": mine.reasoning,
                           "signature": mine.signature})
        if mine.text:
            blocks.append({"type": "text", "text": mine.text})
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                   for c in mine.calls]
        return blocks

    def _message(self, answer: Answer, mine: Assistant, content: list[Json] | None = None,
                 stop: str | None = "", usage: Json | None = None) -> Json:
        return {"id": "msg_m", "type": "message", "role": "assistant", "model": "up-model",
                "content": self._blocks(mine) if content is None else content,
                "stop_reason": ("tool_use" if mine.calls else "end_turn") if stop == ""
                else stop, "stop_sequence": None,
                "usage": usage or self._usage(answer)}

    def _events(self, answer: Answer, mine: Assistant) -> list[bytes]:
        events = [_event("message_start", {"type": "message_start", "message": self._message(
            answer, mine, [], None, self._usage(answer, 1))})]
        for index, block in enumerate(self._blocks(mine)):
            start = dict(block)
            deltas: list[Json] = []
            if block["type"] == "thinking":
                start.update(thinking="", signature="")
                deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                          {"type": "signature_delta", "signature": block["signature"]}]
            elif block["type"] == "text":
                start["text"] = ""
                deltas = [{"type": "text_delta", "text": w} for w in _words(block["text"])]
            else:
                start["input"] = {}
                arguments = orjson.dumps(block["input"]).decode()
                deltas = [{"type": "input_json_delta", "partial_json": part}
                          for part in ("", arguments[:5], arguments[5:])]
            events.append(_event("content_block_start", {
                "type": "content_block_start", "index": index, "content_block": start}))
            if index == 0:
                events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
            events += [_event("content_block_delta", {"type": "content_block_delta",
                                                      "index": index, "delta": d})
                       for d in deltas]
            events.append(_event("content_block_stop", {"type": "content_block_stop",
                                                        "index": index}))
        events.append(_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if mine.calls else "end_turn",
                      "stop_sequence": None},
            "usage": {"output_tokens": answer.usage[1]}}))
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


DIALECTS["messages"] = Dialect("messages", build, send, MessagesUpstream, expected)
