"""How an attempt fails: the exceptions the failover loop reads."""

from __future__ import annotations

from aiohttp import web

from ..errors import GatewayError


class Failed(Exception):
    """An attempt failed in a way another key or target may fix."""

    def __init__(self, error: GatewayError, *, key: bool = False,
                 cooldown: float | None = None, too_long: web.Response | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.key = key  # the channel's key was refused: cool the key, not the target
        self.cooldown = cooldown
        #: The prompt did not fit the model's context: the caller's answer, when no target
        #: with a larger ``max_context`` is left to try.
        self.too_long = too_long


class Refusal(GatewayError):
    """An upstream's own 4xx, kept to hand back when failing over did not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
