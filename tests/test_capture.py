"""Opt-in capture of request and response bodies (``capture:``): sampled, capped, scrubbed,
kept for capture.keep, read back by request id."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from coderouter.capture import MAX_QUEUED, Captures
from coderouter.config import Config
from coderouter.config.model import Capture as CaptureSettings
from coderouter.scrub import scrub_credentials
from coderouter.usage import Record
from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway, base_config
from tests.fakes import FakeClock, FakeUpstream

ADMIN = "cr-admin-capture-0123456789abcdef"
NOW = 1_795_000_000.0
PASTED = "sk-proj-" + "Q" * 40  # a key someone pasted into a prompt


def captured_config(upstream: FakeUpstream, tmp_path: Path, **capture: Any) -> dict[str, Any]:
    config = base_config(upstream.url, tmp_path)
    config["admin"] = {"key": ADMIN}
    config["capture"] = {"sample": 1, **capture}
    return config


async def post(gateway: Running, body: dict[str, Any]) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1/chat/completions", data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {ALICE}",
                     "Content-Type": "application/json"}) as resp:
        return resp.status, await resp.read(), resp.headers["x-request-id"]


async def capture_of(gateway: Running, request_id: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{gateway.url}/admin/captures/{request_id}",
            headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
        return resp.status, await resp.json()


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "smart", "messages": [{"role": "user", "content": content}], **extra}


async def test_bodies_are_kept_scrubbed_and_read_back(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The caller's body and the answer it got, byte for byte but for secrets: the caller's
    own key, the channel's key and a pasted key become [REDACTED]."""
    gateway = await start_gateway(captured_config(upstream, tmp_path), clock=FakeClock(NOW))
    sent = chat(f"my key is {ALICE}, the channel's {UPSTREAM_KEY}, and {PASTED}")
    status, answer, request_id = await post(gateway, sent)
    assert status == 200
    status, found = await capture_of(gateway, request_id)
    assert status == 200
    expected = orjson.dumps(sent).decode()
    for secret in (ALICE, UPSTREAM_KEY, PASTED):
        expected = expected.replace(secret, "[REDACTED]")
    assert found == {"request_id": request_id, "ts": NOW, "token": "alice",
                     "request": expected, "response": answer.decode(),
                     "request_truncated": 0, "response_truncated": 0}
    raw = (tmp_path / "coderouter-capture.sqlite").read_bytes()
    assert all(s.encode() not in raw for s in (ALICE, UPSTREAM_KEY, PASTED))


async def test_a_stream_is_kept_event_by_event_and_bodies_are_capped(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A stream's events as the caller got them; each body cut at max_body, marked so."""
    gateway = await start_gateway(captured_config(upstream, tmp_path))
    status, answer, request_id = await post(gateway, chat("hi", stream=True))
    assert status == 200 and answer.endswith(b"data: [DONE]\n\n")
    _, found = await capture_of(gateway, request_id)
    assert found["response"] == answer.decode() and found["response_truncated"] == 0
    gateway.reconfigure(captured_config(upstream, tmp_path, max_body=100))
    sent = chat("x" * 500)
    status, answer, request_id = await post(gateway, sent)
    _, found = await capture_of(gateway, request_id)
    assert found["request"] == orjson.dumps(sent).decode()[:100]
    assert found["response"] == answer.decode()[:100]
    assert (found["request_truncated"], found["response_truncated"]) == (1, 1)


async def test_an_error_answer_is_kept_too(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A request the gateway answered with an error keeps that error body."""
    gateway = await start_gateway(captured_config(upstream, tmp_path))
    upstream.then(status=500).then(status=500).then(status=500)
    status, answer, request_id = await post(gateway, chat("hi"))
    assert status == 502
    _, found = await capture_of(gateway, request_id)
    assert found["response"] == answer.decode()


async def test_off_by_default_unsampled_and_expired_are_not_found(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """No capture: 404. sample 0: nothing kept. Older than keep: 404, and deleted."""
    clock = FakeClock(NOW)
    config = base_config(upstream.url, tmp_path)
    config["admin"] = {"key": ADMIN}
    gateway = await start_gateway(config, clock=clock)
    _, _, request_id = await post(gateway, chat("hi"))
    status, found = await capture_of(gateway, request_id)
    assert status == 404 and found["error"]["code"] == "not_found"
    assert not (tmp_path / "coderouter-capture.sqlite").exists()
    gateway.reconfigure(captured_config(upstream, tmp_path, keep="1h"))
    _, _, kept = await post(gateway, chat("hi"))
    assert (await capture_of(gateway, kept))[0] == 200
    clock.now += 3601
    assert (await capture_of(gateway, kept))[0] == 404
    _, _, newer = await post(gateway, chat("hi"))
    assert (await capture_of(gateway, newer))[0] == 200
    await gateway.state.captures.flush()
    with sqlite3.connect(tmp_path / "coderouter-capture.sqlite") as db:
        assert [r for (r,) in db.execute("SELECT request_id FROM captures")] == [newer]
    gateway.reconfigure(captured_config(upstream, tmp_path, sample=0))
    _, _, unsampled = await post(gateway, chat("hi"))
    assert (await capture_of(gateway, unsampled))[0] == 404


def test_common_credential_shapes_are_scrubbed() -> None:
    """Keys of the usual vendors, bearer values and private keys in captured text."""
    shapes = [PASTED, "sk-ant-api03-" + "a" * 30, "AKIA" + "B" * 16, "ghp_" + "c" * 36,
              "xoxb-1234567890-abcdef", "AIza" + "d" * 35,
              "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"]
    for shape in shapes:
        assert scrub_credentials(f"x {shape} y") == "x [REDACTED] y", shape
    assert scrub_credentials("Authorization: Bearer abcdefghijklmnop0123") == \
        "Authorization: Bearer [REDACTED]"
    assert scrub_credentials("a task-list of sk-short and risk-taking") == \
        "a task-list of sk-short and risk-taking"


def test_the_queue_waiting_for_the_writer_is_bounded() -> None:
    """Past MAX_QUEUED captures waiting to be written, more are dropped and counted."""
    captures = Captures()
    config = Config(capture=CaptureSettings(sample=1.0))
    for i in range(MAX_QUEUED + 5):
        capture = captures.start(config.capture, b"{}", None)
        assert capture is not None
        captures.finish(capture, Record(ts=0.0, request_id=f"r{i}", endpoint="/x"), config)
    assert captures.dropped == 5
