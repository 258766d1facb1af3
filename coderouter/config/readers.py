"""Typed readers of the raw YAML tree: strings with ${ENV} substitution, numbers, durations,
sizes, dates, choices, lists and mappings with did-you-mean for unknown keys.

Each reader reports a problem under the value's dotted path and returns None, so a whole
file's problems are collected before `ConfigError` is raised once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

#: A field with no default: its absence is an error.
MISSING: Any = object()
#: ``${NAME}``, or ``${NAME:-default}`` (the default when NAME is unset or empty, as in sh).
_Section = TypeVar("_Section")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
               "gb": 1000**3, "gib": 1024**3, None: 1}


class Reader:
    """Reads typed values out of the raw YAML tree, collecting ``(path, message)`` problems
    instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        #: Names of items that are in the file but invalid, by kind: a reference to one is
        #: not reported again (the item's own error says what is wrong).
        self.broken: dict[str, set[str]] = {}

    def error(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    # -- generic readers ------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...],
                secret: bool = False) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {kind_of(value, secret)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suffix = (f"; did you mean '{hint[0]}'?" if hint
                          else f"; expected one of {', '.join(allowed)}")
                self.error(join(path, str(key)), f"unknown key '{key}'{suffix}")
        return value

    def field(self, m: dict[str, Any], path: str, key: str, read: Callable[[Any, str], Any],
              default: Any = MISSING) -> Any:
        where = join(path, key)
        if key not in m or m[key] is None:
            if default is MISSING:
                self.error(where, "is required")
            return None if default is MISSING else default
        return read(m[key], where)

    def string(self, value: Any, path: str, secret: bool = False) -> str | None:
        if isinstance(value, bool):
            self.error(path, f"expected a string, got {str(value).lower()} "
                             "(YAML reads yes/no/on/off as booleans: quote the value)")
            return None
        if not isinstance(value, str | int | float):
            self.error(path, f"expected a string, got {kind_of(value, secret)}")
            return None
        return self.interpolate(str(value), path)

    def secret(self, value: Any, path: str) -> str | None:
        """A string whose value no error message may quote (a key)."""
        return self.string(value, path, secret=True)

    def interpolate(self, text: str, path: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.groups()
            value = self.environ.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self.error(path, f"environment variable {name} is not set")
                return ""
            return value
        return _ENV.sub(replace, text) if "${" in text else text

    def integer(self, value: Any, path: str, minimum: int = 0) -> int | None:
        if isinstance(value, str):
            value = self.interpolate(value, path).replace("_", "")
            with contextlib.suppress(ValueError):
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected a whole number, got {kind_of(value)}")
            return None
        if value < minimum:
            self.error(path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def number(self, value: Any, path: str, minimum: float = 0.0) -> float | None:
        if isinstance(value, str):
            value = self.interpolate(value, path).replace("_", "")
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.error(path, f"expected a number, got {kind_of(value)}")
            return None
        if value < minimum:
            self.error(path, f"must be at least {minimum:g}, got {value:g}")
            return None
        return float(value)

    def positive(self, value: Any, path: str) -> float | None:
        number = self.number(value, path)
        if number is not None and number <= 0:
            self.error(path, f"must be greater than 0, got {number:g}")
            return None
        return number

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {kind_of(value)}")
            return None
        return value

    def duration(self, value: Any, path: str) -> float | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                self.error(path, f"must not be negative, got {value}")
                return None
            return float(value)
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            self.error(path, f"expected a duration such as 30s, 500ms, 5m, 1h or 7d, got {value!r}")
            return None
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]

    def size(self, value: Any, path: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = _SIZE.match(value) if isinstance(value, str) else None
        if not match:
            self.error(path, f"expected a size such as 65536, 64KiB or 20MiB, got {value!r}")
            return None
        unit = match.group(2).lower() if match.group(2) else None
        return int(float(match.group(1)) * _SIZE_UNITS[unit])

    def choice(self, options: tuple[str, ...]) -> Callable[[Any, str], str | None]:
        def read(value: Any, path: str) -> str | None:
            if value not in options:
                self.error(path, f"expected one of {', '.join(options)}, got {value!r}")
                return None
            return str(value)
        return read

    def strings(self, value: Any, path: str, secret: bool = False) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {kind_of(value, secret)}")
            return None
        items = [self.string(item, f"{path}[{i}]", secret) for i, item in enumerate(value)]
        return tuple(item for item in items if item is not None)

    def secrets(self, value: Any, path: str) -> tuple[str, ...] | None:
        """A list of strings no error message may quote (keys)."""
        return self.strings(value, path, secret=True)

    def headers(self, value: Any, path: str) -> dict[str, str] | None:
        """A mapping of header names to values; values may be credentials, never quoted."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {kind_of(value, secret=True)}")
            return None
        out = {}
        for name, item in value.items():
            text = self.string(item, join(path, str(name)), secret=True)
            if text is not None:
                out[str(name)] = text
        return out

    def moment(self, value: Any, path: str) -> float | None:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                self.error(path, f"expected a date or datetime such as 2027-01-01, got {value!r}")
                return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if not isinstance(value, dt.datetime):
            self.error(path, f"expected a date or datetime, got {kind_of(value)}")
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {kind_of(value)}")
            return []
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]

    def section(self, raw: dict[str, Any], key: str, cls: type[_Section],
                spec: Mapping[str, Callable[[Any, str], Any]]) -> _Section:
        """Read a flat mapping section whose every key is optional and typed by *spec*."""
        m = self.mapping(raw.get(key) or {}, key, tuple(spec), secret=key == "admin")
        if m is None:
            return cls()
        values = {k: read(m[k], join(key, k)) for k, read in spec.items() if m.get(k) is not None}
        return cls(**{k: v for k, v in values.items() if v is not None})

    def lookup(self, table: Mapping[str, Any], name: str | None, path: str, what: str) -> Any:
        """``table[name]``, or None with a did-you-mean error when *name* is not there."""
        if name is None:
            return None
        found = table.get(name)
        if found is None and name not in self.broken.get(what, ()):
            hint = difflib.get_close_matches(name, list(table), n=1)
            suffix = f"; did you mean '{hint[0]}'?" if hint else ""
            self.error(path, f"no {what} named '{name}'{suffix}")
        return found

    def unique(self, section: str, named: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
        seen: set[str] = set()
        for item, path in named:
            if item.name in seen:
                self.error(join(path, "name"), f"duplicate {section} name '{item.name}'")
            seen.add(item.name)
        return named



def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: Any, secret: bool = False) -> str:
    """What *value* is, for an error message; a *secret* one is named by its type only."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if secret:
        return f"a {type(value).__name__} (value not shown)"
    return f"{type(value).__name__} {value!r}"
