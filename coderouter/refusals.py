"""Callers the gateway refused itself (401, 403, 429): a count per reason and a WARN line.

A refused key leaves a trace, so a revoked key still in use is found: the line names the
first 12 hex digits of the key's SHA-256 (what a token's ``key_sha256`` starts with), never
the key, and the reason (the error's code). Lines are rate-limited: one per key hash and
reason per `QUIET` seconds, the next one telling how many were left out meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from .config import hash_key
from .errors import GatewayError, InvalidApiKey, ModelNotAllowed, QuotaExceeded, RateLimited

log = logging.getLogger("coderouter.refusals")

#: The gateway's own refusals of a caller: the key, the model, a quota or a rate limit.
REFUSALS: tuple[type[GatewayError], ...] = (InvalidApiKey, ModelNotAllowed, QuotaExceeded,
                                            RateLimited)
#: Seconds between two lines about the same key hash and reason.
QUIET = 60.0
#: Most (key hash, reason) pairs remembered; past it the memory starts afresh.
REMEMBERED = 10_000


def key_hint(key: str | None) -> str:
    """``sha256:`` and the first 12 hex digits of *key*'s SHA-256, or ``none``."""
    return "none" if not key else "sha256:" + hash_key(key).hex()[:12]


class Refusals:
    """Counts of refusals per reason (the error code), and their rate-limited log lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def refused(self, error: GatewayError, key: str | None, path: str) -> None:
        """Count *error* answered to the caller of *key* on *path*; log it unless quiet."""
        self.counts[error.code] += 1
        hint = key_hint(key)
        now = self.clock()
        last, left_out = self._logged.get((hint, error.code), (-QUIET, 0))
        if now - last < QUIET:
            self._logged[(hint, error.code)] = (last, left_out + 1)
            return
        if len(self._logged) >= REMEMBERED:
            self._logged.clear()
        self._logged[(hint, error.code)] = (now, 0)
        more = f" ({left_out} more since the last line)" if left_out else ""
        log.warning("refused %s for key %s: %s: %s%s", path, hint, error.code, error.message,
                    more)
