"""Our envelopes in a body that passes through to an upstream of the caller's own dialect.
Pure.

A session that moved between channel types (a failover between an Anthropic and an OpenAI
target, a rule that stopped matching, a config change) carries our envelopes in the native
slots of its dialect: a thinking ``signature``, redacted thinking ``data``, an
``encrypted_content``, a ``thoughtSignature``, a tool-call id. Sent on as they are, the
upstream would get state it did not issue (and refuse the turn), or another vendor's state.
`restore` opens each one where it appears: state sealed for this binding (channel, key,
caller) and issued by this dialect goes back as the upstream issued it; any other is
dropped as foreign state, with the block or item that is nothing without it; an id carrying
one gets its own id back.
"""

from __future__ import annotations

from typing import Any

from .envelope import TAG, Sealer, find

#: Fields that hold opaque state a client carries back.
_SLOTS = frozenset({"signature", "encrypted_content", "thoughtSignature", "data"})
#: Fields that hold a tool-call id (an envelope may ride on one after a dot).
_IDS = frozenset({"id", "tool_use_id", "call_id", "tool_call_id"})
#: Blocks and items that are nothing without their state: dropped whole when it is foreign.
_HOLDERS = frozenset({"thinking", "redacted_thinking", "reasoning", "compaction"})
_DROP = object()


def restore(payload: dict[str, Any], issuer: str | None, sealer: Sealer,
            bound: str) -> dict[str, Any]:
    """*payload* with every envelope opened: restored when sealed for *bound* and holding
    state *issuer* (the upstream's dialect) issued, else dropped. A new body; *payload* is
    unchanged."""
    cleaned = _Restorer(issuer, sealer, bound).value(payload)
    return cleaned if isinstance(cleaned, dict) else {}


class _Restorer:
    __slots__ = ("_bound", "_issuer", "_sealer")

    def __init__(self, issuer: str | None, sealer: Sealer, bound: str) -> None:
        self._issuer, self._sealer, self._bound = issuer, sealer, bound

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._object(value)
        if isinstance(value, list):
            return [item for item in map(self.value, value) if item is not _DROP]
        return value

    def _object(self, obj: dict[str, Any]) -> Any:
        out: dict[str, Any] = {}
        restored: dict[str, Any] = {}
        for key, item in obj.items():
            if key in _SLOTS and isinstance(item, str) and item.startswith(TAG):
                state = self._state(item)
                if state is None:
                    kind = obj.get("type")
                    if isinstance(kind, str) and kind in _HOLDERS:
                        return _DROP
                    continue  # a signature on a part that stands without it
                restored = state
                out[key] = state["d"]
            elif key in _IDS and isinstance(item, str) and (at := find(item)) > 0:
                out[key] = item[:at - 1]
            else:
                cleaned = self.value(item)
                if cleaned is not _DROP:
                    out[key] = cleaned
        if restored:
            if isinstance(restored.get("t"), str) and isinstance(out.get("thinking"), str):
                out["thinking"] = restored["t"]  # what the upstream signed, byte for byte
            if isinstance(restored.get("k"), str) and "id" in out:
                out["id"] = restored["k"]
        return out

    def _state(self, token: str) -> dict[str, Any] | None:
        """The opened entry when it holds this issuer's state sealed for this binding."""
        opened = self._sealer.open(token, self._bound)
        if isinstance(opened, dict) and opened.get("i") == self._issuer \
                and isinstance(opened.get("d"), str):
            return opened
        return None
