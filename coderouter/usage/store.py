"""What the gateway asks of a usage store, SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from .record import Record
from .schema import Engine

T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The usage database cannot be opened or written; the message says why and where."""


class UsageStore(Protocol):
    """Where finished requests' rows go and where usage is read back: SQLite or PostgreSQL."""

    written: int
    failures: int
    #: Why the last write failed, None while writes succeed.
    problem: str | None
    engine: Engine

    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

    @property
    def queued(self) -> int: ...

    @property
    def spooled(self) -> int: ...

    async def open(self) -> None: ...

    def add(self, record: Record) -> None: ...

    async def flush(self) -> None: ...

    async def read_flushed(self, read: Callable[[], Awaitable[T]]) -> T:
        """Write what is queued, then run *read* before any row added later is written."""
        ...

    async def close(self) -> None: ...

    async def report(self, by: str, since: float | None,
                     until: float | None) -> list[dict[str, Any]]: ...
