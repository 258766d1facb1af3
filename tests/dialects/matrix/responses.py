"""OpenAI Responses in the matrix, as a client: the openai SDK's ``responses.create``, the
way Codex sends a conversation (input items, reasoning items replayed with their
``encrypted_content``). The Responses upstream fake is hub-responses' to add."""

from __future__ import annotations

from typing import Any

import openai
import orjson

from tests.dialects.matrix import (
    DIALECTS,
    MAX_TOKENS,
    MODEL,
    PNG,
    WEATHER,
    Assistant,
    Call,
    Conversation,
    Dialect,
    Json,
    Outcome,
    Results,
    User,
)


def build(conversation: Conversation, stream: bool) -> Json:
    items: list[Json] = []
    for entry in conversation.entries:
        if isinstance(entry, User):
            content: Any = entry.text
            if entry.image:
                content = [{"type": "input_text", "text": entry.text},
                           {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]
            items.append({"role": "user", "content": content})
        elif isinstance(entry, Assistant):
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
        elif isinstance(entry, Results):
            items += [{"type": "function_call_output", "call_id": call_id, "output": output}
                      for call_id, output in entry.results]
    body: Json = {"model": MODEL, "input": items, "max_output_tokens": MAX_TOKENS}
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


DIALECTS["responses"] = Dialect("responses", build, send, None)
