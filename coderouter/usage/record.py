"""One request's usage row: its fields are the usage table's columns, in order."""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Literal


@dataclass(slots=True)
class Record:
    """One request's row, filled in as the request goes; written whatever happens to it."""

    ts: float
    request_id: str
    endpoint: str
    token: str | None = None
    token_group: str | None = None
    model: str | None = None
    channel: str | None = None
    upstream_model: str | None = None
    status: int = 0
    stream: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    usage_source: Literal["upstream", "estimated", "none"] = "none"
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    attempts: int = 0
    error: str | None = None
    client_ip: str | None = None
    #: The conversation (`sessions.session_key`), the agent or SDK, the routing rule that fired.
    session: str | None = None
    client: str | None = None
    rule: str | None = None
    #: Prompt tokens written to the upstream's cache, kept 5 minutes and kept 1 hour.
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    #: 1 for an agent's background call (`rules.is_background`): titles, classifiers.
    background: int = 0


COLUMNS = tuple(f.name for f in fields(Record))
row_of = attrgetter(*COLUMNS)  # a flat tuple, without astuple's deep copy
