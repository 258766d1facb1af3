"""Quotas and rate limits: one model (`model`), one interface (`protocol.Quotas`), two
backends: this process's memory (`memory`) or Redis shared by every process (`redis`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import Config
from ..routing import Health
from ..usage import UsageStore
from .memory import MemoryQuotas
from .model import table_source
from .protocol import Quotas


def quotas_for(config: Config, store: UsageStore, health: Health,
               current: Callable[[], Config], clock: Callable[[], float] = time.time) -> Quotas:
    """Redis when ``state.redis`` is set (it also shares *health*'s cooldowns and pins), else
    this process's memory; both rebuilt from *store*'s usage table."""
    if config.state.redis is None:
        return MemoryQuotas(table_source(store), clock)
    from .redis import RedisQuotas  # needs the redis extra
    return RedisQuotas(config.state, store=store, config=current, health=health, clock=clock)
