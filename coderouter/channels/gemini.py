"""The ``gemini`` kind: Google's Gemini API at ``{base_url}/v1beta/models/{model}:{method}``,
with an ``x-goog-api-key`` header."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from multidict import CIMultiDict

from .kind import Call, Kind

if TYPE_CHECKING:
    from ..config import Channel


class GeminiKind(Kind):
    """Streams always as ``alt=sse``; a caller's ``key`` parameter is never forwarded."""
    price_provider = "google"

    name = "gemini"
    provider = "gcp.gemini"
    family = "gemini"
    paths: ClassVar = {"gemini": ":generateContent", "gemini_count": ":countTokens"}

    def base_url_problem(self, base_url: str) -> str | None:
        if base_url.rstrip("/").endswith(("/v1beta", "/v1")):
            return ("a gemini base_url has no API version: give it as Google's SDK takes it "
                    "(https://generativelanguage.googleapis.com); the gateway appends "
                    "/v1beta/models/{model}:…")
        return None

    def describe(self, channel: Channel) -> str:
        return (f"channel '{channel.name}': Gemini API at {channel.base_url}/v1beta/models/"
                "{model}:…; the Gemini routes pass through, the other routes are translated")

    def url(self, call: Call) -> str:
        kept = [p for p in call.query.split("&") if p and not p.startswith(("key=", "alt="))]
        method = self.paths[call.dialect]
        if call.stream and call.dialect == "gemini":
            method, kept = ":streamGenerateContent", [*kept, "alt=sse"]
        url = f"{call.channel.base_url}/v1beta/models/{call.model}{method}"
        return f"{url}?{'&'.join(kept)}" if kept else url

    def authorize(self, headers: CIMultiDict[str], key: str) -> None:
        headers["x-goog-api-key"] = key


GEMINI = GeminiKind()
