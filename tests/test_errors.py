"""Every row of the contract's error table, with the exact body a caller receives."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ALICE, BOB, UPSTREAM_KEY, Running, StartGateway, base_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeUpstream


async def post(gateway: Running, body: Any, key: str | None = ALICE,
               path: str = "/v1/chat/completions",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + path, data=data, headers=sent) as resp:
            raw = await resp.read()
            return resp.status, dict(resp.headers), orjson.loads(raw)


def openai_error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


@pytest.mark.parametrize(("headers", "message"), [
    ({}, "missing API key: send it as 'Authorization: Bearer KEY'"),
    ({"Authorization": "Bearer sk-cr-wrong"}, "invalid API key"),
    ({"x-api-key": "sk-cr-wrong"}, "invalid API key"),
    ({"Authorization": "Basic abc"}, "missing API key: send it as 'Authorization: Bearer KEY'"),
])
async def test_no_or_unknown_key_is_401(gateway: Running, headers: dict[str, str],
                                        message: str) -> None:
    """No key or an unknown key: 401 invalid_api_key, and no usage row (nobody to bill)."""
    status, _, body = await post(gateway, {"model": "smart"}, key=None, headers=headers)
    assert status == 401
    assert body == openai_error(message, "invalid_request_error", "invalid_api_key")
    assert await gateway.rows() == []


async def test_all_three_key_headers_authenticate(gateway: Running) -> None:
    """Bearer, x-api-key and api-key all carry the caller's key."""
    for headers in ({"Authorization": f"Bearer {ALICE}"}, {"x-api-key": ALICE},
                    {"api-key": ALICE}):
        status, _, _ = await post(gateway, {"model": "smart"}, key=None, headers=headers)
        assert status == 200
    assert [r["token"] for r in await gateway.rows()] == ["alice"] * 3


async def test_disabled_and_expired_tokens_are_401(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A disabled token and one past its expiry are refused like unknown keys."""
    config = base_config(upstream.url, tmp_path)
    config["tokens"][0]["enabled"] = False
    config["tokens"][1]["expires"] = "2020-01-01T00:00:00"
    gateway = await start_gateway(config)
    status, _, body = await post(gateway, {"model": "smart"})
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    assert body["error"]["message"] == "this API key is disabled"
    status, _, body = await post(gateway, {"model": "other-x"}, key=BOB)
    assert (status, body["error"]["message"]) == (401, "this API key has expired")
    assert upstream.seen == []


async def test_unknown_model_is_404(gateway: Running) -> None:
    """A model that no group or channel serves: 404 model_not_found, row written."""
    status, _, body = await post(gateway, {"model": "gpt-9"})
    assert status == 404
    assert body == openai_error("the model 'gpt-9' does not exist", "invalid_request_error",
                                "model_not_found")
    [row] = await gateway.rows()
    assert (row["status"], row["model"], row["attempts"], row["channel"]) == (
        404, "gpt-9", 0, None)


async def test_model_outside_the_allow_list_is_403(gateway: Running,
                                                   upstream: FakeUpstream) -> None:
    """bob may use other-* only: smart is refused with 403 model_not_allowed."""
    status, _, body = await post(gateway, {"model": "smart"}, key=BOB)
    assert status == 403
    assert body == openai_error("this API key may not use the model 'smart'",
                                "invalid_request_error", "model_not_allowed")
    assert upstream.seen == []
    [row] = await gateway.rows()
    assert (row["token"], row["status"]) == ("bob", 403)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "request body is not valid JSON"),
    (b"[1, 2]", "request body must be a JSON object"),
    (b"{}", "'model' is required"),
    (b'{"model": 5}', "'model' must be a non-empty string"),
    (b'{"model": ""}', "'model' must be a non-empty string"),
    (b'{"model": "smart", "stream": "yes"}', "'stream' must be true or false"),
    (b'{"model": "smart", "max_tokens": "10"}', "'max_tokens' must be an integer"),
    (b'{"model": "smart", "stream_options": 1}', "'stream_options' must be an object"),
])
async def test_bad_bodies_are_400(gateway: Running, upstream: FakeUpstream, body: bytes,
                                  message: str) -> None:
    """Malformed JSON and wrong types: 400 invalid_request, nothing forwarded, row written."""
    status, _, answer = await post(gateway, body)
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"].startswith(message)
    assert upstream.seen == []
    [row] = await gateway.rows()
    assert row["status"] == 400


async def test_body_over_the_limit_is_413(start_gateway: StartGateway, upstream: FakeUpstream,
                                          tmp_path: Path) -> None:
    """A body over limits.max_body: 413 request_too_large, also when sent chunked."""
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"max_body": "1KiB"}
    gateway = await start_gateway(config)
    big = orjson.dumps({"model": "smart", "messages": [{"role": "user", "content": "x" * 2000}]})
    status, _, body = await post(gateway, big)
    assert status == 413
    assert body == openai_error(f"request body of {len(big)} bytes is over the 1024 byte limit",
                                "invalid_request_error", "request_too_large")

    async def chunks() -> Any:
        for _ in range(4):
            yield b" " * 512
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", data=chunks(),
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            assert resp.status == 413
    assert upstream.seen == []
    assert [r["status"] for r in await gateway.rows()] == [413, 413]


async def test_body_that_stalls_is_408(start_gateway: StartGateway, upstream: FakeUpstream,
                                       tmp_path: Path) -> None:
    """A caller that stops sending its body: 408 request_timeout after limits.body_timeout."""
    config = base_config(upstream.url, tmp_path)
    config["limits"] = {"body_timeout": "200ms"}
    gateway = await start_gateway(config)
    stalled = asyncio.Event()

    async def stalling() -> Any:
        yield b'{"model": "smart", '
        await stalled.wait()
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", data=stalling(),
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            status, body = resp.status, await resp.json()
    stalled.set()
    assert status == 408
    assert body == openai_error("request body did not arrive within 0.2s",
                                "invalid_request_error", "request_timeout")
    assert upstream.seen == []
    [row] = await gateway.rows()
    assert row["status"] == 408


async def test_unknown_route_and_method(gateway: Running) -> None:
    """Unknown paths are an OpenAI-shaped 404; a wrong method a 405."""
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/v2/whatever") as resp:
            assert resp.status == 404
            assert orjson.loads(await resp.read()) == openai_error(
                "no route for GET /v2/whatever", "invalid_request_error", "not_found")
        async with http.get(gateway.url + "/v1/chat/completions") as resp:
            assert resp.status == 405
            assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_upstream_4xx_is_the_callers_error(gateway: Running,
                                                 upstream: FakeUpstream) -> None:
    """An upstream 400 passes through as it came, with no failover."""
    upstream.then(status=400, body=b'{"error":{"message":"bad messages","type":"invalid"}}')
    status, _, body = await post(gateway, {"model": "smart"})
    assert (status, body) == (400, {"error": {"message": "bad messages", "type": "invalid"}})
    assert len(upstream.seen) == 1
    [row] = await gateway.rows()
    assert (row["status"], row["attempts"], row["error"]) == (400, 1, "upstream answered 400")


@pytest.mark.parametrize("status", [401, 403])
async def test_upstream_auth_failure_hides_its_body(gateway: Running, upstream: FakeUpstream,
                                                    status: int) -> None:
    """An upstream 401/403 with no other key or target: 502, none of the upstream's words."""
    upstream.then(status=status, body=b'{"error":{"message":"key sk-upstream-secret leaked"}}')
    code, _, body = await post(gateway, {"model": "smart"})
    assert code == 502
    assert body["error"]["code"] == "upstream_error"
    assert "leaked" not in body["error"]["message"]
    assert UPSTREAM_KEY not in orjson.dumps(body).decode()
    assert "127.0.0.1" not in body["error"]["message"]


async def test_garbage_and_non_json_errors_are_502(gateway: Running,
                                                   upstream: FakeUpstream) -> None:
    """A 200 that is not JSON and an HTML 500 page: 502 upstream_error, rows written."""
    upstream.then(body=b"<html>oops</html>", content_type="text/html")
    status, _, body = await post(gateway, {"model": "smart"})
    assert (status, body["error"]["code"]) == (502, "upstream_error")
    assert "invalid JSON" in body["error"]["message"]
    # the target is cooling down now; end that so the next case reaches it
    gateway.state.health.succeeded(gateway.state.holder.current.routes["smart"].targets[0])
    upstream.then(status=500, body=b"<html>Internal</html>", content_type="text/html")
    status, _, body = await post(gateway, {"model": "smart"})
    assert (status, body["error"]["code"]) == (502, "upstream_error")
    assert "<html>" not in body["error"]["message"]
    assert [r["status"] for r in await gateway.rows()] == [502, 502]


async def test_connection_refused_is_502_and_timeout_504(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A dead upstream is 502; one that never answers within first_byte is 504."""
    config = base_config(upstream.url, tmp_path)
    config["channels"].append({"name": "dead", "type": "openai",
                               "base_url": "http://127.0.0.1:9/v1", "keys": ["k"]})
    config["channels"][0]["timeout"] = {"first_byte": "200ms"}
    config["model_groups"].append({"name": "dead", "targets": [
        {"channel": "dead", "model": "m"}]})
    gateway = await start_gateway(config)
    status, _, body = await post(gateway, {"model": "dead"})
    assert (status, body["error"]["code"]) == (502, "upstream_error")
    assert "9/v1" not in body["error"]["message"]
    upstream.then(delay=2)
    status, _, body = await post(gateway, {"model": "smart"})
    assert (status, body["error"]["code"]) == (504, "upstream_error")
    rows = await gateway.rows()
    assert [(r["status"], r["channel"]) for r in rows] == [(502, "dead"), (504, "up")]


async def test_messages_routes_answer_anthropic_shaped_errors(gateway: Running) -> None:
    """On /v1/messages every error is {"type": "error", "error": {type, message}}."""
    status, _, body = await post(gateway, {"model": "smart"}, key=None,
                                 path="/v1/messages")
    assert status == 401
    assert body == {"type": "error", "error": {
        "type": "authentication_error",
        "message": "missing API key: send it as 'Authorization: Bearer KEY'"}}
    status, _, body = await post(gateway, {"model": "nope"}, path="/v1/messages")
    assert (status, body["type"], body["error"]["type"]) == (404, "error", "not_found_error")


async def test_a_stopped_messages_stream_ends_alike_passed_through_or_translated(
        coding_gateway: Running, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic) -> None:
    """A graceful stop ends a Messages stream with the same ``overloaded_error`` event
    whether its upstream speaks Messages (bytes passed through) or Chat (translated)."""
    pause = asyncio.Event()
    anthropic_upstream.then(pause=pause)
    upstream.then(pause=pause)
    body = {"max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as http:
        streams = [await http.post(coding_gateway.url + "/v1/messages",
                                   json={**body, "model": model}, headers={"x-api-key": ALICE})
                   for model in ("claude", "smart")]
        try:
            for stream in streams:
                assert stream.status == 200
                await stream.content.readuntil(b"\n\n")  # the stream has begun
            assert await coding_gateway.state.drain.stop(0) == 2
            ends = [(await stream.read()).rsplit(b"\n\n", 2)[-2] for stream in streams]
        finally:
            pause.set()
            for stream in streams:
                stream.release()
    assert ends == [b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                    b'"message":"server shutting down"}}'] * 2
    rows = await coding_gateway.rows()
    assert sorted((r["upstream_model"], r["status"]) for r in rows) == [
        ("claude-upstream", 503), ("upstream-model", 503)]
