"""The Gemini API routes and the gemini channel: google-genai as the client, a fake Gemini
upstream, the real gateway between them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from coderouter.config import ConfigError, parse
from tests.conftest import ALICE, BOB, UPSTREAM_KEY, Running, StartGateway, base_config
from tests.fake_gemini import (
    CALL,
    COUNTED,
    ROW_USAGE,
    SIGNATURE,
    TEXT,
    USAGE,
    FakeGemini,
    chunk,
    dumps,
    sse,
)
from tests.fake_gemini import (
    error as google_error,
)
from tests.fakes import FakeUpstream

UPSTREAM_MODEL = "gemini-2.5-flash"

@pytest.fixture
async def gemini_upstream(aiohttp_server: Any) -> FakeGemini:
    fake = FakeGemini()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


def gemini_config(gemini_url: str, upstream_url: str, tmp_path: Path) -> dict[str, Any]:
    """`base_config` plus a gemini channel and its group `gem`."""
    config = base_config(upstream_url, tmp_path)
    config["channels"].append({"name": "google", "type": "gemini", "base_url": gemini_url,
                               "keys": [UPSTREAM_KEY]})
    config["model_groups"].append(
        {"name": "gem", "targets": [{"channel": "google", "model": UPSTREAM_MODEL}],
         "price": {"input": 1.0, "output": 2.0, "cached_input": 0.5}})
    return config


@pytest.fixture
async def gw(start_gateway: StartGateway, gemini_upstream: FakeGemini, upstream: FakeUpstream,
             tmp_path: Path) -> Running:
    return await start_gateway(gemini_config(gemini_upstream.url, upstream.url, tmp_path))


def client(gateway: Running, key: str = ALICE, version: str = "v1beta") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gateway.url, api_version=version,
        retry_options=types.HttpRetryOptions(attempts=1)))


REQUEST = {
    "contents": [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}],
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "tools": [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather of a place",
        "parametersJsonSchema": {"type": "object",
                                 "properties": {"location": {"type": "string"}}}}]}],
    "generationConfig": {"temperature": 1, "thinkingConfig": {"includeThoughts": True}},
}
# As a client may write it: spaces and key order that re-serialising would change.
REQUEST_BYTES = b'{ "contents" : ' + orjson.dumps(REQUEST["contents"]) + b',\n "tools": ' + \
    orjson.dumps(REQUEST["tools"]) + b', "generationConfig": ' + \
    orjson.dumps(REQUEST["generationConfig"]) + b'}'


class TestPassThrough:
    async def test_generate_content_bytes_untouched(self, gw: Running,
                                                    gemini_upstream: FakeGemini) -> None:
        """The caller's bytes reach Google as they were, the answer comes back as Google
        wrote it; only the model in the path and the key change."""
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1beta/models/gem:generateContent",
                                   data=REQUEST_BYTES,
                                   headers={"x-goog-api-key": ALICE,
                                            "Content-Type": "application/json"})
            body = await resp.read()
        seen = gemini_upstream.last
        assert resp.status == 200
        assert seen.body == REQUEST_BYTES
        assert (seen.path, seen.query) == (f"/v1beta/models/{UPSTREAM_MODEL}:generateContent",
                                           "")
        assert seen.headers["x-goog-api-key"] == UPSTREAM_KEY
        assert ALICE not in str(dict(seen.headers))
        assert body == dumps(chunk([{"text": "The user wants the weather; call the tool.",
                                     "thought": True},
                                    {"functionCall": CALL, "thoughtSignature": SIGNATURE}],
                                   finish="STOP", usage=USAGE))
        [row] = await gw.rows()
        assert {k: row[k] for k in ROW_USAGE} == ROW_USAGE
        assert (row["endpoint"], row["model"], row["channel"], row["upstream_model"],
                row["status"], row["stream"]) == (
            "/v1beta/models/gem:generateContent", "gem", "google", UPSTREAM_MODEL, 200, 0)
        assert row["cost"] == pytest.approx((20 * 1.0 + 10 * 0.5 + 27 * 2.0) / 1e6)

    async def test_stream_with_key_in_query(self, gw: Running,
                                            gemini_upstream: FakeGemini) -> None:
        """``?key=`` authenticates and is neither forwarded nor stored."""
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                f"{gw.url}/v1beta/models/gem:streamGenerateContent?alt=sse&key={ALICE}",
                data=b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}')
            body = await resp.read()
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        seen = gemini_upstream.last
        assert (seen.path, seen.query) == (
            f"/v1beta/models/{UPSTREAM_MODEL}:streamGenerateContent", "alt=sse")
        assert body == b"".join(sse(chunk([{"text": w}])) for w in TEXT[:-1]) + sse(
            chunk([{"text": TEXT[-1]}], finish="STOP", usage=USAGE))
        [row] = await gw.rows()
        assert {k: row[k] for k in ROW_USAGE} == ROW_USAGE
        assert (row["stream"], row["status"]) == (1, 200)
        assert ALICE not in str(row)

    @pytest.mark.parametrize("version", ["v1beta", "v1"])
    async def test_google_genai_sdk(self, gw: Running, gemini_upstream: FakeGemini,
                                    version: str) -> None:
        """Google's own SDK, pointed at the gateway: generate, stream, count, list; under
        v1beta (the Gemini CLI's) and v1 (google-genai's default)."""
        sdk = client(gw, version=version).aio
        answer = await sdk.models.generate_content(
            model="gem", contents="What is the weather in Paris?",
            config=types.GenerateContentConfig(
                tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                    name="get_weather", description="Weather",
                    parameters_json_schema={"type": "object"})])],
                thinking_config=types.ThinkingConfig(include_thoughts=True)))
        assert answer.function_calls is not None
        assert answer.function_calls[0].args == {"location": "Paris"}
        assert answer.usage_metadata is not None
        assert answer.usage_metadata.thoughts_token_count == 20
        assert gemini_upstream.last.headers["x-goog-api-key"] == UPSTREAM_KEY

        texts = [c.text async for c in await sdk.models.generate_content_stream(
            model="gem", contents="hi")]
        assert texts == TEXT
        assert gemini_upstream.last.query == "alt=sse"

        counted = await sdk.models.count_tokens(model="gem", contents="hi")
        assert counted.total_tokens == COUNTED
        assert gemini_upstream.last.path == f"/v1beta/models/{UPSTREAM_MODEL}:countTokens"

        names = [m.name async for m in await sdk.models.list()]
        assert names == ["models/gem", "models/smart"]
        model = await sdk.models.get(model="gem")
        assert model.name == "models/gem"

        rows = await gw.rows()
        assert [(r["endpoint"], r["status"]) for r in rows] == [
            (f"/{version}/models/gem:generateContent", 200),
            (f"/{version}/models/gem:streamGenerateContent", 200),
            (f"/{version}/models/gem:countTokens", 200)]
        assert (rows[2]["total_tokens"], rows[2]["usage_source"]) == (0, "upstream")


class TestCountTokens:
    async def test_estimated_where_the_channel_has_no_count(self, gw: Running,
                                                            upstream: FakeUpstream) -> None:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1beta/models/smart:countTokens",
                                   headers={"x-goog-api-key": ALICE},
                                   json={"contents": [{"parts": [{"text": "x" * 40}]}]})
            assert resp.status == 200
            assert await resp.json() == {"totalTokens": 10}
        assert upstream.seen == []
        [row] = await gw.rows()
        assert (row["usage_source"], row["total_tokens"], row["attempts"]) == ("estimated", 0, 0)

    async def test_generate_content_request_names_the_upstream_model(
            self, gw: Running, gemini_upstream: FakeGemini) -> None:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1beta/models/gem:countTokens",
                                   headers={"x-goog-api-key": ALICE},
                                   json={"generateContentRequest": {
                                       "model": "models/gem", "contents": []}})
            assert await resp.json() == {"totalTokens": COUNTED}
        assert gemini_upstream.last.json == {"generateContentRequest": {
            "model": f"models/{UPSTREAM_MODEL}", "contents": []}}


def google_shaped(body: bytes, code: int, status: str) -> str:
    obj = orjson.loads(body)
    assert set(obj) == {"error"} and set(obj["error"]) == {"code", "message", "status"}
    assert (obj["error"]["code"], obj["error"]["status"]) == (code, status)
    message: str = obj["error"]["message"]
    return message


class TestErrors:
    @pytest.mark.parametrize(("path", "headers", "body", "code", "status", "says"), [
        ("/v1beta/models/gem:generateContent", {}, b"{}", 401, "UNAUTHENTICATED",
         "missing API key"),
        ("/v1beta/models/gem:generateContent", {"x-goog-api-key": "sk-wrong"}, b"{}", 401,
         "UNAUTHENTICATED", "invalid API key"),
        ("/v1beta/models/nope:generateContent", {"x-goog-api-key": ALICE}, b"{}", 404,
         "NOT_FOUND", "'nope' does not exist"),
        ("/v1beta/models/gem:generateContent", {"x-goog-api-key": BOB}, b"{}", 403,
         "PERMISSION_DENIED", "may not use the model 'gem'"),
        ("/v1beta/models/gem:generateContent", {"x-goog-api-key": ALICE}, b"{nope", 400,
         "INVALID_ARGUMENT", "not valid JSON"),
        ("/v1beta/models/gem:streamGenerateContent", {"x-goog-api-key": ALICE}, b"{}", 400,
         "INVALID_ARGUMENT", "?alt=sse"),
        ("/v1beta/models/gem:embedContent", {"x-goog-api-key": ALICE}, b"{}", 404,
         "NOT_FOUND", "generateContent, streamGenerateContent, countTokens"),
        ("/v1beta/cachedContents", {"x-goog-api-key": ALICE}, b"{}", 404, "NOT_FOUND",
         "no route"),
    ])
    async def test_our_errors_are_google_shaped(
            self, gw: Running, gemini_upstream: FakeGemini, path: str,
            headers: dict[str, str], body: bytes, code: int, status: str, says: str) -> None:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(gw.url + path, data=body, headers=headers)
            assert resp.status == code
            assert says in google_shaped(await resp.read(), code, status)
        assert gemini_upstream.seen == []

    async def test_upstream_client_error_passes_verbatim(self, gw: Running,
                                                         gemini_upstream: FakeGemini) -> None:
        wrong = google_error(400, "* GenerateContentRequest.contents: contents is not "
                                  "specified", "INVALID_ARGUMENT")
        gemini_upstream.then(status=400, body=wrong)
        with pytest.raises(genai_errors.ClientError) as caught:
            await client(gw).aio.models.generate_content(model="gem", contents="hi")
        assert caught.value.code == 400
        assert caught.value.message is not None and "contents is not specified" in \
            caught.value.message
        [row] = await gw.rows()
        assert (row["status"], row["error"]) == (400, "upstream answered 400")

    async def test_rejected_upstream_key_is_502(self, gw: Running,
                                                gemini_upstream: FakeGemini) -> None:
        gemini_upstream.then(status=403, body=google_error(403, "API key not valid",
                                                           "PERMISSION_DENIED"))
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1beta/models/gem:generateContent",
                                   headers={"x-goog-api-key": ALICE}, json=REQUEST)
            message = google_shaped(await resp.read(), 502, "UNAVAILABLE")
        assert resp.status == 502 and "refused the channel key" in message
        assert "API key not valid" not in message

    async def test_stream_cut_ends_with_an_error_chunk(self, gw: Running,
                                                       gemini_upstream: FakeGemini) -> None:
        gemini_upstream.then(cut_after=1)
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{gw.url}/v1beta/models/gem:streamGenerateContent?alt=sse",
                                   headers={"x-goog-api-key": ALICE}, json=REQUEST_TEXT)
            body = await resp.read()
        first, last = body.split(b"\r\n\r\n")[:2]
        assert first + b"\r\n\r\n" == sse(chunk([{"text": TEXT[0]}]))
        assert last.startswith(b"data: ")
        google_shaped(last[6:], 502, "UNAVAILABLE")
        [row] = await gw.rows()
        assert row["status"] == 502


REQUEST_TEXT = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


class TestConfig:
    def test_gemini_channel(self, tmp_path: Path) -> None:
        config = parse(orjson.dumps(gemini_config("https://generativelanguage.googleapis.com",
                                                  "http://x.test/v1", tmp_path)).decode())
        google = next(c for c in config.channels if c.name == "google")
        assert (google.type, google.base_url) == (
            "gemini", "https://generativelanguage.googleapis.com")

    def test_base_url_with_a_version_is_refused(self, tmp_path: Path) -> None:
        raw = gemini_config("https://generativelanguage.googleapis.com/v1beta",
                            "http://x.test/v1", tmp_path)
        with pytest.raises(ConfigError, match=r"channels\[1\].base_url: a gemini base_url"):
            parse(orjson.dumps(raw).decode())


def test_check_explains_a_gemini_channel(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "channels": [{"name": "google", "type": "gemini",
                      "base_url": "https://generativelanguage.googleapis.com/",
                      "keys": ["k"]}],
        "model_groups": [{"name": "g", "targets": [{"channel": "google", "model": "m"}]}]}))
    done = subprocess.run([sys.executable, "-m", "coderouter", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "  channel 'google': Gemini API at https://generativelanguage.googleapis.com"
        "/v1beta/models/{model}:…; the Gemini routes pass through, the other routes are "
        "translated"]


async def test_rate_limit_is_resource_exhausted(start_gateway: StartGateway,
                                                gemini_upstream: FakeGemini,
                                                upstream: FakeUpstream, tmp_path: Path) -> None:
    config = gemini_config(gemini_upstream.url, upstream.url, tmp_path)
    config["token_groups"] = [{"name": "team", "rate_limit": {"rpm": 1}}]
    gw = await start_gateway(config)
    async with aiohttp.ClientSession() as http:
        first = await http.post(f"{gw.url}/v1beta/models/gem:generateContent",
                                headers={"x-goog-api-key": ALICE}, json=REQUEST_TEXT)
        assert first.status == 200
        second = await http.post(f"{gw.url}/v1beta/models/gem:generateContent",
                                 headers={"x-goog-api-key": ALICE}, json=REQUEST_TEXT)
        assert second.status == 429 and int(second.headers["Retry-After"]) > 0
        google_shaped(await second.read(), 429, "RESOURCE_EXHAUSTED")
    assert len(gemini_upstream.seen) == 1


async def test_signatures_pass_through_as_gemini_judges_them(gw: Running,
                                                             gemini_upstream: FakeGemini) -> None:
    """Gemini to Gemini the gateway adds no signature: an earlier turn without one (a resumed
    Gemini CLI session) is accepted, an unsigned call in the current turn gets Google's own 400
    back verbatim."""
    earlier = [{"role": "user", "parts": [{"text": "list"}]},
               {"role": "model", "parts": [{"functionCall": {"name": "ls", "args": {}}}]},
               {"role": "user", "parts": [{"functionResponse": {
                   "name": "ls", "response": {"output": "a"}}}]},
               {"role": "model", "parts": [{"text": "a"}]}]
    async with aiohttp.ClientSession() as http:
        resumed = await http.post(f"{gw.url}/v1beta/models/gem:generateContent",
                                  headers={"x-goog-api-key": ALICE}, json={"contents": [
                                      *earlier, {"role": "user", "parts": [{"text": "again"}]}]})
        assert resumed.status == 200
        current = await http.post(f"{gw.url}/v1beta/models/gem:generateContent",
                                  headers={"x-goog-api-key": ALICE},
                                  json={"contents": earlier[:3]})
        assert current.status == 400
        assert await current.read() == google_error(
            400, "Function call is missing a thought_signature in functionCall parts. "
                 "Position 1", "INVALID_ARGUMENT")
