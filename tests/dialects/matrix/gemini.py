"""The Gemini API in the matrix: google-genai as the client (as the Gemini CLI calls it:
``v1beta``, ``?alt=sse``, thought parts kept out of the history it sends back), and a fake
Gemini API as the upstream (thought parts, a ``thoughtSignature`` on the first function call,
``usageMetadata`` with thoughts, Google's error shape, ``\\r\\n\\r\\n`` events)."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from aiohttp import web
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
#: What a client of another dialect asking for reasoning becomes (the hub's mapping).
THINKING_OF = {
    "chat": {"includeThoughts": True, "thinkingLevel": "HIGH"},
    "responses": {"includeThoughts": True, "thinkingLevel": "HIGH"},
    "messages": {"includeThoughts": True, "thinkingBudget": 4096},
    "gemini": {"include_thoughts": True, "thinking_budget": 4096},  # as google-genai sends it
}


def _contents(conversation: Conversation, sdk: bool = False) -> list[Json]:
    """The contents of *conversation*; *sdk*: as google-genai writes them (it sends a few
    fields by their proto names, which Google's servers accept too)."""
    names: dict[str, str] = {}
    contents: list[Json] = []
    for entry in conversation.entries:
        if isinstance(entry, Note):
            contents.append({"role": "user", "parts": [{"text": entry.text}]})
        elif isinstance(entry, User):
            parts: list[Json] = [{"text": entry.text}]
            if entry.reminder:
                parts.insert(0, {"text": entry.reminder})
            if entry.image:
                parts.append({"inlineData": {"mime_type" if sdk else "mimeType": "image/png",
                                             "data": PNG}})
            contents.append({"role": "user", "parts": parts})
        elif isinstance(entry, Assistant):
            parts = [{"text": entry.text}] if entry.text else []  # thoughts stay behind
            for n, call in enumerate(entry.calls):
                names[call.id] = call.name
                part: Json = {"functionCall": {"id": call.id, "name": call.name,
                                               "args": call.arguments}}
                if n == 0 and entry.signature:
                    part["thoughtSignature"] = entry.signature
                parts.append(part)
            contents.append({"role": "model", "parts": parts})
        elif isinstance(entry, Results):
            contents.append({"role": "user", "parts": [
                {"functionResponse": {"id": call_id, "name": names[call_id],
                                      "response": {"output": output}}}
                for call_id, output in entry.results]})
    return contents


def _tools(sdk: bool) -> list[Json]:
    return [{"functionDeclarations": [{
        "name": WEATHER["name"], "description": WEATHER["description"],
        "parameters_json_schema" if sdk else "parametersJsonSchema": WEATHER["parameters"]}]}]


def build(conversation: Conversation, stream: bool, sdk: bool = True) -> Json:
    """The body google-genai sends (the stream is the URL's method, not the body's); with
    *sdk* False, as the gateway writes it."""
    body: Json = {"contents": _contents(conversation, sdk)}
    if conversation.system:
        body["systemInstruction"] = {"parts": [{"text": t} for t in conversation.system]}
    if conversation.tools:
        body["tools"] = _tools(sdk)
    generation: Json = {"maxOutputTokens": MAX_TOKENS}
    if conversation.reasoning:
        generation["thinkingConfig"] = THINKING_OF["gemini"]
    body["generationConfig"] = generation
    return body


def expected(conversation: Conversation, stream: bool, client: str) -> Json:
    """What a Gemini upstream receives: a native caller's body; reasoning asked for the way
    the caller's dialect asks, mapped by the hub."""
    body = build(conversation, stream, sdk=client == "gemini")  # Gemini to Gemini passes
    if conversation.reasoning:
        body["generationConfig"]["thinkingConfig"] = THINKING_OF[client]
    return body


def _config(conversation: Conversation) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        max_output_tokens=MAX_TOKENS,
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
            name=WEATHER["name"], description=WEATHER["description"],
            parameters_json_schema=WEATHER["parameters"])])] if conversation.tools else None,
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=4096)
        if conversation.reasoning else None,
        system_instruction=types.Content(parts=[types.Part(text=t) for t in conversation.system])
        if conversation.system else None)


async def send(url: str, key: str, conversation: Conversation, stream: bool) -> Outcome:
    outcome = Outcome()
    client = genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=url, api_version="v1beta",
        retry_options=types.HttpRetryOptions(attempts=1))).aio
    contents = [types.Content.model_validate(c) for c in _contents(conversation)]
    chunks: list[types.GenerateContentResponse] = []
    try:
        if stream:
            events = await client.models.generate_content_stream(
                model=MODEL, contents=contents, config=_config(conversation))
            async for chunk in events:
                chunks.append(chunk)
        else:
            chunks.append(await client.models.generate_content(
                model=MODEL, contents=contents, config=_config(conversation)))
    except genai_errors.APIError as exc:  # an error answer, or an error chunk mid-stream
        outcome.events = [c.model_dump(mode="json", exclude_none=True) for c in chunks]
        http = getattr(exc.response, "status", None) or getattr(exc.response, "status_code", 0)
        outcome.error = (http or exc.code, exc.message or "")
        return outcome
    finally:
        await client.aclose()
    outcome.events = [c.model_dump(mode="json", exclude_none=True) for c in chunks]
    _read_chunks(chunks, outcome)
    return outcome


def _read_chunks(chunks: list[types.GenerateContentResponse], outcome: Outcome) -> None:
    """Fill *outcome*'s answer, finish and usage from the SDK's *chunks*."""
    text, reasoning, calls, signature = [], [], [], ""
    for chunk in chunks:
        candidate = (chunk.candidates or [None])[0]
        for part in (candidate.content.parts or []) if candidate and candidate.content else []:
            if part.thought:
                reasoning.append(part.text or "")
                continue
            if part.thought_signature and not signature:
                signature = base64.urlsafe_b64encode(part.thought_signature).decode()
            if part.function_call is not None:
                call = part.function_call
                calls.append(Call(call.id or "", call.name or "", dict(call.args or {})))
            elif part.text:
                text.append(part.text)
        if candidate is not None and candidate.finish_reason is not None:
            outcome.finish = _FINISH.get(candidate.finish_reason.value, "other")
        if chunk.usage_metadata is not None:
            usage = chunk.usage_metadata
            outcome.usage = ((usage.prompt_token_count or 0),
                             (usage.candidates_token_count or 0)
                             + (usage.thoughts_token_count or 0),
                             usage.cached_content_token_count or 0)
    if calls and outcome.finish == "stop":
        outcome.finish = "tool_calls"
    outcome.assistant = Assistant(text="".join(text), reasoning="".join(reasoning),
                                  signature=signature, calls=tuple(calls))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ": ")).encode()  # as Google's servers write JSON


class GeminiUpstream(FakeUpstream):
    """The Gemini API: ``/v1beta/models/{model}:generateContent`` and
    ``:streamGenerateContent?alt=sse``."""

    dialect = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.app.router.add_post("/v1beta/models/{target}", self.handle)

    def channel(self, name: str) -> Json:
        return {"name": name, "type": "gemini", "base_url": self.url, "keys": ["g-up"]}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(body)
        self.paths.append(request.path)
        step: Step = self.queue.pop(0)
        if step.fault is not None and step.fault.status != 200:
            return web.Response(status=step.fault.status, content_type="application/json",
                                body=_dumps({"error": {"code": step.fault.status,
                                                       "message": step.fault.message,
                                                       "status": "INVALID_ARGUMENT"}}))
        assert step.answer is not None
        mine = self._mint(step.answer)
        method = request.match_info["target"].rpartition(":")[2]
        if method == "generateContent":
            return web.Response(body=_dumps(self._chunk(self._parts(mine), step.answer,
                                                        True)),
                                content_type="application/json")
        assert method == "streamGenerateContent" and request.query.get("alt") == "sse"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
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
        signature = base64.urlsafe_b64encode(f"signed-by-gemini-{n:03d}".encode()).decode() \
            if answer.calls else ""
        mine = Assistant(text=answer.text, reasoning=answer.reasoning, signature=signature,
                         calls=tuple(Call(f"gcall_m{n}{i}", name, arguments)
                                     for i, (name, arguments) in enumerate(answer.calls)))
        self.answers.append(mine)
        return mine

    @staticmethod
    def _parts(mine: Assistant, *, thoughts: bool = True) -> list[Json]:
        parts: list[Json] = [{"text": mine.reasoning, "thought": True}] \
            if mine.reasoning and thoughts else []
        if mine.text:
            parts.append({"text": mine.text})
        for n, call in enumerate(mine.calls):
            part: Json = {"functionCall": {"id": call.id, "name": call.name,
                                           "args": call.arguments}}
            if n == 0:
                part["thoughtSignature"] = mine.signature
            parts.append(part)
        return parts

    @staticmethod
    def _usage(answer: Answer) -> Json:
        prompt, completion, cached = answer.usage
        thoughts = min(4, completion) if answer.reasoning else 0
        usage: Json = {"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts,
                       "totalTokenCount": prompt + completion}
        if cached:
            usage["cachedContentTokenCount"] = cached
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _chunk(self, parts: list[Json], answer: Answer, last: bool) -> Json:
        candidate: Json = {"content": {"parts": parts, "role": "model"}}
        if last:
            candidate["finishReason"] = "STOP"
        candidate["index"] = 0
        usage = self._usage(answer) if last else {
            "promptTokenCount": answer.usage[0], "totalTokenCount": answer.usage[0]}
        return {"candidates": [candidate], "usageMetadata": usage,
                "modelVersion": UPSTREAM_MODEL, "responseId": "gresp-m"}

    def _events(self, answer: Answer, mine: Assistant) -> list[bytes]:
        pieces: list[list[Json]] = []
        if mine.reasoning:
            pieces.append([{"text": mine.reasoning, "thought": True}])
        pieces += [[{"text": w}] for w in _words(mine.text)]
        calls = self._parts(Assistant(signature=mine.signature, calls=mine.calls))
        if calls:
            pieces.append(calls)
        if not pieces:
            pieces.append([{"text": ""}])
        return [b"data: " + _dumps(self._chunk(p, answer, n == len(pieces) - 1)) + b"\r\n\r\n"
                for n, p in enumerate(pieces)]


def _words(text: str) -> list[str]:
    """*text* in small pieces (each word halved), as Gemini streams it."""
    words = text.split(" ")
    words = [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
    return [half for w in words for half in (w[:len(w) // 2], w[len(w) // 2:]) if half]


DIALECTS["gemini"] = Dialect("gemini", build, send, GeminiUpstream, expected)
