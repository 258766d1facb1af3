"""The one interface of quota backends: this process's memory, or Redis shared by processes.

The request path admits and settles through `Quotas` and never asks which backend it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..config import Token


class Admission(Protocol):
    """An admitted request's hold on its quotas and rate limits, until `settle`."""

    #: The ``x-ratelimit-*`` headers computed at admission, for the response.
    headers: dict[str, str]

    @property
    def settled(self) -> bool: ...

    def settle(self, *, tokens: int, cost: float, forwarded: bool = True) -> None:
        """Replace the estimate by real usage and free the slot; later calls do nothing.

        ``tokens=0, cost=0``: a request that failed without usage still counts as one
        request. ``forwarded=False`` (no upstream was tried): the request counts nothing.
        """


@dataclass(frozen=True, slots=True)
class SharedHealth:
    """How a shared backend fares, for the metrics."""

    up: bool
    failures: int
    pending: int


class Quotas(Protocol):
    """Admission against the quotas and rate limits of a token and its group."""

    async def open(self) -> None:
        """Rebuild the counters from the usage table (or find them shared); before serving."""

    async def close(self) -> None:
        """Settle what is still queued; after the last request."""

    async def admit(self, token: Token, *, estimate_tokens: int,
                    estimate_cost: float) -> Admission:
        """Check every quota and rate limit of *token* and its group, then reserve the
        estimate; raise `QuotaExceeded`, `RateLimited` or `StorageUnavailable` (counting
        nothing) when refused."""

    def admit_free(self, token: Token) -> Admission:
        """Admit a request that uses no quota (count_tokens) against rpm and concurrent."""

    async def report(self, token: Token) -> dict[str, Any]:
        """The body of ``GET /v1/usage`` for *token*."""

    def shared_health(self) -> SharedHealth | None:
        """None for this process's own counters."""
