"""Codex's remote compaction (``compaction_trigger``) on every channel kind.

A Responses channel compacts itself (the request passes through); a chat-only, anthropic,
gemini or mock channel gets one summarization call, and the caller exactly one ``compaction``
item whose sealed ``encrypted_content`` carries the summary back on the next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from coderouter.dialects import framing, hub
from coderouter.dialects.envelope import caller_binding
from coderouter.dialects.responses import compaction
from tests import fake_anthropic, fake_gemini, fakes
from tests.conftest import ALICE, UPSTREAM_KEY, MakeUpstream, Running, StartGateway, base_config
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fakes import FakeUpstream, Seen

SHELL = {"type": "function", "name": "shell", "description": "Run a command", "strict": False,
         "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "developer",
     "content": [{"type": "input_text", "text": "You are a coding agent."}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
    {"type": "function_call", "call_id": "call_1", "name": "shell",
     "arguments": '{"command": "ls"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "main.py"},
    {"type": "message", "role": "assistant",
     "content": [{"type": "output_text", "text": "I looked."}]},
]
TRIGGER = {"type": "compaction_trigger"}
#: What each kind's fake answers as the summary, and the usage row it leads to.
KINDS: dict[str, tuple[str, tuple[int, int]]] = {
    "chat": ("".join(fakes.WORDS), (11, 4)),
    "claude": ("".join(fake_anthropic.TEXT), (132, fake_anthropic.OUTPUT_TOKENS)),
    "gemini": ("".join(fake_gemini.TEXT), (30, 27)),
}


class Upstreams:
    def __init__(self, chat: FakeUpstream, openai: FakeUpstream, claude: FakeAnthropic,
                 gemini: FakeGemini) -> None:
        self.chat, self.openai, self.claude, self.gemini = chat, openai, claude, gemini

    def last(self, kind: str) -> Seen:
        fake = {"chat": self.chat, "openai": self.openai, "claude": self.claude,
                "gemini": self.gemini}[kind]
        return fake.seen[-1]


@pytest.fixture
async def upstreams(make_upstream: MakeUpstream, anthropic_upstream: FakeAnthropic,
                    aiohttp_server: Any) -> Upstreams:
    gemini = FakeGemini()
    gemini.url = str((await aiohttp_server(gemini.app)).make_url("")).rstrip("/")
    return Upstreams(await make_upstream(), await make_upstream(), anthropic_upstream, gemini)


@pytest.fixture
async def gateway(start_gateway: StartGateway, upstreams: Upstreams, tmp_path: Path) -> Running:
    config = base_config(upstreams.openai.url, tmp_path)  # group "smart": a Responses API
    config["channels"] += [
        {"name": "chat", "type": "openai", "base_url": upstreams.chat.url,
         "keys": [UPSTREAM_KEY], "responses": False},
        {"name": "claude", "type": "anthropic", "base_url": upstreams.claude.url,
         "keys": [UPSTREAM_KEY]},
        {"name": "gemini", "type": "gemini", "base_url": upstreams.gemini.url,
         "keys": [UPSTREAM_KEY]},
        {"name": "mock", "type": "mock"}]
    config["model_groups"] += [{"name": kind, "targets": [{"channel": kind, "model": f"{kind}-m"}]}
                               for kind in ("chat", "claude", "gemini", "mock")]
    return await start_gateway(config)


async def post(gateway: Running, body: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1/responses", json=body,
            headers={"Authorization": f"Bearer {ALICE}"}) as resp:
        return resp.status, await resp.read()


def events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(data) for _, data in framing.events(raw)]


def opened(item: dict[str, Any]) -> str | None:
    """The summary in *item*, sealed for Alice (whose token compacted)."""
    return compaction.summary_of(item, hub.sealer(), caller_binding("alice"))


def asked_for_summary(seen: Seen) -> None:
    """The upstream got the history, no tools, and the instruction last."""
    raw = seen.body.decode()
    assert "fix it" in raw and "main.py" in raw
    assert compaction.SUMMARY_INSTRUCTION in raw
    assert raw.rindex(compaction.SUMMARY_INSTRUCTION) > raw.rindex("main.py")
    body = seen.json
    assert not body.get("tools") and "tool_choice" not in body
    assert "compaction_trigger" not in raw


class TestTranslatedChannels:
    """One summarization call upstream, one compaction item to the caller."""

    @pytest.mark.parametrize("kind", list(KINDS))
    async def test_streamed(self, gateway: Running, upstreams: Upstreams, kind: str) -> None:
        status, raw = await post(gateway, {"model": kind, "stream": True, "tools": [SHELL],
                                           "input": [*HISTORY, TRIGGER]})
        assert status == 200
        got = events(raw)
        assert [e["type"] for e in got] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.output_item.done", "response.completed"]
        assert [e["sequence_number"] for e in got] == [0, 1, 2, 3, 4]
        item = got[3]["item"]
        assert got[2]["item"] == item and got[4]["response"]["output"] == [item]
        assert set(item) == {"type", "id", "encrypted_content"}
        assert item["type"] == "compaction" and item["id"].startswith("cmp_")
        summary, (prompt, completion) = KINDS[kind]
        assert opened(item) == summary
        usage = got[4]["response"]["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (prompt, completion)
        asked_for_summary(upstreams.last(kind))
        (row,) = await gateway.rows()
        assert (row["status"], row["endpoint"], row["model"], row["channel"]) == (
            200, "/v1/responses", kind, kind)
        assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (
            prompt, completion, "upstream")

    @pytest.mark.parametrize("kind", list(KINDS))
    async def test_not_streamed(self, gateway: Running, upstreams: Upstreams,
                                kind: str) -> None:
        status, raw = await post(gateway, {"model": kind, "tools": [SHELL],
                                           "input": [*HISTORY, TRIGGER]})
        assert status == 200
        body = orjson.loads(raw)
        (item,) = body["output"]
        assert item["type"] == "compaction" and opened(item) == KINDS[kind][0]
        assert body["status"] == "completed"
        assert (body["usage"]["input_tokens"], body["usage"]["output_tokens"]) == KINDS[kind][1]
        asked_for_summary(upstreams.last(kind))
        (row,) = await gateway.rows()
        assert row["status"] == 200 and row["prompt_tokens"] == KINDS[kind][1][0]

    async def test_mock_channel(self, gateway: Running) -> None:
        status, raw = await post(gateway, {"model": "mock", "stream": True, "tools": [SHELL],
                                           "input": [*HISTORY, TRIGGER]})
        assert status == 200
        got = events(raw)
        assert [e["type"] for e in got][-3:] == [
            "response.output_item.added", "response.output_item.done", "response.completed"]
        summary = opened(got[-1]["response"]["output"][0])
        assert summary is not None and compaction.SUMMARY_INSTRUCTION[:40] in summary
        (row,) = await gateway.rows()
        assert row["status"] == 200

    async def test_an_upstream_error_is_a_failed_response(self, gateway: Running,
                                                          upstreams: Upstreams) -> None:
        upstreams.chat.then(status=400, body=b'{"error": {"message": "bad history"}}')
        status, raw = await post(gateway, {"model": "chat", "stream": True,
                                           "input": [*HISTORY, TRIGGER]})
        assert status == 400
        assert orjson.loads(raw)["error"]["message"] == "bad history"
        (row,) = await gateway.rows()
        assert row["status"] == 400


class TestLaterTurns:
    """The compaction item comes back: the upstream reads the summary in its place."""

    @pytest.mark.parametrize("kind", [*KINDS, "openai"])
    async def test_our_summary_reaches_every_upstream(self, gateway: Running,
                                                      upstreams: Upstreams, kind: str) -> None:
        item = compaction.compaction_item("SUMMARY-7f3a: main.py was listed",
                                          hub.sealer(), caller_binding("alice"))
        model = "smart" if kind == "openai" else kind
        status, _ = await post(gateway, {"model": model, "stream": True, "tools": [SHELL],
                                         "input": [HISTORY[1], item, {
                                             "type": "message", "role": "user",
                                             "content": "go on"}]})
        assert status == 200
        raw = upstreams.last(kind).body.decode()
        assert compaction.SUMMARY_PREFIX.strip() in raw
        assert "SUMMARY-7f3a: main.py was listed" in raw
        assert "crenv1." not in raw
        assert raw.index("fix it") < raw.index("SUMMARY-7f3a") < raw.index("go on")

    async def test_openai_item_on_a_translated_channel_is_a_note(
            self, gateway: Running, upstreams: Upstreams) -> None:
        foreign = {"type": "compaction", "id": "cmp_abc", "encrypted_content": "gAAAAABfake"}
        status, _ = await post(gateway, {"model": "chat", "input": [HISTORY[1], foreign]})
        assert status == 200
        raw = upstreams.last("chat").body.decode()
        assert compaction.FOREIGN_NOTE in raw and "gAAAAABfake" not in raw

    async def test_openai_item_passes_to_a_responses_channel(
            self, gateway: Running, upstreams: Upstreams) -> None:
        foreign = {"type": "compaction", "id": "cmp_abc", "encrypted_content": "gAAAAABfake"}
        status, _ = await post(gateway, {"model": "smart", "input": [HISTORY[1], foreign]})
        assert status == 200
        assert upstreams.last("openai").json["input"] == [HISTORY[1], foreign]


async def test_a_responses_channel_compacts_itself(gateway: Running,
                                                   upstreams: Upstreams) -> None:
    """The trigger and the tools pass through untouched to an upstream with Responses."""
    body = {"model": "smart", "stream": True, "tools": [SHELL], "input": [*HISTORY, TRIGGER]}
    status, _ = await post(gateway, body)
    assert status == 200
    sent = upstreams.last("openai").json
    assert sent["input"] == [*HISTORY, TRIGGER] and sent["tools"] == [SHELL]
