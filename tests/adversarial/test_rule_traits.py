"""Rule traits are read from the field that means them in the caller's dialect: a real server
web-search tool, an image part, the reasoning setting. Look-alikes elsewhere in the body (a
tool schema's property, metadata) do not send a request to the rule's pricier target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ALICE, StartGateway
from tests.fakes import FakeUpstream
from tests.test_rules import routed_config

PNG = "iVBORw0KGgo="
HI = [{"role": "user", "content": "hi"}]
SCHEMA_DECOY = {"type": "object", "properties": {
    "kind": {"type": "web_search_preview"}, "picture": {"type": "image"}}}

CASES: list[tuple[str, str, dict[str, Any], str]] = [
    # look-alikes: the group's own target
    ("responses-schema", "/v1/responses", {"input": "hi", "tools": [
        {"type": "function", "name": "f", "parameters": SCHEMA_DECOY}]}, "main-model"),
    ("chat-metadata", "/v1/chat/completions", {"messages": HI, "metadata": {
        "x": {"type": "web_search"}, "y": {"type": "image_url"}}}, "main-model"),
    ("chat-schema", "/v1/chat/completions", {"messages": HI, "tools": [
        {"type": "function", "function": {"name": "f", "parameters": SCHEMA_DECOY}}]},
     "main-model"),
    ("messages-schema", "/v1/messages", {"messages": HI, "tools": [
        {"name": "f", "input_schema": SCHEMA_DECOY}]}, "main-model"),
    ("gemini-schema", "/v1beta/models/claude:generateContent", {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
            "type": "object", "properties": {"googleSearch": {"type": "string"},
                                             "inlineData": {"type": "string"}}}}]}]},
     "main-model"),
    ("chat-effort-not-a-string", "/v1/chat/completions",
     {"messages": HI, "reasoning_effort": []}, "main-model"),
    # the real thing: the rule's target
    ("responses-web-search", "/v1/responses",
     {"input": "news?", "tools": [{"type": "web_search_preview"}]}, "searcher"),
    ("chat-web-search", "/v1/chat/completions",
     {"messages": HI, "web_search_options": {}}, "searcher"),
    ("gemini-google-search", "/v1beta/models/claude:generateContent", {
        "contents": [{"role": "user", "parts": [{"text": "news?"}]}],
        "tools": [{"googleSearch": {}}]}, "searcher"),
    ("chat-image", "/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]},
     "vision"),
    ("responses-image", "/v1/responses", {"input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]}]}, "vision"),
    ("messages-image-in-tool-result", "/v1/messages", {"messages": [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}]}]}],
        "tools": [{"name": "shot", "input_schema": {"type": "object"}}]}, "vision"),
    ("gemini-image", "/v1beta/models/claude:generateContent", {"contents": [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}]},
     "vision"),
]


@pytest.mark.parametrize(("path", "body", "target"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
async def test_traits_come_from_the_field_that_means_them(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path, path: str,
        body: dict[str, Any], target: str) -> None:
    gateway = await start_gateway(routed_config(upstream, tmp_path))
    if not path.startswith("/v1beta"):
        body = {"model": "claude", "max_tokens": 100, **body}
    async with aiohttp.ClientSession() as http, http.post(
            gateway.url + path, json=body, headers={
                "Authorization": f"Bearer {ALICE}", "x-goog-api-key": ALICE}) as resp:
        assert resp.status == 200, await resp.text()
    assert [seen.json["model"] for seen in upstream.seen] == [target]
