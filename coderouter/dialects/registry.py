"""Every wire dialect the gateway serves, by name: one explicit table, no registration by
import.

`DIALECTS` holds each dialect's facts (`dialect.Dialect`); `CODECS` the codecs of those that
can be translated (the hub pairs any two). Where the ones without a codec live:

* the counting routes beside the dialect whose conversations they count: Anthropic's
  ``count_tokens`` in ``messages/facts.py``, Gemini's ``countTokens`` (``gemini_count``) in
  ``gemini/facts.py``; `counting` translates one into the other;
* OpenAI's ``completions`` and ``embeddings``, only ever passed through, in ``chat/facts.py``
  (they share Chat's usage and error shapes); the mock channel answers them from memory.

A sixth dialect is a package with its codec and its facts, and one line in each table below.
"""

from __future__ import annotations

from .chat.facts import CHAT, COMPLETIONS, EMBEDDINGS
from .codec import Codec
from .dialect import Dialect, Name
from .gemini.facts import GEMINI, GEMINI_COUNT
from .messages.facts import COUNT_TOKENS, MESSAGES
from .responses.facts import RESPONSES, RESPONSES_COMPACT

__all__ = ["CODECS", "COUNTING", "DIALECTS", "ENDPOINTS", "GEMINI_METHODS", "Name", "of_path"]

DIALECTS: dict[str, Dialect] = {d.name: d for d in (
    CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, RESPONSES_COMPACT, MESSAGES, COUNT_TOKENS, GEMINI,
    GEMINI_COUNT)}

#: The codec of every dialect a request in it can be translated to or from.
CODECS: dict[str, Codec] = {d.name: d.codec for d in DIALECTS.values() if d.codec is not None}

#: Dialects whose requests only count tokens: they use none and pass no quota.
COUNTING: frozenset[str] = frozenset(d.name for d in DIALECTS.values() if d.counting)

#: Caller-facing POST routes of the OpenAI and Anthropic APIs and the dialect each speaks
#: (the Gemini API's routes carry the model in the path: `relay.gemini_routes`).
ENDPOINTS: dict[str, Dialect] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/responses": RESPONSES,
    "/v1/responses/compact": RESPONSES_COMPACT,
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": COUNT_TOKENS,
}

#: Gemini API method -> the dialect its requests speak.
GEMINI_METHODS: dict[str, Dialect] = {
    "generateContent": GEMINI, "streamGenerateContent": GEMINI, "countTokens": GEMINI_COUNT}


def of_path(path: str) -> Dialect:
    """The dialect a caller of *path* reads errors in: Google's on the Gemini API's routes
    (/v1beta/…, /v1/models/…:method), Anthropic's on /v1/messages…, else OpenAI's."""
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
        return GEMINI
    if path.startswith("/v1/messages"):
        return MESSAGES
    return ENDPOINTS.get(path, CHAT)
