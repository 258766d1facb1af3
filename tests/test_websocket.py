"""The Responses WebSocket (Codex's built-in provider) and the 426 of routes without one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from coderouter.dialects.responses import compaction, socket
from tests import fakes
from tests.conftest import (
    ALICE,
    UPSTREAM_KEY,
    MakeUpstream,
    Running,
    StartGateway,
    base_config,
)
from tests.fakes import FakeUpstream

AUTH = {"Authorization": f"Bearer {ALICE}"}
BETA = {"OpenAI-Beta": "responses_websockets=2026-02-06"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/realtime"])
async def test_upgrade_where_no_websocket_is_426(gateway: Running, path: str) -> None:
    """A route that serves no WebSocket refuses the upgrade with 426, which makes Codex fall
    back to HTTP at once (it retries a 404 or 405 for seconds)."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(gateway.url + path, headers=AUTH)
        assert refused.value.status == 426
        async with http.get(gateway.url + path, headers=AUTH) as plain:
            assert plain.status in (404, 405)  # no upgrade asked: the usual answer


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


DEVELOPER = {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "You are a coding agent."}]}


def create(model: str, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A frame as Codex 0.171 sends it."""
    return {"type": "response.create", "model": model, "input": items, "tools": [],
            "tool_choice": "auto", "parallel_tool_calls": False, "store": False,
            "stream": True, "include": [], "prompt_cache_key": "thread-1",
            "client_metadata": {"x": "y"}, **extra}


async def answer(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> list[Any]:
    """The frames answering *frame*, to its terminal event or error."""
    await ws.send_str(orjson.dumps(frame).decode())
    got = []
    while True:
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        event = orjson.loads(message.data)
        got.append(event)
        if event["type"] in ("response.completed", "response.failed", "error"):
            return got


@pytest.fixture
async def mixed(start_gateway: StartGateway, upstream: FakeUpstream,
                make_upstream: MakeUpstream, tmp_path: Path) -> tuple[Running, FakeUpstream]:
    """`base_config` (group smart: a Responses channel) plus group chat on a chat-only one."""
    chat = await make_upstream()
    config = base_config(upstream.url, tmp_path)
    config["channels"].append({"name": "chat", "type": "openai", "base_url": chat.url,
                               "keys": [UPSTREAM_KEY], "responses": False})
    config["model_groups"].append({"name": "chat", "targets": [
        {"channel": "chat", "model": "chat-m"}]})
    return await start_gateway(config), chat


async def test_plain_get_is_405_and_a_bad_key_is_refused_before_the_upgrade(
        gateway: Running) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/v1/responses", headers=AUTH) as plain:
            assert plain.status == 405
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(gateway.url + "/v1/responses",
                                  headers={"Authorization": "Bearer sk-wrong"})
        assert refused.value.status == 401


async def test_pass_through_session(gateway: Running, upstream: FakeUpstream) -> None:
    """Warm-up without an upstream call, then two turns; the second continues the first and
    reaches the upstream as the whole conversation; one row per answered frame."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers={**AUTH, **BETA}) as ws:
        warm = await answer(ws, create("smart", [DEVELOPER, user("hi")], generate=False))
        assert [e["type"] for e in warm] == ["response.created", "response.completed"]
        assert upstream.seen == []
        first = await answer(ws, create("smart", [], previous_response_id=warm[-1][
            "response"]["id"]))
        assert first[0]["type"] == "response.created"
        assert first[-1]["type"] == "response.completed"
        sent = upstream.seen[-1].json
        assert sent["input"] == [DEVELOPER, user("hi")]
        assert sent["model"] == "upstream-model" and sent["stream"] is True
        assert not {"type", "generate", "previous_response_id", "client_metadata"} & set(sent)
        assert "openai-beta" not in {k.lower() for k in upstream.seen[-1].headers}
        said = [e["item"] for e in first if e["type"] == "response.output_item.done"]
        second = await answer(ws, create("smart", [user("more")],
                                         previous_response_id=first[-1]["response"]["id"]))
        assert second[-1]["type"] == "response.completed"
        assert upstream.seen[-1].json["input"] == [DEVELOPER, user("hi"), *said, user("more")]
    rows = await gateway.rows()
    assert [(r["status"], r["endpoint"], r["stream"], r["token"]) for r in rows] == [
        (200, "/v1/responses", 1, "alice")] * 2
    assert rows[0]["request_id"] != rows[1]["request_id"]
    assert all(r["usage_source"] == "upstream" for r in rows)


async def test_translated_session(mixed: tuple[Running, FakeUpstream]) -> None:
    """On a chat-only channel each frame is translated; a continuing frame's earlier turns
    reach the upstream as Chat messages."""
    gateway, chat = mixed
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers=AUTH) as ws:
        first = await answer(ws, create("chat", [DEVELOPER, user("hi")]))
        types = [e["type"] for e in first]
        assert types[0] == "response.created" and types[-1] == "response.completed"
        text = "".join(e["delta"] for e in first if e["type"] == "response.output_text.delta")
        assert text == "".join(fakes.WORDS)
        await answer(ws, create("chat", [user("more")],
                                previous_response_id=first[-1]["response"]["id"]))
        messages = chat.seen[-1].json["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[2]["content"] == text and messages[3]["content"] == "more"
    rows = await gateway.rows()
    assert [(r["status"], r["channel"], r["completion_tokens"]) for r in rows] == [
        (200, "chat", fakes.USAGE["completion_tokens"])] * 2


async def test_errors_are_frames_and_the_socket_stays(gateway: Running,
                                                      upstream: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_str("{not json")
        bad = orjson.loads((await ws.receive()).data)
        assert (bad["type"], bad["status"], bad["error"]["code"]) == (
            "error", 400, "invalid_request")
        [lost] = await answer(ws, create("smart", [user("x")], previous_response_id="resp_x"))
        assert (lost["status"], lost["error"]["code"]) == (400, "previous_response_not_found")
        [unknown] = await answer(ws, create("nope", [user("x")]))
        assert (unknown["status"], unknown["error"]["code"]) == (404, "model_not_found")
        upstream.then(status=400, body=b'{"error":{"message":"bad input","type":"x"}}')
        [refused] = await answer(ws, create("smart", [user("x")]))
        assert refused == {"type": "error", "status": 400,
                           "error": {"message": "bad input", "type": "x"}}
        done = await answer(ws, create("smart", [user("x")]))
        assert done[-1]["type"] == "response.completed"
    rows = await gateway.rows()
    assert [r["status"] for r in rows] == [404, 400, 200]  # no row for a frame never read


async def test_stopping_gateway_closes_the_socket(gateway: Running) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers=AUTH) as ws:
        await asyncio.wait_for(gateway.stop(), 30)
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def test_history_keeps_the_last_responses() -> None:
    """A connection continues any of its last `KEPT` completed responses, not older ones."""
    history = socket.History()
    for n in range(socket.KEPT + 1):
        history.answered(f"resp_{n}", {"input": [user(str(n))]}, [{"type": "message", "n": n}])
    with pytest.raises(socket.UnknownResponse):
        history.request(create("m", [], previous_response_id="resp_0"))
    payload, generate = history.request(create("m", [user("next")],
                                               previous_response_id="resp_1"))
    assert generate and payload["input"] == [user("1"), {"type": "message", "n": 1},
                                             user("next")]
    assert payload["stream"] is True and "client_metadata" not in payload


async def test_binary_frames_and_oversized_requests_are_error_frames(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"max_body": 4096}
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_bytes(b"{}")
        binary = orjson.loads((await ws.receive()).data)
        assert (binary["status"], binary["error"]["code"]) == (400, "invalid_request")
        first = await answer(ws, create("smart", [user("x" * 3000)]))
        rid = first[-1]["response"]["id"]
        [big] = await answer(ws, create("smart", [user("y" * 3000)], previous_response_id=rid))
        assert (big["status"], big["error"]["code"]) == (413, "request_too_large")
        done = await answer(ws, create("smart", [user("z")], previous_response_id=rid))
        assert done[-1]["type"] == "response.completed"
    assert [r["status"] for r in await gateway.rows()] == [200, 200]


@pytest.mark.parametrize("leave", ["close", "drop"])
async def test_caller_leaving_mid_stream_is_a_499_row(gateway: Running, upstream: FakeUpstream,
                                                      leave: str) -> None:
    """A caller that closes the socket (or whose connection drops) mid-answer: the answer
    ends there and its row says so."""
    upstream.then(chunk_delay=0.3)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(gateway.url + "/v1/responses", headers=AUTH)
        await ws.send_str(orjson.dumps(create("smart", [user("x")])).decode())
        first = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert first["type"] == "response.created"
        if leave == "close":
            await ws.close()
        else:
            ws._response.connection.transport.abort()  # type: ignore[union-attr]
    for _ in range(100):
        rows = await gateway.rows()
        if rows:
            break
        await asyncio.sleep(0.05)
    assert [(r["status"], r["error"]) for r in rows] == [(499, "client disconnected")]
    assert upstream.cancelled == 1  # the upstream's answer was not waited for


async def test_remote_compaction_over_the_socket(mixed: tuple[Running, FakeUpstream]) -> None:
    """Codex's compaction_trigger in a continuing frame: one compaction item back; the next
    (full) request carries it, and the chat upstream reads the summary in its place."""
    gateway, chat = mixed
    async with aiohttp.ClientSession() as http, http.ws_connect(
            gateway.url + "/v1/responses", headers=AUTH) as ws:
        first = await answer(ws, create("chat", [DEVELOPER, user("fix it")]))
        compacted = await answer(ws, create("chat", [{"type": "compaction_trigger"}],
                                            previous_response_id=first[-1]["response"]["id"]))
        items = [e["item"] for e in compacted if e["type"] == "response.output_item.done"]
        assert [i["type"] for i in items] == ["compaction"]
        assert compaction.SUMMARY_INSTRUCTION in chat.seen[-1].body.decode()
        await answer(ws, create("chat", [DEVELOPER, user("fix it"), items[0], user("go on")]))
        sent = chat.seen[-1].body.decode()
        assert compaction.SUMMARY_PREFIX.strip() in sent and "".join(fakes.WORDS) in sent
        assert "crenv1." not in sent
    assert [r["status"] for r in await gateway.rows()] == [200, 200, 200]
