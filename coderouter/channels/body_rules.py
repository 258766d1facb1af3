"""A channel's body rules (``body_rules:``): fields dropped from, or set in, every upstream
body the channel is sent, after the gateway has built it (pass-through or translated).

They are for upstreams that refuse what callers send, such as the Anthropic-compatible APIs
of DeepSeek, Kimi, GLM and MiniMax answering "Extra inputs are not permitted" to the newest
Claude Code's ``context_management``. A path is dot-separated keys; ``*`` stands for every
item of a list (or value of a mapping), as in ``tools.*.defer_loading``. The caller's own
body is never changed: a rule copies what it edits, so a failover to another channel sends
the body as it came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: The path segment that stands for every item of a list or value of a mapping.
EVERY = "*"


@dataclass(frozen=True, slots=True)
class BodyRule:
    """Drop the field at *path*, or (``drop`` false) set it to *value*."""

    path: tuple[str, ...]
    drop: bool
    value: Any = field(default=None, compare=False)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """*body* with this rule applied; *body* itself and what it holds stay unchanged."""
        out: dict[str, Any] = _edit(body, self.path, self)
        return out

    def at_leaf(self, node: dict[str, Any], key: str) -> dict[str, Any]:
        if self.drop:
            if key not in node:
                return node
            return {k: v for k, v in node.items() if k != key}
        return {**node, key: self.value}


def path_problem(path: str) -> str | None:
    """Why *path* cannot name a body field, or None."""
    parts = path.split(".")
    if not path or "" in parts:
        return "expected dot-separated field names such as context_management or " \
               "tools.*.defer_loading"
    if parts[-1] == EVERY:
        return "must end with a field name, not *"
    return None


def apply_all(rules: Sequence[BodyRule], body: dict[str, Any]) -> dict[str, Any]:
    """*body* with each of *rules* applied in order."""
    for rule in rules:
        body = rule.apply(body)
    return body


def _edit(node: Any, path: tuple[str, ...], rule: BodyRule) -> Any:
    """A copy of *node* with *rule* applied at *path* below it (branches it does not touch
    are shared, not copied); *node* itself when the path does not reach."""
    head, rest = path[0], path[1:]
    if head == EVERY:
        if isinstance(node, list):
            return [_edit(item, rest, rule) for item in node]
        if isinstance(node, dict):
            return {k: _edit(v, rest, rule) for k, v in node.items()}
        return node
    if not isinstance(node, dict):
        return node
    if not rest:
        return rule.at_leaf(node, head)
    child = node.get(head)
    if child is None:
        if rule.drop or rest[0] == EVERY:
            return node
        child = {}  # set creates the mappings on its way
    edited = _edit(child, rest, rule)
    return node if edited is child else {**node, head: edited}
