"""The YAML config: frozen dataclasses (`model`), read by typed readers (`readers`) section by
section (`settings`, `channels`, `groups`, `tokens`) into one `Config` (`document`).

`load(path)` reads and validates a whole file; `parse(text)` does the same for a string.
Both raise `ConfigError` listing every problem at once, so an operator fixes the file in one go.
"""

from ..errors import ConfigError
from .document import load, parse
from .groups import BACKGROUND_MODELS
from .model import (
    PERIODS,
    Admin,
    Channel,
    Config,
    Database,
    Limits,
    Listen,
    Log,
    ModelGroup,
    Period,
    Price,
    Quota,
    RateLimit,
    Rule,
    Shutdown,
    State,
    Target,
    Timeouts,
    Token,
    TokenGroup,
    hash_key,
)

__all__ = [
    "BACKGROUND_MODELS", "PERIODS", "Admin",
    "Channel", "Config", "ConfigError", "Database", "Limits", "Listen", "Log",
    "ModelGroup", "Period", "Price", "Quota", "RateLimit", "Rule", "Shutdown", "State",
    "Target", "Timeouts", "Token", "TokenGroup", "hash_key", "load", "parse",
]
