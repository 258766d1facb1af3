"""A scripted fake LLM on loopback that speaks the four wire dialects coding agents use.

Each dialect lives under its own prefix, so a channel pointed at one prefix reaches only that
API (a request in another dialect gets the 404 a real vendor would give):

- ``/anthropic``    Anthropic Messages: ``/v1/messages`` (SSE or JSON), ``.../count_tokens``
- ``/openai/v1``    OpenAI with the Responses API: ``/chat/completions`` and ``/responses``
- ``/openai-chat/v1``  a Chat-Completions-only OpenAI-compatible server
- ``/gemini``       Gemini (``v1beta`` and ``v1``): ``/v1beta/models/{m}:generateContent``,
  ``:streamGenerateContent?alt=sse``, ``:countTokens``

Every prefix also lists models. The answers follow `script.decide`; each one reports the fixed
usage in `script`, in the dialect's own fields. A run is found by the model its requests name
(`register`), and every request is recorded (`seen`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.agents import script
from tests.agents.script import Action, Call, Say, Task, Tool, Turn

CREATED = 1_764_547_200
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request the fake answered."""

    dialect: str
    path: str
    model: str
    stream: bool
    answer: str  # "call <tool>", "text", "count", "list", "404"
    step: int | None = None  # the run's step the request belongs to
    replayed: bool = False  # the earlier steps' prompts and tool calls are in the request
    #: The conversation's items as bytes (cache breakpoints left out), the system prompt first.
    items: tuple[bytes, ...] = ()


#: Where each dialect's body keeps the conversation, and its system prompt (Chat: in it).
CONVERSATION = {"messages": ("messages", "system"), "chat": ("messages", None),
                "responses": ("input", "instructions"), "gemini": ("contents", "systemInstruction")}


def conversation_items(dialect: str, raw: bytes) -> tuple[bytes, ...]:
    """What a prompt cache keys on, item by item: the system prompt, then each conversation
    item, without ``cache_control`` (a breakpoint is not part of the cached prefix)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ()
    key, system = CONVERSATION[dialect]
    listed = body.get(key) if isinstance(body, dict) else None
    if not isinstance(listed, list):
        return ()
    head = [body.get(system)] if system is not None else []
    return tuple(orjson.dumps(without_breakpoints(item)) for item in [*head, *listed])


def without_breakpoints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_breakpoints(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_breakpoints(v) for v in value]
    return value


class FakeLLM:
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.seen: list[Seen] = []
        self.ids = itertools.count(1)
        self.url = ""  # http://127.0.0.1:PORT once served
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.app = app
        self.routes: dict[tuple[str, str], Handler] = {
            ("POST", "/anthropic/v1/messages"): self.messages,
            ("POST", "/anthropic/v1/messages/count_tokens"): self.count_messages,
            ("GET", "/anthropic/v1/models"): self.anthropic_models,
        }
        for prefix in ("/openai/v1", "/openai-chat/v1"):
            self.routes[("POST", prefix + "/chat/completions")] = self.chat
            self.routes[("GET", prefix + "/models")] = self.openai_models
        self.routes[("POST", "/openai/v1/responses")] = self.responses

    def register(self, model: str, task: Task) -> None:
        self.tasks[model] = task

    def generations(self, model: str) -> list[Seen]:
        """The answered requests for *model* that produce usage (not counts or lists)."""
        return [s for s in self.seen if s.model == model and s.answer not in ("count", "list")]

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids):024d}"

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self.routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        if request.path.startswith(("/gemini/v1beta/models", "/gemini/v1/models")):
            return await self.gemini(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return web.json_response({"error": {"message": "no websocket here"}},
                                     status=426)  # Codex falls back to HTTP at once
        if request.method in ("GET", "HEAD") and request.path == "/":
            return web.Response(text="fake llm")
        self.seen.append(Seen("?", f"{request.method} {request.path}", "", False, "404"))
        return web.json_response({"error": {"message": f"no route {request.path}",
                                            "type": "invalid_request_error"}}, status=404)

    def answer(self, dialect: str, request: web.Request, raw: bytes, model: str, stream: bool,
               turn: Turn) -> Action:
        """Decide the scripted answer to a generation request and record it."""
        task = self.tasks.get(model)
        action = script.decide(turn, task)
        step = script.current_step(turn, task)[0] if task is not None else None
        replayed = task is not None and step is not None and script.replays(
            raw.decode(errors="replace"), task, step)
        self.seen.append(Seen(dialect, request.path, model, stream, describe(action), step,
                              replayed, conversation_items(dialect, raw)))
        return action

    # ---- Anthropic Messages -------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        model = str(body.get("model"))
        tools = tuple(Tool(t["name"], "function", t.get("input_schema") or {})
                      for t in body.get("tools") or [] if "input_schema" in t)
        events: list[tuple[str, str]] = []
        for m in body.get("messages") or []:
            if m.get("role") != "user":
                continue
            blocks = m.get("content")
            for block in blocks if isinstance(blocks, list) else [blocks]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    events.append(("result", ""))
                else:
                    events.append(("user", script.texts(block)))
        stream = body.get("stream") is True
        action = self.answer("messages", request, raw, model, stream,
                             Turn(tools, tuple(events)))
        message_id = self.next_id("msg_01")
        if isinstance(action, Call):
            block: dict[str, Any] = {"type": "tool_use", "id": self.next_id("toolu_01"),
                                     "name": action.tool.name, "input": action.arguments}
            stop = "tool_use"
        else:
            block = {"type": "text", "text": action.text}
            stop = "end_turn"
        usage = {"input_tokens": script.PROMPT_TOKENS, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        if not stream:
            return json_response({
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop, "stop_sequence": None,
                "usage": {**usage, "output_tokens": script.COMPLETION_TOKENS}})
        events = [anthropic_event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1}}})]
        if isinstance(action, Call):
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": part}
                      for part in halves(action.arguments_json)]
        else:
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in halves(action.text)]
        events.append(anthropic_event("content_block_start", {
            "type": "content_block_start", "index": 0, "content_block": start}))
        events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
        events += [anthropic_event("content_block_delta", {
            "type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
        events.append(anthropic_event("content_block_stop",
                                      {"type": "content_block_stop", "index": 0}))
        events.append(anthropic_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": script.COMPLETION_TOKENS}}))
        events.append(anthropic_event("message_stop", {"type": "message_stop"}))
        return await sse(request, events)

    async def count_messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.seen.append(Seen("messages", request.path, str(body.get("model")), False, "count"))
        return json_response({"input_tokens": script.COUNTED_TOKENS})

    async def anthropic_models(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen("messages", request.path, "", False, "list"))
        data = [{"type": "model", "id": m, "display_name": m,
                 "created_at": "2025-12-01T00:00:00Z"} for m in self.tasks]
        return json_response({"data": data, "has_more": False,
                              "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None})

    # ---- OpenAI Chat Completions --------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        model = str(body.get("model"))
        tools = tuple(Tool(t["function"]["name"], "function",
                           t["function"].get("parameters") or {})
                      for t in body.get("tools") or []
                      if t.get("type") == "function" and isinstance(t.get("function"), dict))
        events = tuple(("result", "") if m.get("role") in ("tool", "function")
                       else ("user", script.texts(m.get("content")))
                       for m in body.get("messages") or []
                       if m.get("role") in ("user", "tool", "function"))
        stream = body.get("stream") is True
        action = self.answer("chat", request, raw, model, stream, Turn(tools, events))
        chat_id = self.next_id("chatcmpl-")
        usage = {"prompt_tokens": script.PROMPT_TOKENS,
                 "completion_tokens": script.COMPLETION_TOKENS,
                 "total_tokens": script.TOTAL_TOKENS}
        if isinstance(action, Call):
            call_id = self.next_id("call_")
            finish = "tool_calls"
        else:
            finish = "stop"
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "refusal": None}
            if isinstance(action, Call):
                message["content"] = None
                message["tool_calls"] = [{"id": call_id, "type": "function", "function": {
                    "name": action.tool.name, "arguments": action.arguments_json}}]
            else:
                message["content"] = action.text
            return json_response({
                "id": chat_id, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage, "system_fingerprint": None})
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True
        extra = {"usage": None} if with_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return chat_chunk(chat_id, model, [{"index": 0, "delta": delta, "logprobs": None,
                                                "finish_reason": finish_reason}], extra)

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if isinstance(action, Call):
            events.append(chunk({"tool_calls": [{
                "index": 0, "id": call_id, "type": "function",
                "function": {"name": action.tool.name, "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
                       for part in halves(action.arguments_json)]
        else:
            events += [chunk({"content": part}) for part in halves(action.text)]
        events.append(chunk({}, finish))
        if with_usage:
            events.append(chat_chunk(chat_id, model, [], {"usage": usage}))
        events.append(b"data: [DONE]\n\n")
        return await sse(request, events)

    async def openai_models(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen("chat", request.path, "", False, "list"))
        return json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": CREATED, "owned_by": "fake"}
            for m in self.tasks]})

    # ---- OpenAI Responses ---------------------------------------------------------------

    async def responses(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        model = str(body.get("model"))
        items = body.get("input")
        items = items if isinstance(items, list) else [
            {"type": "message", "role": "user", "content": items}]
        tools = []
        for t in body.get("tools") or []:
            if t.get("type") == "function":
                tools.append(Tool(t["name"], "function", t.get("parameters") or {}))
            elif t.get("type") == "custom":
                tools.append(Tool(t["name"], "custom", t.get("format") or {}))
        events, compacting = responses_events(items)
        stream = body.get("stream") is True
        action = self.answer("responses", request, raw, model, stream,
                             Turn(tuple(tools), tuple(events)))
        response_id = self.next_id("resp_")
        item, deltas = self.compaction_item(action) if compacting \
            else self.responses_item(action)
        usage = {"input_tokens": script.PROMPT_TOKENS,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": script.COMPLETION_TOKENS,
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": script.TOTAL_TOKENS}

        def response(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
            return {"id": response_id, "object": "response", "created_at": CREATED,
                    "status": status, "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "model": model,
                    "output": output, "parallel_tool_calls": True, "previous_response_id": None,
                    "reasoning": {"effort": None, "summary": None}, "store": False,
                    "temperature": 1.0, "text": {"format": {"type": "text"}},
                    "tool_choice": "auto", "tools": body.get("tools") or [], "top_p": 1.0,
                    "truncation": "disabled", "usage": usage, "metadata": {}}

        if not stream:
            return json_response(response("completed", [item], usage))
        seq = itertools.count()

        def event(name: str, **data: Any) -> bytes:
            payload = {"type": name, "sequence_number": next(seq), **data}
            return f"event: {name}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"

        item_id = item["id"]
        events = [event("response.created", response=response("in_progress", [], None)),
                  event("response.in_progress", response=response("in_progress", [], None))]
        if item["type"] == "compaction":
            events.append(event("response.output_item.added", output_index=0, item=item))
        elif item["type"] == "message":
            part = item["content"][0]
            events.append(event("response.output_item.added", output_index=0, item={
                **item, "status": "in_progress", "content": []}))
            events.append(event("response.content_part.added", item_id=item_id,
                                output_index=0, content_index=0,
                                part={**part, "text": ""}))
            events += [event("response.output_text.delta", item_id=item_id, output_index=0,
                             content_index=0, delta=d, logprobs=[]) for d in deltas]
            events.append(event("response.output_text.done", item_id=item_id, output_index=0,
                                content_index=0, text=part["text"], logprobs=[]))
            events.append(event("response.content_part.done", item_id=item_id,
                                output_index=0, content_index=0, part=part))
        else:
            key = "arguments" if item["type"] == "function_call" else "input"
            kind = ("function_call_arguments" if item["type"] == "function_call"
                    else "custom_tool_call_input")
            events.append(event("response.output_item.added", output_index=0, item={
                **item, "status": "in_progress", key: ""}))
            events += [event(f"response.{kind}.delta", item_id=item_id, output_index=0,
                             delta=d) for d in deltas]
            events.append(event(f"response.{kind}.done", item_id=item_id, output_index=0,
                                **{key: item[key]}))
        events.append(event("response.output_item.done", output_index=0, item=item))
        events.append(event("response.completed", response=response("completed", [item],
                                                                     usage)))
        return await sse(request, events)

    def compaction_item(self, action: Action) -> tuple[dict[str, Any], list[str]]:
        """The one output item answering a compaction_trigger: the summary, unsealed."""
        text = action.text if isinstance(action, Say) else ""
        return {"type": "compaction", "id": self.next_id("cmp_"),
                "encrypted_content": text}, []

    def responses_item(self, action: Action) -> tuple[dict[str, Any], list[str]]:
        """The one output item answering *action*, and its streamed deltas."""
        if isinstance(action, Say):
            return ({"id": self.next_id("msg_"), "type": "message", "status": "completed",
                     "role": "assistant", "content": [
                         {"type": "output_text", "text": action.text, "annotations": []}]},
                    halves(action.text))
        call_id = self.next_id("call_")
        if action.tool.kind == "custom":
            text = action.input or ""
            return ({"id": self.next_id("ctc_"), "type": "custom_tool_call",
                     "status": "completed", "call_id": call_id, "name": action.tool.name,
                     "input": text}, halves(text))
        arguments = action.arguments_json
        return ({"id": self.next_id("fc_"), "type": "function_call", "status": "completed",
                 "arguments": arguments, "call_id": call_id, "name": action.tool.name},
                halves(arguments))

    # ---- Gemini -------------------------------------------------------------------------

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        rest = request.path.partition("/models")[2].lstrip("/")
        if request.method == "GET":
            self.seen.append(Seen("gemini", request.path, "", False, "list"))
            if rest:
                return json_response(gemini_model(rest))
            return json_response({"models": [gemini_model(m) for m in self.tasks]})
        model, _, method = rest.partition(":")
        raw = await request.read()
        body = orjson.loads(raw)
        if method == "countTokens":
            self.seen.append(Seen("gemini", request.path, model, False, "count"))
            return json_response({"totalTokens": script.COUNTED_TOKENS, "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": script.COUNTED_TOKENS}]})
        if method not in ("generateContent", "streamGenerateContent"):
            self.seen.append(Seen("gemini", request.path, model, False, "404"))
            return web.json_response({"error": {"code": 404, "status": "NOT_FOUND",
                                                "message": f"method {method} not found"}},
                                     status=404)
        contents = body.get("contents") or []
        refused = unsigned_call(contents)
        if refused is not None:  # Gemini 3 answers 400 to history it did not sign
            self.seen.append(Seen("gemini", request.path, model, False, "400"))
            return web.json_response({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                "message": refused}}, status=400)
        tools = tuple(Tool(d["name"], "function", proto_field(d, "parametersJsonSchema")
                           or proto_field(d, "parameters") or {})
                      for t in body.get("tools") or []
                      for d in proto_field(t, "functionDeclarations") or [])
        events = [("result", "") if proto_field(p, "functionResponse")
                  else ("user", script.texts(p))
                  for c in contents if c.get("role", "user") == "user"
                  for p in c.get("parts") or [] if isinstance(p, dict)]
        stream = method == "streamGenerateContent"
        action = self.answer("gemini", request, raw, model, stream, Turn(tools, tuple(events)))
        response_id = self.next_id("gem")
        usage = {"promptTokenCount": script.PROMPT_TOKENS,
                 "candidatesTokenCount": script.COMPLETION_TOKENS,
                 "totalTokenCount": script.TOTAL_TOKENS,
                 "promptTokensDetails": [{"modality": "TEXT",
                                          "tokenCount": script.PROMPT_TOKENS}]}

        def answer(answer_parts: list[dict[str, Any]], finish: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": answer_parts, "role": "model"},
                                         "index": 0}
            out: dict[str, Any] = {"candidates": [candidate]}
            if finish:
                candidate["finishReason"] = "STOP"
                out["usageMetadata"] = usage
            else:
                out["usageMetadata"] = {"promptTokenCount": script.PROMPT_TOKENS,
                                        "totalTokenCount": script.PROMPT_TOKENS}
            out["modelVersion"] = model
            out["responseId"] = response_id
            return out

        if isinstance(action, Call):
            chunks = [[{"functionCall": {"name": action.tool.name, "args": action.arguments},
                        "thoughtSignature": GEMINI_SIGNATURE}]]
        else:
            chunks = [[{"text": part}] for part in halves(action.text)]
        if not stream:
            return json_response(answer([p for c in chunks for p in c], True))
        if request.query.get("alt") != "sse":
            return json_response([answer(c, n == len(chunks) - 1)
                                  for n, c in enumerate(chunks)])
        return await sse(request, [
            b"data: " + orjson.dumps(answer(c, n == len(chunks) - 1)) + b"\r\n\r\n"
            for n, c in enumerate(chunks)])


#: The thoughtSignature the fake signs its function calls with, and the placeholder Gemini
#: accepts for calls it did not produce.
GEMINI_SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="
SKIP_SIGNATURE = "skip_thought_signature_validator"


def unsigned_call(contents: list[Any]) -> str | None:
    """Gemini 3's 400: in the current turn (the steps since the last user message that is not
    only function responses), a model step whose first functionCall has no thoughtSignature,
    or a signature it never issued; None when the history is acceptable. Earlier turns are
    not checked (Gemini validates the current turn only: resumed sessions carry none)."""
    start = 0
    for n, content in enumerate(contents):
        if not isinstance(content, dict):
            continue
        parts = content.get("parts") or []
        if content.get("role") == "user" and any(
                isinstance(p, dict) and proto_field(p, "functionResponse") is None
                for p in parts):
            start = n
    for n, content in enumerate(contents[start:], start):
        if not isinstance(content, dict) or content.get("role") != "model":
            continue
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        calls = [p for p in parts if proto_field(p, "functionCall")]
        if calls and proto_field(calls[0], "thoughtSignature") is None:
            return ("Function call is missing a thought_signature in functionCall parts. "
                    f"This is required for tools to work correctly. Position {n}")
        if any(proto_field(p, "thoughtSignature") not in (None, GEMINI_SIGNATURE, SKIP_SIGNATURE)
               for p in parts):
            return f"Corrupted thought signature at position {n}"
    return None


def proto_field(obj: dict[str, Any], name: str) -> Any:
    """A field of a Gemini request by its JSON name or its proto name, as Google's API reads
    both (google-genai sends ``parameters_json_schema``, Gemini CLI ``parametersJsonSchema``)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return obj.get(name, obj.get(snake))


def gemini_model(name: str) -> dict[str, Any]:
    return {"name": f"models/{name}", "version": "001", "displayName": name,
            "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "countTokens"]}


def responses_events(items: list[Any]) -> tuple[list[tuple[str, str]], bool]:
    """The `Turn` events of a Responses input, and whether it asks for a remote compaction
    (Codex's ``compaction_trigger`` last), which asks for the summary."""
    events = []
    for i in items:
        if not isinstance(i, dict):
            continue
        if str(i.get("type", "")).endswith("_output"):
            events.append(("result", ""))
        elif i.get("role") == "user":
            events.append(("user", script.texts(i.get("content"))))
        elif i.get("type") == "compaction":  # the fake's own: its content is the summary
            events.append(("user", str(i.get("encrypted_content"))))
    compacting = bool(items) and isinstance(items[-1], dict) \
        and items[-1].get("type") == "compaction_trigger"
    if compacting:
        events.append(("user", script.SUMMARY_ASKS[-1]))
    return events, compacting


def describe(action: Action) -> str:
    if isinstance(action, Call):
        return "finish" if action.tool.name in script.FINISH_TOOLS else f"call {action.tool.name}"
    return "summary" if script.SUMMARY_MARK in action.text else "text"


def halves(text: str) -> list[str]:
    """*text* in two stream deltas (one when it is too short to split)."""
    middle = len(text) // 2
    return [text[:middle], text[middle:]] if middle else [text]


def anthropic_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def chat_chunk(chat_id: str, model: str, choices: list[dict[str, Any]],
               extra: dict[str, Any]) -> bytes:
    obj = {"id": chat_id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
           "system_fingerprint": None, "choices": choices, **extra}
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def json_response(obj: Any) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


async def sse(request: web.Request, events: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    for event in events:
        await response.write(event)
        await asyncio.sleep(0)
    await response.write_eof()
    return response
