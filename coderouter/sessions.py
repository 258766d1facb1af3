"""Which conversation a request belongs to, and which client sent it. Pure.

The session key is the first of these that is present (each agent's own carrier, see
README "Routing for coding agents"):

1. header ``x-claude-code-session-id`` (Claude Code 2.1.86+);
2. the session id inside a Messages body's ``metadata.user_id`` (Claude Code: a JSON string
   ``{"device_id", "account_uuid", "session_id"}``, or ``user_…_session_<uuid>`` before);
3. headers ``session-id``, ``session_id``, ``thread-id``, ``thread_id``, ``conversation_id``
   (Codex CLI, across its versions);
4. headers ``x-session-affinity``, ``x-session-id`` (opencode);
5. a Chat or Responses body's ``prompt_cache_key`` (Codex, OpenAI SDK users);
6. else a key derived from the conversation, confined to the caller's token: `Conversations`
   follows it by its user messages (a fixed opening, like aider's example exchange, does not
   make two conversations one).

Keys are namespaced by where they came from, so two carriers never collide.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from .dialects.dialect import Dialect

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


def session_key(headers: Mapping[str, str], payload: dict[str, Any], dialect: Dialect,
                scope: str = "", known: Conversations | None = None) -> tuple[str, bool]:
    """(the session key of this *dialect* request, whether it was derived from the prompt's
    content).

    A derived key is confined to *scope* (the caller's token): two callers never share one.
    With *known*, a conversation is followed by its user messages (see `Conversations`), else
    it is named by its opening.
    """
    value = headers.get("x-claude-code-session-id")
    if value and (clean := _clean(value)):
        return f"claude:{clean}", False
    hint = dialect.session_hint(payload)
    if hint is not None and hint[0] == "claude" and (clean := _clean(hint[1])):
        return f"claude:{clean}", False
    for name in _CODEX_HEADERS:
        value = headers.get(name)
        if value and (clean := _clean(value)):
            return f"codex:{clean}", False
    for name in _OPENCODE_HEADERS:
        value = headers.get(name)
        if value and (clean := _clean(value)):
            return f"opencode:{clean}", False
    if hint is not None and hint[0] == "pck" and (clean := _clean(hint[1])):
        return f"pck:{clean}", False
    system, user_messages = dialect.conversation(payload)
    said = [_digest(content) for content in user_messages]
    opening = hashlib.sha256()
    for part in (scope, payload.get("model"), system):
        opening.update(_digest(part))
    if known is not None:
        return known.key(opening.hexdigest(), said), True
    if said:
        opening.update(said[0])
    return f"h:{opening.hexdigest()[:32]}", True


def pin_key(token: str, session: str) -> str:
    """Where *session*'s pin is kept for the caller *token*: a session id is the caller's
    word, so another token naming it (or deriving the same one) gets a pin of its own."""
    return f"{token}\x00{session}"


class Conversations:
    """Conversations that carry no session id, followed by their user messages (this
    process's memory, the last *size* messages).

    A request's newest user message is remembered as its conversation's; a later request that
    repeats an earlier one of them continues that conversation (the oldest one it repeats
    decides: later ones may be words any conversation says, like "go on"). One that repeats
    none starts a conversation named by its opening (scope, model, system prompt) and that
    newest message. A fixed opening that every conversation of a client repeats (aider's
    example exchange, a repo map) is never a request's newest message, so it joins no two
    conversations. With ``workers: N`` each worker has its own memory.
    """

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._owner: OrderedDict[bytes, str] = OrderedDict()

    def key(self, opening: str, said: list[bytes]) -> str:
        """The session of a request whose opening digest is *opening*, and whose user
        messages digest to *said* (oldest first)."""
        prefix = opening.encode()
        owner = self._owner
        found = None
        for digest in said[:-1]:  # the oldest first: later ones may be generic ("go on")
            found = owner.get(prefix + digest)
            if found is not None:
                break
        if found is None:
            newest = hashlib.sha256(prefix + (said[-1] if said else b""))
            found = f"h:{newest.hexdigest()[:32]}"
        if said:
            owner[prefix + said[-1]] = found
            owner.move_to_end(prefix + said[-1])
            if len(owner) > self.size:
                owner.popitem(last=False)
        return found


def _digest(part: Any) -> bytes:
    """A digest of a message's content, blind to where the caller put cache breakpoints
    (they move to the newest message every turn)."""
    if isinstance(part, list):
        part = [{k: v for k, v in block.items() if k != "cache_control"}
                if isinstance(block, dict) else block for block in part]
    try:
        data = orjson.dumps(part)
    except (TypeError, orjson.JSONEncodeError):
        data = repr(part).encode()
    return hashlib.sha256(data).digest()


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
