"""The price catalog (``price_catalog:``): providers' published prices, so operators need not
type them. Written by `coderouter prices update` from the genai-prices package, read here
without it (the serving process stays lean: no pydantic).

The file is JSON::

    {"source": "genai-prices 0.2.5", "written": "2026-12-07T12:00:00Z",
     "providers": [{"id": "anthropic", "api_pattern": "https://api\\\\.anthropic\\\\.com",
                    "models": [{"id": "claude-sonnet-4",
                                "match": {"starts_with": "claude-sonnet-4"},
                                "price": {"input": 3, "output": 15, "cached_input": 0.3,
                                          "cache_write_5m": 3.75, "cache_write_1h": 6}}]}]}

``match`` is a tree of ``equals``, ``starts_with``, ``ends_with``, ``contains``, ``regex``,
``or`` and ``and`` clauses tested on the lower-cased upstream model name, as genai-prices does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .model import Price

Match = Callable[[str], bool]
_RATES = ("input", "output", "cached_input", "cache_write_5m", "cache_write_1h")


class CatalogError(ValueError):
    """The catalog file is not one `coderouter prices update` wrote."""


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    api_pattern: re.Pattern[str] | None
    models: tuple[tuple[Match, Price], ...]

    def price(self, model: str) -> Price | None:
        name = model.lower()
        return next((price for match, price in self.models if match(name)), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    source: str
    providers: tuple[Provider, ...]
    written: str = ""

    def describe(self) -> str:
        """``genai-prices 0.2.5, written 2026-12-07T12:00:00Z, 2056 models``."""
        models = sum(len(p.models) for p in self.providers)
        return ", ".join(part for part in (self.source, self.written and f"written "
                                           f"{self.written}", f"{models} models") if part)

    def price(self, base_url: str, model: str, kind_provider: str | None) -> Price | None:
        """*model*'s price at the provider whose API pattern matches *base_url*, else at the
        channel kind's own provider (*kind_provider*), else None."""
        for provider in self.providers:
            if provider.api_pattern is not None and provider.api_pattern.match(base_url):
                return provider.price(model)
        provider_ = next((p for p in self.providers if p.id == kind_provider), None)
        return None if provider_ is None else provider_.price(model)


def read_catalog(path: str) -> Catalog:
    """The catalog in the file at *path*; `OSError` or `CatalogError` when it cannot be read."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = orjson.loads(raw)
        return Catalog(source=str(data.get("source", "")),
                       providers=tuple(_provider(p) for p in data["providers"]),
                       written=str(data.get("written", "")))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
            re.error) as exc:
        raise CatalogError(f"not a price catalog ({type(exc).__name__}: {exc}); write it "
                           "with `coderouter prices update`") from None


def _provider(raw: dict[str, Any]) -> Provider:
    pattern = raw.get("api_pattern")
    return Provider(id=str(raw["id"]), api_pattern=re.compile(pattern) if pattern else None,
                    models=tuple((matcher(m["match"]), _price(m["price"]))
                                 for m in raw["models"]))


def _price(raw: dict[str, Any]) -> Price:
    values = _values(raw)
    tiers = tuple((int(t["above"]), _rates({**values, **_values(t)}))
                  for t in raw.get("tiers") or ())
    return _rates(values, tiers)


def _values(raw: dict[str, Any]) -> dict[str, float]:
    return {k: float(raw[k]) for k in _RATES if raw.get(k) is not None}


def _rates(values: dict[str, float], tiers: tuple[tuple[int, Price], ...] = ()) -> Price:
    return Price(input=values["input"], output=values["output"],
                 cached_input=values.get("cached_input"),
                 cache_write_5m=values.get("cache_write_5m"),
                 cache_write_1h=values.get("cache_write_1h"), tiers=tiers)


def matcher(clause: dict[str, Any]) -> Match:
    """A test of a lower-cased model name from a ``match`` clause tree."""
    [(kind, value)] = clause.items()
    if kind in ("or", "and"):
        parts = [matcher(c) for c in value]
        combine = any if kind == "or" else all
        return lambda name: combine(p(name) for p in parts)
    text = str(value)
    tests: dict[str, Match] = {
        "equals": lambda name: name == text,
        "starts_with": lambda name: name.startswith(text),
        "ends_with": lambda name: name.endswith(text),
        "contains": lambda name: text in name,
    }
    if kind == "regex":
        pattern = re.compile(text)
        return lambda name: pattern.search(name) is not None
    return tests[kind]
