"""Channel kinds: each kind's URL, auth and dialects from its own module, and one registry
that the config, the relay and `coderouter check` all read."""

from __future__ import annotations

from typing import Any

import pytest

from coderouter.channels import KINDS, Call, dialects_of, kind_of
from coderouter.config import Channel
from coderouter.dialects import hub


def call(channel: Channel, dialect: str, *, query: str = "", stream: bool = False,
         caller: tuple[tuple[str, str], ...] = ()) -> Call:
    return Call(channel=channel, dialect=dialect, caller_dialect=dialect, model="m-1",
                body={}, data=b"{}", key="sk-upstream-key", query=query, stream=stream,
                caller_headers=caller, request_id="req_1")


@pytest.mark.parametrize(("kind", "dialect", "options", "url", "auth"), [
    ("openai", "chat", {}, "http://up/chat/completions?x=1",
     ("Authorization", "Bearer sk-upstream-key")),
    ("azure", "chat", {"api_version": "2024-10-21"},
     "http://up/openai/deployments/m-1/chat/completions?x=1&api-version=2024-10-21",
     ("api-key", "sk-upstream-key")),
    ("azure", "responses", {"api_version": "2025-03-01-preview"},
     "http://up/openai/responses?x=1&api-version=2025-03-01-preview",
     ("api-key", "sk-upstream-key")),
    ("anthropic", "messages", {}, "http://up/v1/messages?x=1",
     ("x-api-key", "sk-upstream-key")),
    ("gemini", "gemini", {}, "http://up/v1beta/models/m-1:generateContent?x=1",
     ("x-goog-api-key", "sk-upstream-key")),
])
def test_each_kind_builds_its_vendors_url_and_auth(
        kind: str, dialect: str, options: dict[str, Any], url: str,
        auth: tuple[str, str]) -> None:
    """The URL keeps the caller's query (Azure replaces its api-version); the key goes in the
    header the vendor reads, and only there."""
    channel = Channel(name="c", type=kind, base_url="http://up", keys=("k",), **options)
    the_kind = kind_of(channel)
    the_call = call(channel, dialect, query="x=1&api-version=old" if kind == "azure" else "x=1")
    assert the_kind.url(the_call) == url
    headers = the_kind.headers(the_call)
    name, value = auth
    assert headers[name] == value
    assert [v for v in headers.values() if "sk-upstream-key" in v] == [value]
    assert headers["X-Request-Id"] == "req_1"


def test_gemini_streams_as_sse_and_never_forwards_a_callers_key_parameter() -> None:
    """``streamGenerateContent?alt=sse`` whatever the caller's alt; its ``key=`` stays."""
    channel = Channel(name="g", type="gemini", base_url="http://up", keys=("k",))
    the_call = call(channel, "gemini", query="key=caller-secret&alt=json&x=1", stream=True)
    assert KINDS["gemini"].url(the_call) == \
        "http://up/v1beta/models/m-1:streamGenerateContent?x=1&alt=sse"


def test_anthropic_sends_a_version_unless_the_caller_named_one() -> None:
    channel = Channel(name="a", type="anthropic", base_url="http://up", keys=("k",))
    assert KINDS["anthropic"].headers(call(channel, "messages"))["anthropic-version"] \
        == "2023-06-01"
    mine = call(channel, "messages", caller=(("anthropic-version", "2024-01-01"),))
    assert KINDS["anthropic"].headers(mine).getall("anthropic-version") == ["2024-01-01"]


def test_the_responses_setting_picks_an_openai_channels_dialects() -> None:
    """true: Chat and Responses (with its compact route); false: Chat only; only: Responses
    without Chat."""
    def dialects(responses: Any) -> tuple[str, ...]:
        return dialects_of(Channel(name="o", type="openai", base_url="http://up",
                                   keys=("k",), responses=responses))
    assert dialects(True) == ("chat", "completions", "embeddings", "responses",
                              "responses_compact")
    assert dialects(False) == ("chat", "completions", "embeddings")
    assert dialects("only") == ("embeddings", "responses", "responses_compact")
    assert dialects_of(Channel(name="a", type="anthropic")) == ("messages", "count_tokens")


async def test_the_mock_kind_answers_from_memory() -> None:
    """No pool, no key: the mock's send answers the call's body itself."""
    channel = Channel(name="m", type="mock")
    the_call = call(channel, "chat")
    the_call.body = {"model": "m-1", "messages": [{"role": "user", "content": "hi there"}]}
    response = await KINDS["mock"].send(None, the_call)  # type: ignore[arg-type]
    assert response.status == 200
    assert b"You said: hi there" in await response.read()


def test_every_kind_is_in_the_registry_under_its_type_name() -> None:
    assert sorted(KINDS) == ["anthropic", "azure", "gemini", "mock", "openai"]
    assert all(kind.name == name for name, kind in KINDS.items())


def test_a_translation_is_decoded_once_and_encoded_per_target_model() -> None:
    """One caller request crosses once: each target gets its own model, and a tool name
    shortened on the way up comes back whole in the answer."""
    bridge = hub.bridge("chat", ("messages",))
    assert bridge is not None
    name = "t" * 80  # over Anthropic's 64
    translation = bridge.translate({
        "model": "smart", "messages": [{"role": "user", "content": "go"}],
        "tools": [{"type": "function", "function": {"name": name}}]}, prompt_tokens=7)
    first, second = translation.request("claude-a"), translation.request("claude-b")
    assert (first["model"], second["model"]) == ("claude-a", "claude-b")
    assert first["tools"] == second["tools"]
    short = first["tools"][0]["name"]
    assert len(short) <= 64 and short != name
    answer = translation.response({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-b",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": short, "input": {}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 3}})
    assert answer["model"] == "smart"
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == name
