"""The caller does not steer the operator's account: an allow-list of forwarded headers per
dialect family, the channel's `forward_headers` for more, no key cooled for a 401/403 the
caller's own headers may have caused, and honest, bounded Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from coderouter.config import parse
from coderouter.errors import ConfigError
from coderouter.relay.attempt import MAX_RETRY_AFTER, retry_after_seconds
from tests.adversarial.conftest import hostile_config
from tests.adversarial.hostile import Hostile
from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway, base_config
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fakes import FakeUpstream

#: Headers a caller may send to pick the account, project or billing, or claim an address.
STEERING = {"OpenAI-Organization": "org-caller", "OpenAI-Project": "proj_caller",
            "x-goog-user-project": "caller-project", "X-Forwarded-For": "10.0.0.1",
            "Forwarded": "for=10.0.0.1", "X-Real-IP": "10.0.0.1"}
CODEX = {"User-Agent": "codex_cli_rs/0.50.0", "originator": "codex_cli_rs",
         "session-id": "s-1", "thread-id": "t-1", "x-codex-turn-state": "ts",
         "x-openai-subagent": "review", "x-stainless-lang": "js"}
OPENCODE = {"x-session-affinity": "ses_1", "X-Session-Id": "ses_1"}
CLAUDE_CODE = {"anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,context-management-2025-06-27",
               "x-stainless-os": "Linux", "x-app": "cli", "User-Agent": "claude-cli/2.1 (cli)",
               "x-claude-code-session-id": "sess-9", "x-claude-code-agent-id": "a-1"}


async def post(url: str, path: str, body: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + path, json=body,
                             headers={"Authorization": f"Bearer {ALICE}", **headers}) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def sent(headers: Any, names: dict[str, str]) -> dict[str, str]:
    """Which of *names* reached the upstream, with their values."""
    return {name: headers[name] for name in names if name in headers}


MESSAGES = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def test_openai_callers_keep_agent_headers_and_lose_steering_ones(
        gateway: Running, upstream: FakeUpstream) -> None:
    """Codex and opencode session headers pass; org, project and address claims do not."""
    foreign = {k: v for k, v in CLAUDE_CODE.items() if k != "User-Agent"}
    status, _, _ = await post(gateway.url, "/v1/chat/completions", {"model": "smart"},
                              {**CODEX, **OPENCODE, **STEERING, **foreign, "X-Custom": "x"})
    assert status == 200
    headers = upstream.seen[-1].headers
    assert sent(headers, {**CODEX, **OPENCODE}) == {**CODEX, **OPENCODE}
    assert sent(headers, {**STEERING, "X-Custom": ""}) == {}
    # an OpenAI caller's anthropic-* and x-claude-code-* do not belong to its dialect
    assert sent(headers, foreign) == {"x-stainless-os": "Linux"}


async def test_a_translated_request_leaves_the_callers_dialect_headers_behind(
        coding_gateway: Running, upstream: FakeUpstream) -> None:
    """Claude Code on an OpenAI channel: no anthropic-*, x-stainless-*, x-app, x-claude-code-*."""
    status, _, _ = await post(coding_gateway.url, "/v1/messages",
                              {"model": "smart", **MESSAGES}, {**CLAUDE_CODE, **STEERING})
    assert status == 200
    headers = upstream.seen[-1].headers
    assert sent(headers, {**CLAUDE_CODE, **STEERING}) == {}
    assert headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_claude_code_headers_reach_an_anthropic_channel(
        coding_gateway: Running, anthropic_upstream: FakeAnthropic) -> None:
    """On its own dialect every anthropic-* and the session headers pass; steering does not."""
    status, _, _ = await post(coding_gateway.url, "/v1/messages",
                              {"model": "claude", **MESSAGES}, {**CLAUDE_CODE, **STEERING})
    assert status == 200
    headers = anthropic_upstream.seen[-1].headers
    assert sent(headers, CLAUDE_CODE) == CLAUDE_CODE
    assert sent(headers, STEERING) == {}


async def test_forward_headers_passes_more_but_never_credentials(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A channel's forward_headers adds names and prefixes; credentials are refused at load."""
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["forward_headers"] = ["OpenAI-Organization", "x-team-*"]
    gateway = await start_gateway(config)
    status, _, _ = await post(gateway.url, "/v1/chat/completions", {"model": "smart"},
                              {**STEERING, "X-Team-Id": "blue", "X-Teammate": "no"})
    assert status == 200
    headers = upstream.seen[-1].headers
    assert sent(headers, {**STEERING, "X-Team-Id": "", "X-Teammate": ""}) == {
        "OpenAI-Organization": "org-caller", "X-Team-Id": "blue"}

    config["channels"][0]["forward_headers"] = ["Authorization", "x-api-key", "Cookie"]
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(config))
    assert [path for path, _ in caught.value.problems] == [
        "channels[0].forward_headers[0]", "channels[0].forward_headers[1]",
        "channels[0].forward_headers[2]"]


async def test_a_401_caused_by_the_callers_organisation_cools_no_key(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """One caller's foreign organisation gets that caller a 401; everyone else is served."""
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["forward_headers"] = ["OpenAI-Organization"]
    gateway = await start_gateway(config)
    upstream.then(status=401, body=orjson.dumps({"error": {
        "message": "No such organization: org-caller.", "type": "invalid_request_error",
        "code": "invalid_organization"}}))
    status, _, body = await post(gateway.url, "/v1/chat/completions", {"model": "smart"},
                                 {"OpenAI-Organization": "org-caller"})
    assert status == 401
    assert orjson.loads(body)["error"]["code"] == "invalid_organization"
    status, _, _ = await post(gateway.url, "/v1/chat/completions", {"model": "smart"}, {})
    assert status == 200
    rows = await gateway.rows()
    assert [(r["status"], r["attempts"], r["error"]) for r in rows] == [
        (401, 1, "upstream answered 401 to the caller's OpenAI-Organization"), (200, 1, None)]


async def test_a_401_without_caller_steering_still_cools_the_key(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A bad key is still a bad key: cooled, and the caller gets 502 without the body."""
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["forward_headers"] = ["OpenAI-Organization"]
    gateway = await start_gateway(config)
    upstream.then(status=401)
    status, _, _ = await post(gateway.url, "/v1/chat/completions", {"model": "smart"}, {})
    assert status == 502
    status, headers, _ = await post(gateway.url, "/v1/chat/completions", {"model": "smart"}, {})
    assert status == 502
    assert 20 < int(headers["Retry-After"]) <= 30  # the key's cooldown: the route's 30 s


async def test_retry_after_of_a_cooled_route_reflects_key_cooldowns(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Every key cooling on an upstream's Retry-After: 120 -> the caller is told ~120 s."""
    gateway = await start_gateway(base_config(upstream.url, tmp_path))
    upstream.then(status=429, headers={"Retry-After": "120"})
    status, _, _ = await post(gateway.url, "/v1/chat/completions", {"model": "smart"}, {})
    assert status == 502
    status, headers, body = await post(gateway.url, "/v1/chat/completions",
                                       {"model": "smart"}, {})
    assert status == 502
    assert 110 < int(headers["Retry-After"]) <= 120
    assert b"retry in 1" in body  # "retry in 119s" or "120s"
    assert len(upstream.seen) == 1


async def test_a_huge_retry_after_is_clamped(start_gateway: StartGateway, hostile: Hostile,
                                             tmp_path: Path) -> None:
    """Retry-After: 99999999 cools the key for at most MAX_RETRY_AFTER, not three years."""
    gateway = await start_gateway(hostile_config(hostile.url, tmp_path))
    status, _, _ = await post(gateway.url, "/v1/chat/completions", {"model": "retry-after"}, {})
    assert status == 502
    status, headers, _ = await post(gateway.url, "/v1/chat/completions", {"model": "ok"}, {})
    assert status == 502  # same channel, same (only) key
    assert int(headers["Retry-After"]) <= MAX_RETRY_AFTER


def test_retry_after_forms() -> None:
    """Seconds or an HTTP date, clamped to [0, MAX_RETRY_AFTER]; junk is ignored."""
    now = 1_700_000_000.0
    date = email.utils.format_datetime(dt.datetime.fromtimestamp(now + 90, dt.UTC),
                                       usegmt=True)
    assert retry_after_seconds(date, now) == pytest.approx(90)
    assert retry_after_seconds("7", now) == 7
    assert retry_after_seconds("99999999", now) == MAX_RETRY_AFTER
    assert retry_after_seconds("inf", now) == MAX_RETRY_AFTER
    assert retry_after_seconds("-5", now) == 0
    assert retry_after_seconds("nan", now) is None
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


@pytest.mark.parametrize("method", ["generateContent", "countTokens"])
async def test_gemini_callers_keep_their_client_header_and_lose_the_project(
        start_gateway: StartGateway, upstream: FakeUpstream, aiohttp_server: Any,
        tmp_path: Path, method: str) -> None:
    """A Gemini caller on a gemini channel: x-goog-api-client passes, the billing project,
    the caller's own key header and address claims do not."""
    gemini = FakeGemini()
    gemini.url = str((await aiohttp_server(gemini.app)).make_url("")).rstrip("/")
    config = base_config(upstream.url, tmp_path)
    config["channels"].append({"name": "google", "type": "gemini", "base_url": gemini.url,
                               "keys": [UPSTREAM_KEY]})
    config["model_groups"].append(
        {"name": "gem", "targets": [{"channel": "google", "model": "gemini-2.5-flash"}]})
    gateway = await start_gateway(config)
    client = {"x-goog-api-client": "google-genai-sdk/1.0", "User-Agent": "GeminiCLI/0.1"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1beta/models/gem:{method}",
                             json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                             headers={"x-goog-api-key": ALICE, **client, **STEERING}) as resp:
            assert resp.status == 200, await resp.text()
    headers = gemini.seen[-1].headers
    assert sent(headers, client) == client
    assert sent(headers, STEERING) == {}
    assert headers["x-goog-api-key"] == UPSTREAM_KEY
