"""Channels: the kinds of upstream (one module each), their registry, and the connection pools.

`KINDS` maps a channel's ``type:`` to its `Kind`; adding a kind is a module here and a line
in it. Connection pools live beside the kinds, in `pool`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .anthropic import ANTHROPIC
from .azure import AZURE
from .gemini import GEMINI
from .kind import Call, Kind
from .mock import MOCK
from .openai import OPENAI

if TYPE_CHECKING:
    from ..config import Channel

__all__ = ["KINDS", "Call", "Kind", "dialects_of", "kind_of"]

#: Every channel kind by its ``type:`` name.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (OPENAI, ANTHROPIC, AZURE, GEMINI, MOCK)}


def kind_of(channel: Channel) -> Kind:
    """The kind of *channel* (its ``type:`` was checked against `KINDS` when loaded)."""
    return KINDS[channel.type]


def dialects_of(channel: Channel) -> tuple[str, ...]:
    """What *channel*'s upstream serves natively; other caller dialects are translated."""
    return KINDS[channel.type].dialects(channel)
