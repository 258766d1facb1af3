"""The price catalog: `coderouter prices update` writes genai-prices' prices to a file the
gateway reads (`price_catalog:`); prices written in the YAML win over it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from coderouter.config import parse
from coderouter.config.catalog import read_catalog
from tests.conftest import ALICE, StartGateway
from tests.fakes import FakeUpstream
from tests.test_quotas import call

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"source": "test", "providers": [
    {"id": "anthropic", "api_pattern": r"https://api\.anthropic\.com",
     "models": [{"id": "claude-sonnet-4", "match": {"or": [{"starts_with": "claude-sonnet-4"},
                                                           {"contains": "sonnet-4"}]},
                 "price": {"input": 3, "output": 15, "cached_input": 0.3,
                           "cache_write_5m": 3.75, "cache_write_1h": 6}}]},
    {"id": "deepseek", "api_pattern": r"https://api\.deepseek\.com",
     "models": [{"id": "deepseek-chat", "match": {"equals": "deepseek-chat"},
                 "price": {"input": 0.27, "output": 1.1}}]},
    {"id": "openai", "api_pattern": r"https://api\.openai\.com",
     "models": [{"id": "gpt-4o", "match": {"regex": "^gpt-4o(-2024.*)?$"},
                 "price": {"input": 2.5, "output": 10, "cached_input": 1.25}}]}]}


def written(tmp_path: Path, document: dict[str, Any] = SMALL) -> str:
    path = tmp_path / "prices.json"
    path.write_bytes(orjson.dumps(document))
    return str(path)


def test_a_model_is_priced_by_the_provider_its_base_url_names(tmp_path: Path) -> None:
    catalog = read_catalog(written(tmp_path))
    assert catalog.price("https://api.deepseek.com/v1", "deepseek-chat", "openai").input == 0.27
    assert catalog.price("https://api.anthropic.com", "Claude-Sonnet-4-5", "anthropic").output \
        == 15
    assert catalog.price("http://127.0.0.1:8000/v1", "gpt-4o-2024-08-06", "openai").input == 2.5
    assert catalog.price("http://127.0.0.1:8000/v1", "gpt-4o-mini", "openai") is None
    assert catalog.price("https://api.deepseek.com/v1", "gpt-4o", "openai") is None
    assert catalog.price("http://127.0.0.1:8000", "deepseek-chat", None) is None


def catalog_config(upstream: FakeUpstream, tmp_path: Path, catalog: str,
                   **group: Any) -> dict[str, Any]:
    return {"database": {"path": str(tmp_path / "usage.sqlite")}, "price_catalog": catalog,
            "channels": [{"name": "up", "type": "openai", "base_url": upstream.url,
                          "keys": ["k"], "models": ["gpt-4o"]}],
            "model_groups": [{"name": "smart", "targets": [{"channel": "up",
                                                            "model": "gpt-4o"}], **group}],
            "tokens": [{"name": "alice", "key": ALICE, "quota": {"cost": 100}}]}


def test_check_names_a_missing_catalog_and_stops_warning_about_catalog_priced_names(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    missing = catalog_config(upstream, tmp_path, str(tmp_path / "nope.json"))
    with pytest.raises(Exception, match=r"price_catalog: cannot read .*nope\.json: No such "
                                        r"file or directory \(write it with `coderouter "
                                        r"prices update`\)"):
        parse(yaml.safe_dump(missing))
    config = parse(yaml.safe_dump(catalog_config(upstream, tmp_path, written(tmp_path))))
    assert [w for w in config.warnings if "no price" in w] == []
    assert config.route("gpt-4o").targets[0].price.cached_input == 1.25  # type: ignore[union-attr]


async def test_prices_update_writes_genai_prices_and_the_gateway_bills_at_them(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The real genai-prices package: a row costs what genai-prices itself computes for the
    fake's usage (11 prompt tokens of which 3 cached, 4 completion) on OpenAI's gpt-4o."""
    genai_prices = pytest.importorskip("genai_prices")
    catalog = tmp_path / "prices.json"
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(catalog_config(upstream, tmp_path, str(catalog))))
    done = subprocess.run([sys.executable, "-m", "coderouter", "prices", "update", "-c",
                           str(config_path)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{catalog}: ") and "(genai-prices " in done.stdout
    checked = subprocess.run([sys.executable, "-m", "coderouter", "check", "-c",
                              str(config_path)], capture_output=True, text=True, timeout=60,
                             cwd=ROOT, env=os.environ.copy())
    assert re.fullmatch(rf"  prices from {re.escape(str(catalog))} \(genai-prices [\d.]+, "
                        r"written \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, \d+ models\)",
                        checked.stdout.splitlines()[1]), checked.stdout
    expected = float(genai_prices.calc_price(
        genai_prices.Usage(input_tokens=11, cache_read_tokens=3, output_tokens=4),
        model_ref="gpt-4o", provider_id="openai").total_price)

    gateway = await start_gateway(catalog_config(upstream, tmp_path, str(catalog)))
    assert (await call(gateway))[0] == 200
    assert (await call(gateway, body={"model": "gpt-4o", "messages": []}))[0] == 200
    assert [r["cost"] for r in await gateway.rows()] == [pytest.approx(expected)] * 2


async def test_a_price_in_the_yaml_wins_over_the_catalog(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = await start_gateway(catalog_config(
        upstream, tmp_path, written(tmp_path), price={"input": 1000, "output": 2000}))
    assert (await call(gateway))[0] == 200
    assert (await call(gateway, body={"model": "gpt-4o", "messages": []}))[0] == 200
    assert [r["cost"] for r in await gateway.rows()] == [
        0.019, pytest.approx((8 * 2.5 + 3 * 1.25 + 4 * 10) / 1e6)]


async def test_a_long_prompt_is_billed_at_its_tier(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A YAML price's tiers: the fake's 11-token prompt is over a 10-token tier, so the whole
    request is billed at the tier's rates (its cached_input kept from the base)."""
    tiered = {"input": 1000, "output": 2000, "cached_input": 100,
              "tiers": [{"above": 100, "input": 9000}, {"above": 10, "input": 3000,
                                                        "output": 4000}]}
    gateway = await start_gateway(catalog_config(upstream, tmp_path, written(tmp_path),
                                                 price=tiered))
    assert (await call(gateway))[0] == 200
    [row] = await gateway.rows()
    assert row["cost"] == pytest.approx((8 * 3000 + 3 * 100 + 4 * 4000) / 1e6)


def test_catalog_tiers_bill_as_genai_prices_does(tmp_path: Path) -> None:
    """Claude's long-context tier, written by `prices update` and read back, bills what
    genai-prices itself computes, below and above 200k prompt tokens."""
    genai_prices = pytest.importorskip("genai_prices")
    from coderouter.prices_cli import catalog_from

    document = catalog_from(list(genai_prices.data.providers), genai_prices.__version__)
    catalog = read_catalog(written(tmp_path, document))
    price = catalog.price("https://api.anthropic.com", "claude-sonnet-4-5", "anthropic")
    assert price is not None and [above for above, _ in price.tiers] == [200_000]
    for prompt in (1_000, 250_000):
        theirs = genai_prices.calc_price(genai_prices.Usage(
            input_tokens=prompt, output_tokens=500, cache_read_tokens=prompt // 2,
            cache_write_tokens=prompt // 10), model_ref="claude-sonnet-4-5",
            provider_id="anthropic").total_price
        assert price.cost(prompt, 500, prompt // 2, prompt // 10) == pytest.approx(
            float(theirs))


def test_the_catalog_bills_as_genai_prices_for_every_model_of_the_main_providers(
        tmp_path: Path) -> None:
    """Every model of Anthropic, OpenAI, Google, Mistral and xAI (those without time-of-day
    prices), below and above a long-context tier, with cache reads and writes."""
    genai_prices = pytest.importorskip("genai_prices")
    from coderouter.prices_cli import catalog_from

    document = catalog_from(list(genai_prices.data.providers), genai_prices.__version__)
    catalog = read_catalog(written(tmp_path, document))
    compared = 0
    for provider in genai_prices.data.providers:
        if provider.id not in ("anthropic", "openai", "google", "mistral", "x-ai"):
            continue
        for model in provider.models:
            price = catalog.price("", model.id, provider.id)
            if price is None or isinstance(model.prices, list):
                continue
            for prompt in (1_000, 250_000):
                usage = genai_prices.Usage(input_tokens=prompt, output_tokens=500,
                                           cache_read_tokens=prompt // 2,
                                           cache_write_tokens=prompt // 10)
                theirs = genai_prices.calc_price(usage, model_ref=model.id,
                                                 provider_id=provider.id).total_price
                assert price.cost(prompt, 500, prompt // 2, prompt // 10) == pytest.approx(
                    float(theirs)), (provider.id, model.id, prompt)
                compared += 1
    assert compared > 300
