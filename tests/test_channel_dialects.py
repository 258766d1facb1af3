"""Which APIs a channel's upstream serves: ``responses:`` on openai/azure channels, its
default by base URL, what `coderouter check` says about it, and /v1/responses on a chat-only
channel translated instead of sent to a 404."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from coderouter.channels import dialects_of
from coderouter.config import parse
from tests.conftest import ALICE, StartGateway, base_config
from tests.fakes import WORDS, FakeUpstream

ROOT = Path(__file__).resolve().parent.parent


def channel_config(channel: dict[str, Any]) -> str:
    return yaml.safe_dump({"channels": [channel], "model_groups": [
        {"name": "g", "targets": [{"channel": channel["name"], "model": "m"}]}]})


@pytest.mark.parametrize(("channel", "responses"), [
    ({"type": "openai", "base_url": "https://api.openai.com/v1"}, True),
    ({"type": "openai", "base_url": "https://API.OpenAI.com:443/v1"}, True),
    ({"type": "openai", "base_url": "https://api.deepseek.com/v1"}, False),
    ({"type": "openai", "base_url": "http://127.0.0.1:11434/v1"}, False),
    ({"type": "openai", "base_url": "https://api.deepseek.com/v1", "responses": True}, True),
    ({"type": "openai", "base_url": "https://api.openai.com/v1", "responses": False}, False),
    ({"type": "azure", "base_url": "https://r.openai.azure.com", "api_version": "v"}, True),
])
def test_responses_default_follows_the_base_url(channel: dict[str, Any],
                                                responses: bool) -> None:
    """OpenAI's own API and Azure have the Responses API; other servers do not unless said."""
    config = parse(channel_config({"name": "c", "keys": ["k"], **channel}))
    [parsed] = config.channels
    assert parsed.responses is responses
    assert ("responses" in dialects_of(parsed)) is responses
    assert "chat" in dialects_of(parsed)


def test_responses_is_refused_on_other_channel_types() -> None:
    with pytest.raises(Exception, match=r"channels\[0\]\.responses: only for openai and azure"):
        parse(channel_config({"name": "c", "type": "anthropic", "base_url": "https://a",
                              "keys": ["k"], "responses": True}))


def test_responses_only_drops_chat() -> None:
    """``responses: only``: the upstream has the Responses API and no Chat Completions, so
    Chat, Messages and Gemini callers are bridged to Responses."""
    config = parse(channel_config({"name": "c", "type": "openai", "keys": ["k"],
                                   "base_url": "https://api.openai.com/v1",
                                   "responses": "only"}))
    [parsed] = config.channels
    assert parsed.responses == "only"
    assert dialects_of(parsed) == ("embeddings", "responses", "responses_compact")
    with pytest.raises(Exception, match=r"channels\[0\]\.responses: expected true, false or "
                                        r"only, got str"):
        parse(channel_config({"name": "c", "type": "openai", "base_url": "https://a",
                              "keys": ["k"], "responses": "yes"}))


def test_check_explains_each_openai_channel(tmp_path: Path) -> None:
    """`coderouter check` says, per openai channel, whether /v1/responses passes or is
    translated, and whether that was set or the base URL's default."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "channels": [
            {"name": "oai", "type": "openai", "base_url": "https://api.openai.com/v1",
             "keys": ["k"]},
            {"name": "ds", "type": "openai", "base_url": "https://api.deepseek.com/v1",
             "keys": ["k"]},
            {"name": "vllm", "type": "openai", "base_url": "http://10.0.0.2:8000/v1",
             "keys": ["k"], "responses": True}],
        "model_groups": [{"name": "g", "targets": [{"channel": "ds", "model": "m"}]}]}))
    done = subprocess.run([sys.executable, "-m", "coderouter", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "  channel 'oai': Chat Completions and Responses API (responses: true, default for "
        "this base_url); /v1/responses passes through",
        "  channel 'ds': Chat Completions only (responses: false, default for this "
        "base_url); /v1/responses is translated to Chat Completions",
        "  channel 'vllm': Chat Completions and Responses API (responses: true, set); "
        "/v1/responses passes through"]


async def test_responses_on_a_chat_only_channel_is_translated(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Codex's API on a chat-only channel reaches the upstream as Chat Completions, and the
    answer comes back as a Responses object; with responses: true it passes through."""
    config = base_config(upstream.url, tmp_path)
    config["channels"][0]["responses"] = False
    gateway = await start_gateway(config)
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE,
                                  max_retries=0) as client:
        answer = await client.responses.create(model="smart", input="Hello",
                                               instructions="Be brief.")
        gateway.reconfigure({**config, "channels": [{**config["channels"][0],
                                                     "responses": True}]})
        native = await client.responses.create(model="smart", input="Hello")
    assert [s.path for s in upstream.seen] == ["/v1/chat/completions", "/v1/responses"]
    assert upstream.seen[0].json["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert answer.output_text == native.output_text == "".join(WORDS)
    rows = await gateway.rows()
    assert [(r["endpoint"], r["status"], r["prompt_tokens"], r["completion_tokens"])
            for r in rows] == [("/v1/responses", 200, 11, 4)] * 2
