"""Cooldowns of targets and keys, session pins and failed attempts, told to every process
through Redis.

Published on a Redis channel and kept as expiring keys, so a process starting later sees the
cooldowns too; a channel key appears only as a hash prefix (`key_id`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..routing import Health

_SEP = "\x1f"
#: Fields of each message kind on the channel (a cooldown's, the default, has 5).
_FIELDS = {"pin": 8, "fail": 7}


def key_id(key: str) -> str:
    """What stands for a channel key in Redis: a short hash, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class SharedCooldowns:
    """`Health.on_change` and `Health.on_pin` for every process; applies what others tell."""

    def __init__(self, *, prefix: str, process: str, health: Health,
                 config: Callable[[], Config], spawn: Callable[[Any], None],
                 failed: Callable[[BaseException], None]) -> None:
        self.prefix = prefix
        self.process = process
        self.health = health
        self.config = config
        self.spawn = spawn
        self.failed = failed
        self.redis: Any = None
        self.errors: tuple[type[BaseException], ...] = (OSError,)

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{suffix}"

    def share_cooldown(self, kind: str, ident: tuple[str, str], seconds: float) -> None:
        """`Health.on_change`: tell the other processes (never blocks)."""
        if self.redis is None:
            return
        channel, name = ident
        if kind == "key":
            name = key_id(name)
        self.spawn(self._publish(kind, channel, name, seconds))

    async def _publish(self, kind: str, channel: str, name: str, seconds: float) -> None:
        key = self._key(f"cool:{kind}:{channel}{_SEP}{name}")
        try:
            pipe = self.redis.pipeline(transaction=False)
            if seconds > 0:
                pipe.set(key, "1", px=max(1, int(seconds * 1000)))
            else:
                pipe.delete(key)
            pipe.publish(self._key("cooldowns"),
                         _SEP.join((self.process, kind, channel, name, repr(seconds))))
            await pipe.execute()
        except self.errors as exc:
            self.failed(exc)

    def _apply(self, kind: str, channel: str, name: str, seconds: float) -> None:
        if kind == "target":
            self.health.apply("target", (channel, name), seconds)
            return
        for ch in self.config().channels:
            if ch.name == channel:
                for key in ch.keys:
                    if key_id(key) == name:
                        self.health.apply("key", (channel, key), seconds)

    def share_pin(self, group: str, session: str, target: tuple[str, str], key: str,
                  ttl: float) -> None:
        """`Health.on_pin`: tell the other processes where *session* is served (never blocks).
        """
        if self.redis is None:
            return
        message = _SEP.join((self.process, "pin", group, session, target[0], target[1],
                             key_id(key), repr(ttl)))
        self.spawn(self._send(message))

    def share_failure(self, target: tuple[str, str], ts: float, status: int,
                      error: str) -> None:
        """`FailedAttempts.on_add`: tell the other processes of a failed attempt (never
        blocks)."""
        if self.redis is None:
            return
        message = _SEP.join((self.process, "fail", target[0], target[1], repr(ts), str(status),
                             error.replace(_SEP, " ")))
        self.spawn(self._send(message))

    async def _send(self, message: str) -> None:
        try:
            await self.redis.publish(self._key("cooldowns"), message)
        except self.errors as exc:
            self.failed(exc)

    def _apply_pin(self, group: str, session: str, channel: str, model: str, key: str,
                   ttl: float) -> None:
        for ch in self.config().channels:
            if ch.name == channel:
                for candidate in ch.keys or ("",):
                    if not ch.keys or key_id(candidate) == key:
                        now = self.health.clock()
                        self.health.sticky.pin(group, session, (channel, model), candidate,
                                               now + ttl, shared=now)
                        return

    async def listen_forever(self) -> None:
        """Apply the cooldowns other processes publish; at (re)connect, those still running."""
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self._key("cooldowns"))
                await self._apply_running()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._told(message["data"].split(_SEP))
            except self.errors as exc:
                self.failed(exc)
                await asyncio.sleep(1.0)

    async def _apply_running(self) -> None:
        async for key in self.redis.scan_iter(match=self._key("cool:*"), count=500):
            ttl = await self.redis.pttl(key)
            kind, _, rest = key[len(self._key("cool:")):].partition(":")
            channel, _, name = rest.partition(_SEP)
            if ttl > 0:
                self._apply(kind, channel, name, ttl / 1000)

    def _told(self, fields: list[str]) -> None:
        if fields[0] == self.process or len(fields) != _FIELDS.get(fields[1], 5):
            return  # our own, or not ours to read
        if fields[1] == "fail":
            channel, model, ts, status, error = fields[2:]
            self.health.failures.apply((channel, model), float(ts), int(status), error)
        elif fields[1] == "pin":
            group, session, channel, model, key, ttl = fields[2:]
            self._apply_pin(group, session, channel, model, key, float(ttl))
        else:
            self._apply(fields[1], fields[2], fields[3], float(fields[4]))
