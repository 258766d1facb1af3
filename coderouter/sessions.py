"""Which conversation a request belongs to, and which client sent it. Pure.

The session key is the first of these that is present (each agent's own carrier, see
README "Routing for coding agents"):

1. header ``x-claude-code-session-id`` (Claude Code 2.1.86+);
2. the session id inside the body's ``metadata.user_id`` (Claude Code: a JSON string
   ``{"device_id", "account_uuid", "session_id"}``, or ``user_…_session_<uuid>`` before);
3. headers ``session-id``, ``session_id``, ``thread-id``, ``thread_id``, ``conversation_id``
   (Codex CLI, across its versions);
4. headers ``x-session-affinity``, ``x-session-id`` (opencode);
5. the body's ``prompt_cache_key`` (Codex, OpenAI SDK users);
6. else a hash of the model, the system prompt and the first user message, which is the
   same on every turn of a conversation.

Keys are namespaced by where they came from, so two carriers never collide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

_MAX_ID = 128

_CODEX_HEADERS = ("session-id", "session_id", "thread-id", "thread_id", "conversation_id")
_OPENCODE_HEADERS = ("x-session-affinity", "x-session-id")

#: User-Agent prefixes of known clients -> the name usage rows record.
_CLIENTS = (
    ("claude-cli", "claude-code"),
    ("claude-code", "claude-code"),
    ("codex_cli_rs", "codex"),
    ("codex_exec", "codex"),
    ("codex", "codex"),
    ("geminicli", "gemini-cli"),
    ("opencode", "opencode"),
    ("qwencode", "qwen-code"),
    ("aider", "aider"),
    ("cline", "cline"),
    ("continue", "continue"),
    ("openai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("anthropic/js", "anthropic-node"),
    ("google-genai-sdk", "google-genai"),
    ("google-genai", "google-genai"),
    ("litellm", "litellm"),
)


def _clean(value: str) -> str | None:
    """*value* when it is a short printable ASCII id, else a digest of it; None when empty."""
    value = value.strip()
    if not value:
        return None
    if len(value) <= _MAX_ID and value.isascii() and value.isprintable():
        return value
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]


def _claude_user_id(metadata: Any) -> str | None:
    """The session id inside Claude Code's ``metadata.user_id``, in either form."""
    if not isinstance(metadata, dict):
        return None
    user_id = metadata.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        return None
    if user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        session = parsed.get("session_id") if isinstance(parsed, dict) else None
        return session if isinstance(session, str) else None
    _, found, session = user_id.rpartition("_session_")
    return session if found else None


def session_key(headers: Mapping[str, str], payload: dict[str, Any]) -> tuple[str, bool]:
    """(the session key of this request, whether it was derived from the prompt's content)."""
    value = headers.get("x-claude-code-session-id")
    if value and (clean := _clean(value)):
        return f"claude:{clean}", False
    value = _claude_user_id(payload.get("metadata"))
    if value and (clean := _clean(value)):
        return f"claude:{clean}", False
    for name in _CODEX_HEADERS:
        value = headers.get(name)
        if value and (clean := _clean(value)):
            return f"codex:{clean}", False
    for name in _OPENCODE_HEADERS:
        value = headers.get(name)
        if value and (clean := _clean(value)):
            return f"opencode:{clean}", False
    value = payload.get("prompt_cache_key")
    if isinstance(value, str) and (clean := _clean(value)):
        return f"pck:{clean}", False
    return f"h:{_opening_digest(payload)}", True


def _opening_digest(payload: dict[str, Any]) -> str:
    """A digest of model + system prompt + first user message, in any of the four dialects."""
    system: Any = payload.get("system") or payload.get("instructions") \
        or payload.get("systemInstruction")
    first: Any = None
    turns = payload.get("messages")
    if not isinstance(turns, list):
        turns = payload.get("contents")
    if not isinstance(turns, list):
        turns = payload.get("input")
    if isinstance(turns, str):
        first = turns
    elif isinstance(turns, list):
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            role = turn.get("role")
            if role in ("system", "developer") and system is None:
                system = turn.get("content")
            elif role == "user":
                first = turn.get("content", turn.get("parts"))
                break
    digest = hashlib.sha256()
    digest.update(str(payload.get("model")).encode())
    for part in (system, first):
        digest.update(b"\x00")
        try:
            digest.update(orjson.dumps(part))
        except (TypeError, orjson.JSONEncodeError):
            digest.update(repr(part).encode())
    return digest.hexdigest()[:32]


def client_name(user_agent: str | None) -> str | None:
    """The agent or SDK named by *user_agent* (``claude-code``, ``codex``, ``openai-python``…),
    else its first product token, lowercased; None when there is no User-Agent."""
    if not user_agent:
        return None
    lowered = user_agent.strip().lower()
    for prefix, name in _CLIENTS:
        if lowered.startswith(prefix):
            return name
    token = lowered.split(" ", 1)[0].split("/", 1)[0]
    return _clean(token[:32]) if token else None
