"""Prices in the config: a group's default, a target's own, a channel's per model.

A target costs what its provider charges: its own ``price:``, else its channel's
``prices:`` entry for its model, else its group's ``price:``. The price is resolved here, once,
when the config is read, so a served request's row reads it off the target that answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ..channels import KINDS
from .catalog import Catalog, CatalogError, read_catalog
from .model import ModelGroup, Price, Target
from .readers import Reader, join

RATES = ("input", "output", "cached_input", "cache_write_5m", "cache_write_1h")
PRICE_KEYS = (*RATES, "tiers")


def price(r: Reader, raw: Any, path: str) -> Price | None:
    """A ``price:`` mapping (USD per million tokens), or None when absent or broken."""
    if raw is None:
        return None
    p = r.mapping(raw, path, PRICE_KEYS)
    if p is None:
        return None
    values = {k: r.number(p[k], join(path, k)) for k in p if k in RATES}
    if "input" not in p or "output" not in p:
        r.error(path, "needs both input and output (USD per 1M tokens)")
        return None
    tiers = [_tier(r, item, where, values) for where, item in r.items(p.get("tiers"),
                                                                     join(path, "tiers"))]
    if None in values.values() or None in tiers:
        return None
    ordered = tuple(sorted((t for t in tiers if t is not None), key=lambda t: t[0]))
    return Price(**values, tiers=ordered)  # type: ignore[arg-type]


def _tier(r: Reader, raw: Any, path: str, base: dict[str, Any]) -> tuple[int, Price] | None:
    """One of a price's ``tiers``: ``above`` prompt tokens, the rates it changes."""
    m = r.mapping(raw, path, ("above", *RATES))
    if m is None:
        return None
    above = r.field(m, path, "above", lambda v, p: r.integer(v, p, 0))
    values = {**base, **{k: r.number(m[k], join(path, k)) for k in m if k in RATES}}
    if above is None or None in values.values():
        return None
    return above, Price(**values)


def prices(r: Reader, raw: Any, path: str) -> dict[str, Price] | None:
    """A channel's ``prices:``: upstream model name -> price."""
    if not isinstance(raw, dict):
        r.error(path, "expected a mapping of model name to price")
        return None
    found = {str(model): p for model, item in raw.items()
             if (p := price(r, {} if item is None else item, join(path, str(model))))
             is not None}
    return None if len(found) < len(raw) else found


def priced(targets: Iterable[Target], default: Price | None,
           catalog: Catalog | None) -> tuple[Target, ...]:
    """*targets*, each carrying what it costs: its own price, its channel's for its model,
    *default* (the group's), else the catalog's for its provider and model."""
    return tuple(t if t.price is not None else dataclasses.replace(
        t, price=t.channel.prices.get(t.model) or default or catalog_price(catalog, t))
        for t in targets)


def catalog_price(catalog: Catalog | None, target: Target) -> Price | None:
    if catalog is None:
        return None
    kind = KINDS.get(target.channel.type)
    return catalog.price(target.channel.base_url, target.model,
                         kind.price_provider if kind is not None else None)


def read_price_catalog(r: Reader, raw: Any) -> tuple[str | None, Catalog | None]:
    """The ``price_catalog:`` path and the catalog it holds (None, None when not set)."""
    path = r.string(raw, "price_catalog") if raw is not None else None
    if path is None:
        return None, None
    try:
        return path, read_catalog(path)
    except OSError as exc:
        r.error("price_catalog", f"cannot read {path}: {exc.strerror} (write it with "
                                 "`coderouter prices update`)")
    except CatalogError as exc:
        r.error("price_catalog", f"{path}: {exc}")
    return path, None


def dearest_cost(targets: Iterable[Target], prompt: int, completion: int) -> float:
    """What the dearest of *targets* would charge for a request, for admission: a quota
    reserves the most any failover could cost."""
    return max((t.price.cost(prompt, completion) for t in targets if t.price is not None),
               default=0.0)


def unpriced(routes: Mapping[str, ModelGroup]) -> list[tuple[str, Target]]:
    """Each (routable name, target) that serves without a price: its rows cost $0."""
    found: list[tuple[str, Target]] = []
    for name, group in routes.items():
        targets = [*group.targets, *(t for rule in group.rules for t in rule.targets)]
        found.extend((name, t) for t in targets if t.price is None)
    return found
