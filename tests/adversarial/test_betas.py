"""Operators choose the betas they pay for: a caller's ``anthropic-beta`` values reach an
anthropic channel only when its ``betas:`` lists them (by default, those Claude Code needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from coderouter.config import parse
from coderouter.errors import ConfigError
from tests.conftest import ALICE, StartGateway, coding_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeUpstream

MESSAGES = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
#: What Claude Code sends, plus two billed betas a caller might switch on.
CALLER_BETAS = [("anthropic-beta", "claude-code-20250219, context-1m-2025-08-07,"
                                   "interleaved-thinking-2025-05-14"),
                ("anthropic-beta", "fast-mode-2026-02-01")]


async def betas_upstream_got(start_gateway: StartGateway, config: dict[str, Any],
                             anthropic: FakeAnthropic, path: str = "/v1/messages") -> list[str]:
    gateway = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + path, json=MESSAGES, headers=[
                ("Authorization", f"Bearer {ALICE}"), ("anthropic-version", "2023-06-01"),
                *CALLER_BETAS]) as resp:
            assert resp.status == 200, await resp.text()
    return anthropic.seen[-1].headers.getall("anthropic-beta", [])


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_by_default_only_the_betas_claude_code_needs_pass(
        start_gateway: StartGateway, upstream: FakeUpstream, anthropic_upstream: FakeAnthropic,
        tmp_path: Path, path: str) -> None:
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    assert await betas_upstream_got(start_gateway, config, anthropic_upstream, path) == [
        "claude-code-20250219,interleaved-thinking-2025-05-14"]


@pytest.mark.parametrize(("betas", "expected"), [
    (["context-1m-2025-08-07"], ["context-1m-2025-08-07"]),
    (["effort-2025-11-24"], []),
    (["*"], [value for _, value in CALLER_BETAS]),
], ids=["listed", "none-sent-is-listed", "star"])
async def test_a_channel_lists_the_betas_it_allows(
        start_gateway: StartGateway, upstream: FakeUpstream, anthropic_upstream: FakeAnthropic,
        tmp_path: Path, betas: list[str], expected: list[str]) -> None:
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"][1]["betas"] = betas
    assert await betas_upstream_got(start_gateway, config, anthropic_upstream) == expected


async def test_the_operators_own_beta_header_is_always_sent(
        start_gateway: StartGateway, upstream: FakeUpstream, anthropic_upstream: FakeAnthropic,
        tmp_path: Path) -> None:
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"][1]["headers"] = {"anthropic-beta": "context-1m-2025-08-07"}
    assert await betas_upstream_got(start_gateway, config, anthropic_upstream) == [
        "context-1m-2025-08-07"]


def test_betas_are_checked_at_load(tmp_path: Path) -> None:
    config = coding_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9", tmp_path)
    config["channels"][0]["betas"] = ["claude-code-20250219"]  # an openai channel
    config["channels"][1]["betas"] = ["ok-2025-01-01", "a,b"]
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(config))
    assert [path for path, _ in caught.value.problems] == [
        "channels[0].betas", "channels[1].betas[1]"]
