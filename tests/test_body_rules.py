"""A channel's ``body_rules`` drop or set fields of every upstream body, pass-through and
translated, against a fake Anthropic-compatible upstream that refuses unknown fields as
DeepSeek, Kimi, GLM and MiniMax do ("Extra inputs are not permitted")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from coderouter.config import parse
from coderouter.errors import ConfigError
from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway, coding_config
from tests.fake_anthropic import WEATHER_TOOL, FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fakes import FakeUpstream

#: What the newest Claude Code sends beside the Messages API's own fields.
CLAUDE_CODE = {
    "model": "claude", "max_tokens": 1024, "stream": True,
    "system": [{"type": "text", "text": "You are Claude Code."}],
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "tools": [{**WEATHER_TOOL, "defer_loading": False}],
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
    "output_config": {"effort": "high"},
}
DROPS = [{"drop": "context_management"}, {"drop": "output_config"},
         {"drop": "tools.*.defer_loading"}]


async def post(gateway: Running, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {ALICE}"}) as resp:
        return resp.status, await resp.read()


def with_rules(config: dict[str, Any], channel: str, rules: list[dict[str, Any]]) -> None:
    next(c for c in config["channels"] if c["name"] == channel)["body_rules"] = rules


async def test_a_strict_upstream_refuses_claude_codes_fields_without_rules(
        start_gateway: StartGateway, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic, tmp_path: Path) -> None:
    """The failure the rules are for: the refusal reaches Claude Code as the upstream said it."""
    anthropic_upstream.strict = True
    gateway = await start_gateway(coding_config(upstream.url, anthropic_upstream.url, tmp_path))
    status, body = await post(gateway, "/v1/messages", CLAUDE_CODE)
    assert status == 400
    assert orjson.loads(body)["error"]["message"] == \
        "context_management: Extra inputs are not permitted"


@pytest.mark.parametrize("stream", [True, False])
async def test_drop_rules_make_a_pass_through_acceptable(
        start_gateway: StartGateway, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic, tmp_path: Path, stream: bool) -> None:
    anthropic_upstream.strict = True
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    with_rules(config, "claude", DROPS)
    gateway = await start_gateway(config)
    status, body = await post(gateway, "/v1/messages", {**CLAUDE_CODE, "stream": stream})
    assert status == 200, body
    [seen] = anthropic_upstream.seen
    expected = {k: v for k, v in CLAUDE_CODE.items()
                if k not in ("context_management", "output_config")}
    assert seen.body == orjson.dumps({**expected, "model": "claude-upstream", "stream": stream,
                                      "tools": [WEATHER_TOOL]})
    [row] = await gateway.rows()
    assert (row["status"], row["channel"]) == (200, "claude")


async def test_set_rules_reach_translated_bodies(
        start_gateway: StartGateway, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic, tmp_path: Path) -> None:
    """A Chat and a Responses caller on an Anthropic channel: the rules edit what the
    translation built, creating the mappings a path needs."""
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    with_rules(config, "claude", [{"set": "thinking", "value": {"type": "disabled"}},
                                  {"set": "metadata.user_id", "value": "team-a"},
                                  {"drop": "temperature"}])
    gateway = await start_gateway(config)
    chat = {"model": "claude", "temperature": 0.2,
            "messages": [{"role": "user", "content": "Hi"}]}
    responses = {"model": "claude", "input": "Hi", "temperature": 0.2}
    assert (await post(gateway, "/v1/chat/completions", chat))[0] == 200
    assert (await post(gateway, "/v1/responses", responses))[0] == 200
    for seen in anthropic_upstream.seen:
        sent = seen.json
        assert sent["thinking"] == {"type": "disabled"}
        assert sent["metadata"] == {"user_id": "team-a"}
        assert "temperature" not in sent
        assert sent["messages"] == [{"role": "user", "content": "Hi"}] or \
            sent["messages"][0]["content"][0]["text"] == "Hi"


async def test_rules_apply_to_a_gemini_pass_through(
        start_gateway: StartGateway, upstream: FakeUpstream, aiohttp_server: Any,
        anthropic_upstream: FakeAnthropic, tmp_path: Path) -> None:
    """A Gemini body that goes as it came is re-encoded only when the channel has rules."""
    gemini = FakeGemini()
    gemini_url = str((await aiohttp_server(gemini.app)).make_url("")).rstrip("/")
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"].append({"name": "google", "type": "gemini", "base_url": gemini_url,
                               "keys": [UPSTREAM_KEY], "body_rules": [
                                   {"set": "generationConfig.temperature", "value": 0},
                                   {"drop": "labels"}]})
    config["model_groups"].append(
        {"name": "gem", "targets": [{"channel": "google", "model": "gemini-2.5-flash"}]})
    gateway = await start_gateway(config)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "generationConfig": {"maxOutputTokens": 64}, "labels": {"team": "a"}}
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1beta/models/gem:generateContent", data=orjson.dumps(body),
            headers={"x-goog-api-key": ALICE}) as resp:
        assert resp.status == 200, await resp.read()
    assert gemini.last.body == orjson.dumps({
        "contents": body["contents"],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0}})


async def test_a_failover_sends_the_next_channel_the_callers_body(
        start_gateway: StartGateway, upstream: FakeUpstream,
        anthropic_upstream: FakeAnthropic, tmp_path: Path) -> None:
    """One channel's rules never leak into the body another channel is sent."""
    config = coding_config(upstream.url, anthropic_upstream.url, tmp_path)
    config["channels"].append({"name": "native", "type": "anthropic",
                               "base_url": anthropic_upstream.url, "keys": [UPSTREAM_KEY]})
    with_rules(config, "claude", DROPS)
    group = next(g for g in config["model_groups"] if g["name"] == "claude")
    group["targets"] = [{"channel": "claude", "model": "compatible", "priority": 0},
                        {"channel": "native", "model": "claude-native", "priority": 1}]
    gateway = await start_gateway(config)
    anthropic_upstream.then(status=529)
    status, _ = await post(gateway, "/v1/messages", {**CLAUDE_CODE, "stream": False})
    assert status == 200
    first, second = anthropic_upstream.seen
    assert "context_management" not in first.json
    assert second.body == orjson.dumps({**CLAUDE_CODE, "model": "claude-native",
                                        "stream": False})


def channel_problems(rules: Any) -> dict[str, str]:
    config = {"channels": [{"name": "c", "type": "mock", "body_rules": rules}],
              "model_groups": [{"name": "g", "targets": [{"channel": "c", "model": "m"}]}]}
    with pytest.raises(ConfigError) as caught:
        parse(yaml.safe_dump(config), environ={})
    return dict(caught.value.problems)


def test_config_names_what_is_wrong_with_a_rule() -> None:
    assert channel_problems([{"drop": "a", "set": "b", "value": 1}]) == {
        "channels[0].body_rules[0]": "needs exactly one of drop or set"}
    assert channel_problems([{"set": "thinking"}]) == {
        "channels[0].body_rules[0].value": "required with set (the field's new value)"}
    assert channel_problems([{"drop": "thinking", "value": 1}]) == {
        "channels[0].body_rules[0].value": "only with set"}
    assert channel_problems([{"drop": "tools.*"}]) == {
        "channels[0].body_rules[0].drop": "must end with a field name, not *"}
    assert list(channel_problems([{"drop": "tools..x"}])) == ["channels[0].body_rules[0].drop"]
    assert channel_problems({"drop": "x"}) == {
        "channels[0].body_rules": "expected a list, got a mapping"}
