"""Sticky sessions: a conversation stays on the target and key that served it."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from coderouter.dialects.registry import DIALECTS
from coderouter.routing import Sticky
from coderouter.sessions import client_name, session_key
from tests.conftest import ALICE, MakeUpstream, Running, StartGateway
from tests.fakes import Behaviour, FakeClock, FakeUpstream

TOKENS_PER_MESSAGE = 1000


class CachingUpstream(FakeUpstream):
    """Reports a prompt of 1000 tokens per message, and as cached the longest earlier prompt
    *the same key* sent that this one extends: a provider's per-key prefix cache."""

    def __init__(self) -> None:
        super().__init__()
        self.prefixes: dict[str, set[bytes]] = {}

    def answer(self, path: str, payload: dict[str, Any], how: Behaviour) -> dict[str, Any]:
        out = super().answer(path, payload, how)
        key = self.seen[-1].headers.get("Authorization", "")
        messages = payload.get("messages") or []
        known = self.prefixes.setdefault(key, set())
        cached = max((n for n in range(1, len(messages))
                      if orjson.dumps(messages[:n]) in known), default=0)
        for n in range(1, len(messages) + 1):
            known.add(orjson.dumps(messages[:n]))
        prompt = TOKENS_PER_MESSAGE * len(messages)
        out["usage"] = {"prompt_tokens": prompt, "completion_tokens": 4,
                        "total_tokens": prompt + 4,
                        "prompt_tokens_details": {"cached_tokens": TOKENS_PER_MESSAGE * cached}}
        return out


def three_targets(upstreams: list[FakeUpstream], tmp_path: Path,
                  weights: tuple[float, ...] = (3, 2, 1), **group: Any) -> dict[str, Any]:
    return {
        "database": {"path": str(tmp_path / "usage.sqlite")},
        "channels": [{"name": f"c{i}", "type": "openai", "base_url": u.url,
                      "keys": [f"sk-up-{i}-a", f"sk-up-{i}-b"]}
                     for i, u in enumerate(upstreams)],
        "model_groups": [{"name": "smart", "targets": [
            {"channel": f"c{i}", "model": f"m{i}", "weight": w}
            for i, w in enumerate(weights)], **group}],
        "tokens": [{"name": "alice", "key": ALICE}],
    }


async def turn(http: aiohttp.ClientSession, gateway: Running, messages: list[dict[str, Any]],
               headers: dict[str, str] | None = None) -> int:
    async with http.post(gateway.url + "/v1/chat/completions",
                         json={"model": "smart", "messages": messages},
                         headers={"Authorization": f"Bearer {ALICE}", **(headers or {})}) as r:
        await r.read()
        return r.status


async def channels_of(gateway: Running, session: str) -> list[str]:
    """The channel that served each request of *session*, in the order they were made."""
    return [r["channel"] for r in await gateway.rows() if r["session"] == session]


def served_by(upstreams: list[FakeUpstream], marker: str) -> list[tuple[int, str]]:
    """(upstream index, key) of every request whose first user message is *marker*."""
    hits = []
    for i, upstream in enumerate(upstreams):
        for seen in upstream.seen:
            messages = seen.json.get("messages") or []
            if messages and messages[0]["content"] == marker:
                hits.append((i, seen.headers["Authorization"]))
    return hits


async def conversation(http: aiohttp.ClientSession, gateway: Running, marker: str, turns: int,
                       headers: dict[str, str] | None = None) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": marker}]
    for n in range(turns):
        assert await turn(http, gateway, messages, headers) == 200
        messages += [{"role": "assistant", "content": f"answer {n}"},
                     {"role": "user", "content": f"next {n}"}]


async def test_every_turn_of_a_session_reaches_one_target_and_key(
        start_gateway: StartGateway, make_upstream: MakeUpstream, tmp_path: Path) -> None:
    """50 sessions x 10 turns over 3 weighted targets with 2 keys each: one (target, key) per
    session; half name their session in a header, half are recognised by their opening."""
    upstreams = [await make_upstream() for _ in range(3)]
    gateway = await start_gateway(three_targets(upstreams, tmp_path))
    gateway.state.health.rng = random.Random(5)
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(
            conversation(http, gateway, f"session {s}", 10,
                         {"x-session-id": f"s{s}"} if s % 2 else None) for s in range(50)))
    places = {s: set(served_by(upstreams, f"session {s}")) for s in range(50)}
    assert all(len(served_by(upstreams, f"session {s}")) == 10 for s in range(50))
    assert {s: len(p) for s, p in places.items()} == {s: 1 for s in range(50)}
    targets = [next(iter(p))[0] for p in places.values()]
    assert sorted(set(targets)) == [0, 1, 2]  # new sessions still follow the weights
    assert targets.count(0) > targets.count(2)
    rows = await gateway.rows()
    assert len(rows) == 500 and {r["status"] for r in rows} == {200}
    assert {r["session"] for r in rows if r["session"].startswith("opencode:")} == {
        f"opencode:s{s}" for s in range(1, 50, 2)}
    assert len({r["session"] for r in rows if r["session"].startswith("h:")}) == 25


async def test_a_failing_target_moves_only_that_session_which_then_stays(
        start_gateway: StartGateway, make_upstream: MakeUpstream, tmp_path: Path) -> None:
    """A failure moves the session's next turn (failover) and it sticks to its new target;
    the other sessions on the failed target stay where they are."""
    upstreams = [await make_upstream() for _ in range(3)]
    gateway = await start_gateway(three_targets(upstreams, tmp_path, cooldown=0))
    gateway.state.health.rng = random.Random(3)
    async with aiohttp.ClientSession() as http:
        for s in range(12):
            assert await turn(http, gateway, [{"role": "user", "content": f"session {s}"}],
                              {"x-session-id": f"s{s}"}) == 200
        home = {s: served_by(upstreams, f"session {s}")[0][0] for s in range(12)}
        victim = next(s for s in range(12)
                      if list(home.values()).count(home[s]) > 1)
        neighbours = [s for s in range(12) if s != victim and home[s] == home[victim]]
        upstreams[home[victim]].then(status=500)
        for _ in range(3):
            assert await turn(http, gateway, [{"role": "user", "content": f"session {victim}"}],
                              {"x-session-id": f"s{victim}"}) == 200
        for s in neighbours:
            assert await turn(http, gateway, [{"role": "user", "content": f"session {s}"}],
                              {"x-session-id": f"s{s}"}) == 200
    moved = await channels_of(gateway, f"opencode:s{victim}")
    # the first turn at home; the next failed there and failed over, and it stays moved
    assert moved[0] == f"c{home[victim]}" and len(moved) == 4
    assert len(set(moved[1:])) == 1 and moved[1] != moved[0]
    assert len(served_by(upstreams, f"session {victim}")) == 5  # with the failed attempt
    for s in neighbours:
        assert {p[0] for p in served_by(upstreams, f"session {s}")} == {home[s]}


async def test_weights_apply_to_new_sessions_and_ttl_expiry_rebalances(
        start_gateway: StartGateway, make_upstream: MakeUpstream, tmp_path: Path) -> None:
    """Pinned sessions ignore a reweighting until their pin expires; then they follow it."""
    upstreams = [await make_upstream() for _ in range(3)]
    config = three_targets(upstreams, tmp_path, weights=(1, 1, 1), sticky="60s")
    gateway = await start_gateway(config)
    health = gateway.state.health
    clock = FakeClock(1000.0)
    health.clock, health.rng = clock, random.Random(11)
    async with aiohttp.ClientSession() as http:
        async def everyone() -> None:
            for s in range(20):
                assert await turn(http, gateway, [{"role": "user", "content": f"session {s}"}],
                                  {"x-session-id": f"s{s}"}) == 200
        await everyone()
        first = {s: served_by(upstreams, f"session {s}")[0] for s in range(20)}
        assert {place[0] for place in first.values()} == {0, 1, 2}
        config["model_groups"][0]["targets"][2]["weight"] = 1_000_000
        gateway.reconfigure(config)
        clock.now += 59
        await everyone()
        assert {s: set(served_by(upstreams, f"session {s}")) for s in range(20)} == {
            s: {place} for s, place in first.items()}
        clock.now += 61  # the pins, refreshed at +59, have now expired
        await everyone()
    assert {(await channels_of(gateway, f"opencode:s{s}"))[2] for s in range(20)} == {"c2"}


async def test_cache_hit_ratio_with_and_without_sticky_sessions(
        start_gateway: StartGateway, tmp_path: Path, aiohttp_server: Any) -> None:
    """A 20-turn agent session over 3 targets x 2 keys whose caches are per key: sticky,
    almost every prompt token after the first turn is a cache hit; not sticky, few are."""
    ratios = {}
    for sticky in (True, False):
        upstreams: list[FakeUpstream] = []
        for _ in range(3):
            upstream = CachingUpstream()
            server = await aiohttp_server(upstream.app)
            upstream.url = str(server.make_url("/v1"))
            upstreams.append(upstream)
        path = tmp_path / ("on" if sticky else "off")
        path.mkdir()
        gateway = await start_gateway(three_targets(upstreams, path, sticky=sticky))
        gateway.state.health.rng = random.Random(2)
        async with aiohttp.ClientSession() as http:
            await conversation(http, gateway, "refactor the parser", 20,
                               {"x-claude-code-session-id": "4f1c-session"})
        rows = await gateway.rows()
        assert len(rows) == 20
        ratios[sticky] = sum(r["cached_tokens"] for r in rows) / sum(
            r["prompt_tokens"] for r in rows)
        await gateway.stop()
    print(f"\ncache-hit ratio over a 20-turn session: sticky {ratios[True]:.3f}, "
          f"not sticky {ratios[False]:.3f}")
    assert ratios[True] > 0.9
    assert ratios[False] < 0.6


def test_the_pin_table_is_bounded() -> None:
    """100k sessions into a table of 10k: 10k kept, the least recently used dropped, and the
    memory of 100k pins is that of 10k (measured in this process)."""
    sticky = Sticky(maximum=10_000)
    tracemalloc.start()
    try:
        for n in range(10_000):
            sticky.pin("smart", f"claude:{n:036d}", ("c0", "m0"), "sk-up-0-a", 1e9)
        at_bound = tracemalloc.get_traced_memory()[0]
        for n in range(10_000, 100_000):
            sticky.pin("smart", f"claude:{n:036d}", ("c0", "m0"), "sk-up-0-a", 1e9)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(sticky) == 10_000
    assert sticky.get("smart", f"claude:{0:036d}", 0) is None
    assert sticky.get("smart", f"claude:{99_999:036d}", 0) is not None
    assert after < at_bound * 1.2


CHAT, MESSAGES, RESPONSES, GEMINI = (DIALECTS[n] for n in ("chat", "messages", "responses",
                                                            "gemini"))


def test_session_key_takes_each_agents_carrier_in_order() -> None:
    """Claude Code's header, then its metadata.user_id, Codex's headers, opencode's,
    prompt_cache_key, else a digest of the opening that every turn shares."""
    claude_json = {"user_id": '{"device_id":"d1","account_uuid":"","session_id":"9a7e-42"}'}
    claude_legacy = {"user_id": "user_ab12_account__session_5d9c-11"}
    assert session_key({"x-claude-code-session-id": "cc-1"}, {"metadata": claude_json},
                       MESSAGES) == ("claude:cc-1", False)
    assert session_key({}, {"metadata": claude_json}, MESSAGES) == ("claude:9a7e-42", False)
    assert session_key({}, {"metadata": claude_legacy}, MESSAGES) == ("claude:5d9c-11", False)
    assert session_key({"session_id": "th-1", "x-session-id": "oc"}, {}, CHAT) == (
        "codex:th-1", False)
    assert session_key({"thread-id": "th-2"}, {"prompt_cache_key": "p"}, RESPONSES) == (
        "codex:th-2", False)
    assert session_key({"x-session-affinity": "ses_1"}, {}, CHAT) == ("opencode:ses_1", False)
    assert session_key({}, {"prompt_cache_key": "019a-thread"}, RESPONSES) == (
        "pck:019a-thread", False)
    # each dialect's own carrier: a Chat body's metadata is not Claude Code's
    assert session_key({}, {"metadata": claude_json}, CHAT)[1] is True
    first = {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "fix the bug"}]}
    later = {**first, "messages": [*first["messages"], {"role": "assistant", "content": "ok"},
                                   {"role": "user", "content": "thanks"}]}
    other = {**first, "messages": [first["messages"][0], {"role": "user", "content": "else"}]}
    key, derived = session_key({}, first, CHAT)
    assert derived and key.startswith("h:") and len(key) == 34
    assert session_key({}, later, CHAT)[0] == key != session_key({}, other, CHAT)[0]
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
              "systemInstruction": {"parts": [{"text": "sys"}]}}
    assert session_key({}, gemini, GEMINI) == session_key({}, {**gemini, "contents": [
        *gemini["contents"], {"role": "model", "parts": [{"text": "yo"}]}]}, GEMINI)
    long_id = "x" * 500
    assert session_key({"x-session-id": long_id}, {}, CHAT)[0] == "opencode:" + \
        session_key({"x-session-id": long_id}, {}, CHAT)[0].split(":", 1)[1]
    assert len(session_key({"x-session-id": long_id}, {}, CHAT)[0]) == len("opencode:") + 32


def test_client_names_from_user_agents() -> None:
    """The agents' and SDKs' User-Agents map to short names; others to their first token."""
    assert client_name("claude-cli/2.1.332 (external, cli)") == "claude-code"
    assert client_name("codex_cli_rs/0.171.0 (Debian 12; x86_64) xterm") == "codex"
    assert client_name("GeminiCLI/0.61.0/gemini-2.5-pro (linux; x64)") == "gemini-cli"
    assert client_name("opencode/1.18.33 ai-sdk/provider-utils/3.0") == "opencode"
    assert client_name("QwenCode/0.24.4 (linux; x64)") == "qwen-code"
    assert client_name("OpenAI/Python 1.99.0") == "openai-python"
    assert client_name("Anthropic/Python 0.60.0") == "anthropic-python"
    assert client_name("curl/8.5.0") == "curl"
    assert client_name(None) is None
