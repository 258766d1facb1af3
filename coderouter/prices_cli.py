"""`coderouter prices update`: write the price catalog (`config.catalog`) from genai-prices.

genai-prices (MIT, kept by the pydantic team) is an optional extra (``pip install
'coderouter[prices]'``): it pulls in pydantic, which the gateway itself does without. Only
this command imports it; the gateway reads the JSON it writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import yaml

#: genai-prices' per-million-token keys -> ours (`config.model.Price`).
_KEYS = {"input_mtok": "input", "output_mtok": "output", "cache_read_mtok": "cached_input",
         "cache_write_mtok": "cache_write_5m", "cache_write_1h_mtok": "cache_write_1h"}
_CLAUSES = {"ClauseEquals": ("equals", "equals"), "ClauseStartsWith": ("starts_with",
                                                                       "starts_with"),
            "ClauseEndsWith": ("ends_with", "ends_with"), "ClauseContains": ("contains",
                                                                             "contains"),
            "ClauseRegex": ("regex", "regex"), "ClauseOr": ("or", "or_"),
            "ClauseAnd": ("and", "and_")}


def catalog_from(providers: list[Any], version: str) -> dict[str, Any]:
    """The catalog document of genai-prices' *providers*: each model's standard token price
    (of time-of-day prices, the one in force most of the day; prompt-length tiers kept)."""
    return {
        "source": f"genai-prices {version}",
        "written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "providers": [{"id": p.id, "api_pattern": p.api_pattern,
                       "models": [m for model in p.models
                                  if (m := _model(model)) is not None]}
                      for p in providers],
    }


def _model(model: Any) -> dict[str, Any] | None:
    prices = model.prices
    if isinstance(prices, list):
        prices = _standing(prices)
    price = {ours: _number(getattr(prices, theirs, None)) for theirs, ours in _KEYS.items()}
    price = {k: v for k, v in price.items() if v is not None}
    if "input" not in price or "output" not in price:
        return None
    tiers = _tiers(prices)
    # a provider without cache-write prices bills writes as input, as genai-prices does (our
    # YAML default of 1.25x and 2x input is Anthropic's)
    missing = [w for w in ("cache_write_5m", "cache_write_1h") if w not in price]
    for rates in (price, *tiers):
        if "input" in rates:
            for write in missing:
                rates[write] = rates.get("cache_write_5m", rates["input"])
    return {"id": model.id, "match": _clause(model.match),
            "price": {**price, "tiers": tiers} if tiers else price}


def _tiers(prices: Any) -> list[dict[str, Any]]:
    """Prompt-length tiers: for each length some rate changes above, every tiered rate."""
    tiered = {ours: value for theirs, ours in _KEYS.items()
              if (value := getattr(prices, theirs, None)) is not None and hasattr(value, "tiers")}
    starts = sorted({tier.start for value in tiered.values() for tier in value.tiers})
    return [{"above": start, **{ours: float(next(
        (t.price for t in reversed(value.tiers) if t.start <= start), value.base))
        for ours, value in tiered.items()}} for start in starts]


def _standing(conditional: list[Any]) -> Any:
    """Of conditional prices, the one in force for most of today (UTC), as genai-prices
    picks them (the last whose condition holds, else the first): a rate for a few hours
    (DeepSeek's peak or off-peak) is not billed as the rule."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    minutes: dict[int, int] = {}
    for minute in range(0, 24 * 60, 5):
        moment = today + dt.timedelta(minutes=minute)
        chosen = next((i for i in reversed(range(len(conditional)))
                       if conditional[i].constraint is None
                       or conditional[i].constraint.active(moment)), 0)
        minutes[chosen] = minutes.get(chosen, 0) + 5
    return conditional[max(minutes, key=lambda i: minutes[i])].prices


def _number(value: Any) -> float | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # tiered by prompt length: the base rate (`_tiers`)
    return float(base) if isinstance(base, Decimal | int | float) else None


def _clause(clause: Any) -> dict[str, Any]:
    name, attribute = _CLAUSES[type(clause).__name__]
    value = getattr(clause, attribute)
    return {name: [_clause(c) for c in value] if name in ("or", "and") else value}


def cmd_update(args: argparse.Namespace) -> int:
    try:
        import genai_prices
        from genai_prices import data
    except ImportError:
        print("coderouter prices update needs genai-prices: pip install 'coderouter[prices]'",
              file=sys.stderr)
        return 1
    output = args.output or _configured(args.config) or "prices.json"
    document = catalog_from(list(data.providers), genai_prices.__version__)
    temporary = f"{output}.tmp"
    with open(temporary, "wb") as f:
        f.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    os.replace(temporary, output)
    models = sum(len(p["models"]) for p in document["providers"])
    print(f"{output}: {models} models of {len(document['providers'])} providers "
          f"({document['source']})")
    return 0


def _configured(given: str | None) -> str | None:
    """The config's ``price_catalog`` path, when a config is given and names one."""
    if given is None:
        return None
    try:
        with open(given, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    path = document.get("price_catalog") if isinstance(document, dict) else None
    return path if isinstance(path, str) else None


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser],
                                                 argparse.ArgumentParser]) -> None:
    prices = sub.add_parser("prices", help="the price catalog").add_subparsers(
        dest="action", required=True)
    update = with_config(prices.add_parser(
        "update", help="write the price catalog from genai-prices (pip install "
                       "'coderouter[prices]')"))
    update.add_argument("-o", "--output", help="the catalog file (default: the config's "
                                               "price_catalog, else ./prices.json)")
    update.set_defaults(func=cmd_update)
