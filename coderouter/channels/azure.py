"""The ``azure`` kind: Azure OpenAI, the OpenAI wire formats at a deployment URL with an
``api-key`` header and the channel's ``api-version``."""

from __future__ import annotations

from multidict import CIMultiDict

from .kind import Call
from .openai import OpenAIKind


class AzureKind(OpenAIKind):
    """``{base_url}/openai/deployments/{model}{path}``, or ``{base_url}/openai/responses``
    (the deployment goes in the body's ``model``), with the channel's ``api-version`` in place
    of any the caller sent."""
    price_provider = "azure"

    name = "azure"
    provider = "azure.ai.openai"
    needs_api_version = True

    def responses_default(self, base_url: str) -> bool:
        return True

    def url(self, call: Call) -> str:
        channel = call.channel
        kept = [p for p in call.query.split("&") if p and not p.startswith("api-version=")]
        query = "&".join([*kept, f"api-version={channel.api_version}"])
        path = self.paths[call.dialect]
        if call.dialect in ("responses", "responses_compact"):
            return f"{channel.base_url}/openai{path}?{query}"
        return f"{channel.base_url}/openai/deployments/{call.model}{path}?{query}"

    def authorize(self, headers: CIMultiDict[str], key: str) -> None:
        headers["api-key"] = key


AZURE = AzureKind()
