"""What a reload changed, in words an operator scans in a log line. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import Config


def describe(old: Config, new: Config) -> list[str]:
    """``+token erin``, ``-channel old``, ``token carol disabled``, ``model_group smart
    changed``…, section by section in the file's order; empty when no named item changed."""
    changes: list[str] = []
    for kind, before, after in (("channel", old.channels, new.channels),
                                ("model_group", old.model_groups, new.model_groups),
                                ("token_group", old.token_groups, new.token_groups),
                                ("token", old.tokens, new.tokens)):
        changes.extend(_named(kind, before, after))
    return changes


def _named(kind: str, before: Iterable[Any], after: Iterable[Any]) -> list[str]:
    old = {item.name: item for item in before}
    new = {item.name: item for item in after}
    out = [f"-{kind} {name}" for name in old if name not in new]
    for name, item in new.items():
        was = old.get(name)
        if was is None:
            out.append(f"+{kind} {name}")
        elif was != item:
            out.append(f"{kind} {name} {_how(was, item)}")
    return out


def _how(was: Any, now: Any) -> str:
    """``disabled`` or ``enabled`` when that is the one difference of an item that has the
    flag, else ``changed`` (never what changed: a key or a price is not for the log)."""
    enabled = getattr(now, "enabled", None)
    flipped = enabled is not None and getattr(was, "enabled", None) != enabled
    if flipped and _without_flag(was) == _without_flag(now):
        return "enabled" if enabled else "disabled"
    return "changed"


def _without_flag(item: Any) -> tuple[Any, ...]:
    return tuple(getattr(item, f) for f in item.__slots__ if f != "enabled")
