"""Azure OpenAI channels: deployment URLs, the api-version query and the api-key header, as the
Azure OpenAI REST reference (and the openai SDK's AzureOpenAI client) send them."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import ALICE, UPSTREAM_KEY, Running, StartGateway, base_config
from tests.fakes import WORDS, FakeUpstream

API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o-prod"


@pytest.fixture
async def azure_gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                        tmp_path: Path) -> Running:
    config = base_config(upstream.url, tmp_path)
    config["channels"] = [{"name": "az", "type": "azure",
                           "base_url": upstream.url.removesuffix("/v1") + "/",
                           "api_version": API_VERSION, "keys": [UPSTREAM_KEY]}]
    config["model_groups"] = [{"name": "smart", "targets": [
        {"channel": "az", "model": DEPLOYMENT}]}]
    return await start_gateway(config)


def sdk(gateway: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0)


async def test_deployment_urls_api_version_and_api_key(azure_gateway: Running,
                                                       upstream: FakeUpstream) -> None:
    """Chat, completions and embeddings go to /openai/deployments/{model}/...; Responses to
    /openai/responses with the deployment as the body's model; api-key, no Authorization."""
    async with sdk(azure_gateway) as client:
        reply = await client.chat.completions.create(model="smart", messages=[])
        stream = await client.chat.completions.create(model="smart", messages=[], stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream
                            if c.choices])
        await client.completions.create(model="smart", prompt="x")
        await client.embeddings.create(model="smart", input="x")
        response = await client.responses.create(model="smart", input="x")
    assert reply.choices[0].message.content == streamed == response.output_text == "".join(WORDS)
    deployment = f"/openai/deployments/{DEPLOYMENT}"
    assert [(s.path, s.query) for s in upstream.seen] == [
        (f"{deployment}/chat/completions", f"api-version={API_VERSION}"),
        (f"{deployment}/chat/completions", f"api-version={API_VERSION}"),
        (f"{deployment}/completions", f"api-version={API_VERSION}"),
        (f"{deployment}/embeddings", f"api-version={API_VERSION}"),
        ("/openai/responses", f"api-version={API_VERSION}")]
    for seen in upstream.seen:
        assert seen.headers["api-key"] == UPSTREAM_KEY
        assert "Authorization" not in seen.headers
        assert seen.json["model"] == DEPLOYMENT
    rows = await azure_gateway.rows()
    assert [(r["channel"], r["upstream_model"], r["status"]) for r in rows] == [
        ("az", DEPLOYMENT, 200)] * 5


async def test_caller_query_is_kept_and_api_version_is_the_channels(
        azure_gateway: Running, upstream: FakeUpstream) -> None:
    """A caller's query parameters pass; its api-version is replaced by the channel's."""
    async with aiohttp.ClientSession() as http, http.post(
            azure_gateway.url + "/v1/chat/completions?trace=1&api-version=1999-01-01",
            json={"model": "smart", "messages": []},
            headers={"Authorization": f"Bearer {ALICE}"}) as resp:
        assert resp.status == 200
    assert upstream.seen[0].query == f"trace=1&api-version={API_VERSION}"


async def test_messages_on_azure_via_translation(azure_gateway: Running,
                                                 upstream: FakeUpstream) -> None:
    """Claude Code on an Azure deployment: Messages translated to chat on the deployment URL."""
    async with anthropic.AsyncAnthropic(base_url=azure_gateway.url, auth_token=ALICE,
                                        max_retries=0) as client:
        message = await client.messages.create(
            model="smart", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
            extra_query={"beta": "true"})
    assert message.content[0].type == "text" and message.content[0].text == "".join(WORDS)
    [seen] = upstream.seen
    assert (seen.path, seen.query, seen.headers["api-key"]) == (
        f"/openai/deployments/{DEPLOYMENT}/chat/completions", f"api-version={API_VERSION}",
        UPSTREAM_KEY)
    assert seen.json == {"model": DEPLOYMENT, "max_tokens": 100,
                         "messages": [{"role": "user", "content": "hi"}]}
