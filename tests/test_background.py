"""Agents' background calls (Claude Code's small/fast model, title generators) are marked in
the usage row and counted apart in every `coderouter usage` grouping and the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import ALICE, StartGateway, coding_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeUpstream
from tests.test_usage_report import coderouter_usage

TITLE = "You are a title generator. You output ONLY a thread title. Nothing else."


async def post(gateway_url: str, path: str, body: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            gateway_url + path, data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {ALICE}", "x-session-id": "s1",
                     "anthropic-version": "2023-06-01"}) as resp:
        await resp.read()
        return resp.status


async def test_background_calls_are_marked_and_their_cost_shown_per_session(
        start_gateway: StartGateway, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic, tmp_path: Path) -> None:
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["model_groups"][1]["aliases"] = ["claude-*"]
    gateway = await start_gateway(config)
    hello = [{"role": "user", "content": "Hello"}]
    assert await post(gateway.url, "/v1/messages", {
        "model": "claude-3-5-haiku-20241022", "max_tokens": 64, "messages": hello}) == 200
    assert await post(gateway.url, "/v1/messages", {
        "model": "claude", "max_tokens": 64, "messages": hello,
        "system": [{"type": "text", "text": "You are Claude Code."}]}) == 200
    assert await post(gateway.url, "/v1/chat/completions", {
        "model": "smart", "messages": [{"role": "system", "content": TITLE}, *hello]}) == 200
    assert await post(gateway.url, "/v1/chat/completions", {
        "model": "smart", "messages": hello}) == 200
    rows = await gateway.rows()
    assert [(r["model"], r["background"]) for r in rows] == [
        ("claude-3-5-haiku-20241022", 1), ("claude", 0), ("smart", 1), ("smart", 0)]
    await gateway.stop()

    [session] = orjson.loads(coderouter_usage(gateway.config_path, "--by", "session",
                                              "--json"))
    assert session["session"] is not None and session["requests"] == 4
    assert session["background_requests"] == 2
    assert session["background_cost"] == round(rows[0]["cost"] + rows[2]["cost"], 6)
    assert 0 < session["background_cost"] < session["cost"]
