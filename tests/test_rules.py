"""Routing by what a request needs: rules, aliases, context fit and context-window failover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from coderouter.config import ConfigError, parse
from tests.conftest import ALICE, Running, StartGateway
from tests.fakes import FakeUpstream

LONG_TEXT = "word " * 2000  # about 2,500 estimated tokens


def routed_config(upstream: FakeUpstream, tmp_path: Path) -> dict[str, Any]:
    def to(model: str, **extra: Any) -> list[dict[str, Any]]:
        return [{"channel": "up", "model": model, **extra}]
    return {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [{"name": "up", "type": "openai", "base_url": upstream.url,
                      "keys": ["sk-up"]}],
        "model_groups": [{
            "name": "claude", "aliases": ["claude-*"], "targets": to("main-model"),
            "rules": [
                {"name": "background", "when": {"background": True}, "targets": to("cheap")},
                {"name": "long", "when": {"prompt_tokens_over": 2000}, "targets": to("long")},
                {"when": {"reasoning": True}, "targets": to("thinker")},
                {"name": "vision", "when": {"images": True}, "targets": to("vision")},
                {"name": "search", "when": {"web_search": True}, "targets": to("searcher")},
                {"name": "codex-tools", "when": {"tools": True, "clients": ["codex"]},
                 "targets": to("tooler")},
            ]}],
        "tokens": [{"name": "alice", "key": ALICE}],
    }


async def messages(gateway: Running, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1/messages", json={"max_tokens": 100, **body},
            headers={"x-api-key": ALICE, **(headers or {})}) as resp:
        await resp.read()
        return resp.status


async def chat(gateway: Running, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + "/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {ALICE}", **(headers or {})}) as resp:
        return resp.status, await resp.read()


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


async def test_each_rule_kind_picks_its_targets_and_is_recorded(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Background, long context, thinking, images, web search and client+tools each reach
    their rule's targets; a plain request the group's own; the row names the rule."""
    gateway = await start_gateway(routed_config(upstream, tmp_path))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}}
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    assert await messages(gateway, {"model": "claude-haiku-4-5", "messages": user("title?")}) \
        == 200
    assert await messages(gateway, {"model": "claude-sonnet-4-5",
                                    "messages": user(LONG_TEXT)}) == 200
    assert await messages(gateway, {"model": "claude-sonnet-4-5", "messages": user("hm"),
                                    "thinking": {"type": "adaptive"}}) == 200
    assert await messages(gateway, {"model": "claude-opus-4-1", "messages": user(
        [{"type": "text", "text": "what is this?"}, image])}) == 200
    assert await messages(gateway, {"model": "claude", "messages": user("news?"),
                                    "tools": [search]}) == 200
    tool = {"type": "function", "function": {"name": "shell", "parameters": {
        "type": "object", "properties": {"cmd": {"type": ["string", "null"]}}}}}
    assert (await chat(gateway, {"model": "claude", "messages": user("ls"), "tools": [tool]},
                       {"User-Agent": "codex_cli_rs/0.171.0"}))[0] == 200
    assert (await chat(gateway, {"model": "claude", "messages": user("ls"), "tools": [tool]},
                       {"User-Agent": "opencode/1.18.33"}))[0] == 200
    assert await messages(gateway, {"model": "claude-sonnet-4-5", "messages": user("hi")}) \
        == 200
    assert [seen.json["model"] for seen in upstream.seen] == [
        "cheap", "long", "thinker", "vision", "searcher", "tooler", "main-model", "main-model"]
    rows = await gateway.rows()
    assert [(r["model"], r["rule"], r["upstream_model"], r["status"]) for r in rows] == [
        ("claude-haiku-4-5", "background", "cheap", 200),
        ("claude-sonnet-4-5", "long", "long", 200),
        ("claude-sonnet-4-5", "rules[2]", "thinker", 200),
        ("claude-opus-4-1", "vision", "vision", 200),
        ("claude", "search", "searcher", 200),
        ("claude", "codex-tools", "tooler", 200),
        ("claude", None, "main-model", 200),
        ("claude-sonnet-4-5", None, "main-model", 200)]
    assert [r["client"] for r in rows][5:7] == ["codex", "opencode"]


async def test_aliases_route_but_exact_names_and_allow_lists_still_rule(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A name matching no group and no alias is 404; /v1/models lists group names only."""
    gateway = await start_gateway(routed_config(upstream, tmp_path))
    status, body = await chat(gateway, {"model": "gpt-4o", "messages": user("hi")})
    assert status == 404 and orjson.loads(body)["error"]["code"] == "model_not_found"


def fit_config(upstream: FakeUpstream, tmp_path: Path) -> dict[str, Any]:
    return {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [{"name": "up", "type": "openai", "base_url": upstream.url,
                      "keys": ["sk-up"]}],
        "model_groups": [{"name": "smart", "targets": [
            {"channel": "up", "model": "small", "max_context": 2000, "max_output": 4096},
            {"channel": "up", "model": "big", "priority": 1, "max_context": 200_000}]}],
        "tokens": [{"name": "alice", "key": ALICE}],
    }


async def test_a_request_that_does_not_fit_skips_the_target(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Over max_context or max_output, the small target is not even tried; under, it is."""
    gateway = await start_gateway(fit_config(upstream, tmp_path))
    assert (await chat(gateway, {"model": "smart", "messages": user(LONG_TEXT)}))[0] == 200
    assert (await chat(gateway, {"model": "smart", "messages": user("hi"),
                                 "max_tokens": 8000}))[0] == 200
    assert (await chat(gateway, {"model": "smart", "messages": user("hello")}))[0] == 200
    assert [seen.json["model"] for seen in upstream.seen] == ["big", "big", "small"]
    assert [r["attempts"] for r in await gateway.rows()] == [1, 1, 1]


async def test_a_request_that_fits_no_target_is_refused(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    config = fit_config(upstream, tmp_path)
    config["model_groups"][0]["targets"][1]["max_context"] = 1000
    gateway = await start_gateway(config)
    status, body = await chat(gateway, {"model": "smart", "messages": user(LONG_TEXT)})
    assert status == 400 and upstream.seen == []
    assert orjson.loads(body)["error"]["message"].startswith(
        "the request (about ") and "fits no target of 'smart' (the largest context is 2000)" \
        in orjson.loads(body)["error"]["message"]


CONTEXT_ERRORS = [
    b'{"error": {"message": "This model\'s maximum context length is 8192 tokens. However, '
    b'your messages resulted in 9000 tokens.", "type": "invalid_request_error", '
    b'"code": "context_length_exceeded"}}',
    b'{"type": "error", "error": {"type": "invalid_request_error", '
    b'"message": "prompt is too long: 210000 tokens > 200000 maximum"}}',
    b'{"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum '
    b'number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}',
]


@pytest.mark.parametrize("refusal", CONTEXT_ERRORS)
async def test_context_length_refusal_fails_over_to_a_larger_context(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        refusal: bytes) -> None:
    """OpenAI's, Anthropic's and Gemini's wording all move the request to the target with
    the larger max_context, where its session then stays; the refusing target is not cooled
    (another session's request tries it)."""
    gateway = await start_gateway(fit_config(upstream, tmp_path))
    upstream.then(status=400, body=refusal)
    assert (await chat(gateway, {"model": "smart", "messages": user("hi")}))[0] == 200
    assert (await chat(gateway, {"model": "smart", "messages": user("hi")}))[0] == 200
    assert (await chat(gateway, {"model": "smart", "messages": user("other")}))[0] == 200
    assert [seen.json["model"] for seen in upstream.seen] == ["small", "big", "big", "small"]
    rows = await gateway.rows()
    assert [(r["status"], r["attempts"], r["upstream_model"]) for r in rows] == [
        (200, 2, "big"), (200, 1, "big"), (200, 1, "small")]


async def test_context_refusal_without_a_larger_target_is_the_callers_error(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """No larger max_context to go to: the upstream's own 400 reaches the caller unchanged."""
    config = fit_config(upstream, tmp_path)
    del config["model_groups"][0]["targets"][1]["max_context"]
    config["model_groups"][0]["targets"][0]["max_context"] = 300_000
    gateway = await start_gateway(config)
    upstream.then(status=400, body=CONTEXT_ERRORS[0])
    status, body = await chat(gateway, {"model": "smart", "messages": user("hi")})
    assert (status, body) == (400, CONTEXT_ERRORS[0])
    assert [seen.json["model"] for seen in upstream.seen] == ["small"]
    row = (await gateway.rows())[0]
    assert (row["status"], row["attempts"]) == (400, 1)


async def test_an_ordinary_400_does_not_fail_over(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = await start_gateway(fit_config(upstream, tmp_path))
    upstream.then(status=400, body=b'{"error": {"message": "temperature must be <= 2"}}')
    assert (await chat(gateway, {"model": "smart", "messages": user("hi")}))[0] == 400
    assert [seen.json["model"] for seen in upstream.seen] == ["small"]


def test_rule_errors_name_their_path() -> None:
    """check: unknown conditions, empty or meaningless ones, unknown channels, each by path."""
    text = """
channels: [{name: up, type: mock}]
model_groups:
  - name: g
    targets: [{channel: up, model: m}]
    rules:
      - {when: {prompt_tokens_ovr: 5}, targets: [{channel: up, model: m}]}
      - {when: {}, targets: [{channel: up, model: m}]}
      - {when: {background: false}, targets: [{channel: up, model: m}]}
      - {when: {tools: yes-please}, targets: [{channel: upp, model: m}]}
      - {when: {images: true}, targets: []}
      - {when: {clients: [codex]}, targets: [{channel: up, model: m, max_context: 0}]}
"""
    with pytest.raises(ConfigError) as caught:
        parse(text, {})
    problems = dict(caught.value.problems)
    assert problems["model_groups[0].rules[0].when.prompt_tokens_ovr"].startswith(
        "unknown key 'prompt_tokens_ovr'; did you mean 'prompt_tokens_over'?")
    assert problems["model_groups[0].rules[1].when"].startswith(
        "needs at least one condition")
    assert "only 'background: true'" in problems["model_groups[0].rules[2].when.background"]
    assert problems["model_groups[0].rules[3].when.tools"] == \
        "expected true or false, got str 'yes-please'"
    assert problems["model_groups[0].rules[3].targets[0].channel"].startswith(
        "no channel named 'upp'")
    assert problems["model_groups[0].rules[4].targets"] == "needs at least one target"
    assert problems["model_groups[0].rules[5].targets[0].max_context"] == \
        "must be at least 1, got 0"
