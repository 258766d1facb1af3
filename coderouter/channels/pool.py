"""Connection pools: one keep-alive pool per channel, through the environment's proxy."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from multidict import CIMultiDict

from .lean import LeanResponse, Pool

if TYPE_CHECKING:
    from ..config import Channel

log = logging.getLogger("coderouter.channels.pool")


class Response(Protocol):
    """The part of an upstream response the relay uses (aiohttp's, or the mock's)."""

    status: int

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def content(self) -> Any: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


def proxy_for(base_url: str) -> str | None:
    """The proxy that ``HTTP_PROXY``/``HTTPS_PROXY`` name for *base_url*, unless ``NO_PROXY``
    exempts its host; None when there is none.

    Read once per base URL: aiohttp's ``trust_env`` would read the environment (and
    ~/.netrc) again on every request.
    """
    url = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # undocumented
    if not proxy or bypass(url.netloc, proxies):
        return None
    return proxy


class Pools:
    """One keep-alive `lean.Pool` per channel name.

    Requests hold a `lease` on their channel's pool while they use it. A reload that removes
    or disables a channel `retain`s only the live channels: the pool of a dropped one closes
    as soon as its last lease ends (at once when nothing uses it), never under a request.

    Channels reach their upstream directly, or through the proxy the environment names for
    their base URL (`proxy_for`), resolved once.
    """

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self._sessions: dict[str, Pool] = {}
        self._leases: Counter[str] = Counter()
        self._retiring: set[str] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._proxies: dict[str, str | None] = {}

    def session(self, channel: Channel) -> Pool:
        session = self._sessions.get(channel.name)
        if session is None or session.closed:
            session = self._sessions[channel.name] = Pool(self.limit)
        return session

    async def post(self, channel: Channel, url: str, data: bytes, headers: CIMultiDict[str],
                   connect_timeout: float | None) -> LeanResponse:
        """POST on *channel*'s pool, through its proxy if it has one; the answer's head."""
        base = channel.base_url
        if base not in self._proxies:
            self._proxies[base] = proxy_for(base)
        return await self.session(channel).post(url, data, headers, connect_timeout,
                                                self._proxies[base])

    def lease(self, name: str) -> _Lease:
        """Hold channel *name*'s pool open for the duration of the block."""
        return _Lease(self, name)

    def _end_lease(self, name: str) -> None:
        self._leases[name] -= 1
        if not self._leases[name]:
            del self._leases[name]
            if name in self._retiring:
                self._close_soon(name)

    def retain(self, names: Iterable[str]) -> None:
        """Keep the pools of channels *names*; close every other one after its last lease."""
        keep = set(names)
        self._retiring -= keep
        for name in set(self._sessions) - keep:
            if self._leases[name]:
                self._retiring.add(name)
            else:
                self._close_soon(name)

    def _close_soon(self, name: str) -> None:
        """Forget *name*'s pool and close it in the background."""
        self._retiring.discard(name)
        session = self._sessions.pop(name, None)
        if session is not None:
            log.info("closing the connection pool of channel %s: no longer in the config", name)
            task = asyncio.get_running_loop().create_task(session.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), *self._closing)

    def names(self) -> Mapping[str, Pool]:
        return self._sessions


class _Lease:
    """`Pools.lease` as a plain context manager (a generator-based one costs more per request)."""

    __slots__ = ("name", "pools")

    def __init__(self, pools: Pools, name: str) -> None:
        self.pools, self.name = pools, name

    def __enter__(self) -> None:
        self.pools._leases[self.name] += 1

    def __exit__(self, *exc: object) -> None:
        self.pools._end_lease(self.name)
