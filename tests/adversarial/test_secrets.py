"""No secret out: channel keys and header values never reach a caller, a row or a log, upstream
redirects are not followed, and config errors never quote a secret."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from coderouter.config import parse
from coderouter.errors import ConfigError
from coderouter.scrub import REDACTED, Scrubber
from tests.adversarial.conftest import HEADER_SECRET, hostile_config
from tests.adversarial.hostile import Hostile
from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway
from tests.fakes import FakeUpstream

SECRETS = (UPSTREAM_KEY, HEADER_SECRET)


async def call(gateway: Running, model: str, path: str = "/v1/chat/completions",
               **body: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + path, json={"model": model, **body},
                             headers={"Authorization": f"Bearer {ALICE}"}) as resp:
            return resp.status, await resp.read()


def assert_clean(*texts: Any) -> None:
    for text in texts:
        blob = text if isinstance(text, str) else str(text)
        for secret in SECRETS:
            assert secret not in blob


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
async def test_relayed_upstream_errors_carry_no_key(
        hostile_gateway: Running, status: int, caplog: pytest.LogCaptureFixture) -> None:
    """An upstream 4xx quoting the key reaches the caller with the key replaced."""
    got, body = await call(hostile_gateway, f"echo-{status}")
    assert got == status
    message = orjson.loads(body)["error"]["message"]
    assert message.startswith(f"Incorrect API key provided: {REDACTED}.")
    rows = await hostile_gateway.rows()
    assert rows[-1]["status"] == status
    assert_clean(body, rows, caplog.text)


async def test_translated_error_carries_no_key(hostile_gateway: Running,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A Messages caller on an OpenAI channel gets the upstream's message, key replaced."""
    got, body = await call(hostile_gateway, "echo-422", "/v1/messages", max_tokens=5,
                           messages=[{"role": "user", "content": "hi"}])
    assert got == 422
    error = orjson.loads(body)["error"]
    assert error["message"].startswith(f"Incorrect API key provided: {REDACTED}.")
    assert_clean(body, await hostile_gateway.rows(), caplog.text)


async def test_a_200_body_echoing_request_headers_carries_no_secret(
        hostile_gateway: Running, hostile: Hostile) -> None:
    """A debug upstream's echo of our headers: key and channel header value replaced."""
    got, body = await call(hostile_gateway, "echo")
    assert got == 200
    echoed = orjson.loads(orjson.loads(body)["choices"][0]["message"]["content"])
    assert hostile.seen[-1].headers["X-Secret"] == HEADER_SECRET  # it was sent
    assert echoed["Authorization"] == f"Bearer {REDACTED}"
    assert echoed["X-Secret"] == REDACTED
    assert_clean(body)


async def test_a_stream_event_with_the_key_split_across_reads(hostile_gateway: Running) -> None:
    """The key arrives in two TCP writes; the caller's event still has it replaced."""
    got, body = await call(hostile_gateway, "echo-stream", stream=True)
    assert got == 200
    assert f"key={REDACTED}".encode() in body
    assert body.endswith(b"data: [DONE]\n\n")
    assert_clean(body)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_stream_error_events_rows_and_logs_carry_no_key(
        hostile_gateway: Running, path: str, caplog: pytest.LogCaptureFixture) -> None:
    """An upstream error event quoting the key, relayed or translated: clean everywhere."""
    got, body = await call(hostile_gateway, "echo-stream-error", path, stream=True,
                           max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert got == 200
    assert b"error" in body
    row = (await hostile_gateway.rows())[-1]
    assert row["status"] == 502
    if path == "/v1/messages":  # the converter's error quotes the upstream's message
        assert row["error"] == f"upstream stream error: key {REDACTED} was revoked"
    assert_clean(body, row, caplog.text)


async def test_a_redirect_is_an_upstream_error_and_never_followed(
        start_gateway: StartGateway, hostile: Hostile, upstream: FakeUpstream,
        tmp_path: Path) -> None:
    """A 307 to another host: nothing reaches that host; the caller gets 502."""
    hostile.redirect_to = upstream.url + "/chat/completions"
    gateway = await start_gateway(hostile_config(hostile.url, tmp_path))
    got, body = await call(gateway, "redirect")
    assert got == 502
    assert upstream.seen == []
    row = (await gateway.rows())[-1]
    assert row["error"] == "bad: upstream answered a redirect (307); redirects are not followed"
    assert_clean(body)


SECRET_VALUE = "sk-live-do-not-print-0123456789"


@pytest.mark.parametrize("fragment", [
    {"channels": [{"name": "c", "type": "openai", "base_url": "http://x", "keys": SECRET_VALUE}]},
    {"channels": [{"name": "c", "type": "openai", "base_url": "http://x", "keys": ["k" * 9],
                   "headers": SECRET_VALUE}]},
    {"channels": [{"name": "c", "type": "openai", "base_url": "http://x", "keys": ["k" * 9],
                   "headers": {"Authorization": {"Bearer": SECRET_VALUE}}}]},
    {"admin": SECRET_VALUE},
    {"admin": {"key": {SECRET_VALUE: 1}}},
    {"tokens": [{"name": "t", "key": {"v": SECRET_VALUE}}]},
])
def test_config_errors_name_the_type_of_a_secret_never_its_value(
        fragment: dict[str, Any]) -> None:
    """Secret-bearing fields (keys, key, admin.key, headers) are described, not quoted."""
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(fragment))
    assert SECRET_VALUE not in str(caught.value)
    assert caught.value.problems


async def test_admin_reload_422_quotes_no_secret(start_gateway: StartGateway,
                                                 upstream: FakeUpstream,
                                                 tmp_path: Path) -> None:
    """The 422 of /admin/reload lists the problem without the value."""
    config = hostile_config("http://127.0.0.1:9", tmp_path, admin={"key": "admin-key-12345"})
    gateway = await start_gateway(config)
    config["channels"][0]["keys"] = SECRET_VALUE
    gateway.config_path.write_text(yaml.safe_dump(config))
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/admin/reload",
                             headers={"Authorization": "Bearer admin-key-12345"}) as resp:
            assert resp.status == 422
            body = await resp.read()
    assert {"path": "channels[0].keys", "message": "expected a list, got a str (value not shown)"} \
        in orjson.loads(body)["errors"]
    assert SECRET_VALUE.encode() not in body


def test_scrubber_replaces_json_spellings_and_leaves_short_values() -> None:
    """Escaped spellings are caught; values under 8 characters are not secrets."""
    scrubber = Scrubber(["ab/cd\"efgh", "short"])
    assert scrubber.clean(b'"ab\\/cd\\"efgh ab/cd\\"efgh short"') == \
        f'"{REDACTED} {REDACTED} short"'.encode()
    assert scrubber.clean_text('x ab/cd"efgh') == f"x {REDACTED}"
    clean = b"nothing here"
    assert scrubber.clean(clean) is clean
