"""A careless operator's file cannot stall or kill the gateway: reloads parse off the event loop,
alias bombs and deep nesting are refused before anything is built, and every loader failure is
a config error with its path; the watcher survives it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from coderouter.config import hash_key, parse
from coderouter.config.yamlload import MAX_DEPTH, MAX_VALUES, measure
from coderouter.errors import ConfigError
from tests.conftest import ALICE, BOB, StartGateway, base_config
from tests.fakes import FakeUpstream
from tests.service import serving, until

ADMIN = "admin-key-12345"


def big_config(upstream_url: str, tmp_path: Path, tokens: int) -> dict[str, Any]:
    """`base_config` with *tokens* more tokens: about 150 bytes of YAML each."""
    config = base_config(upstream_url, tmp_path)
    config["admin"] = {"key": ADMIN}
    config["tokens"] += [{"name": f"user-{i:06d}", "key_sha256": hash_key(f"k-{i}").hex(),
                          "group": "team", "quota": {"tokens": 1000 + i, "period": "day"}}
                         for i in range(tokens)]
    return config


async def test_a_large_reload_does_not_stall_the_event_loop(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """A ~1.5 MB config reloaded through /admin/reload: the longest event-loop stall during the
    reload is a small fraction of what parsing the file takes (it used to be all of it)."""
    gateway = await start_gateway(big_config(upstream.url, tmp_path, 10))
    text = yaml.safe_dump(big_config(upstream.url, tmp_path, 10_000))
    assert len(text) > 1_000_000
    started = time.perf_counter()
    parse(text)
    parse_time = time.perf_counter() - started
    gateway.config_path.write_text(text)

    stalls: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.002)
            stalls.append(loop.time() - before - 0.002)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/admin/reload",
                             headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["reloaded"] is True
    done.set()
    await ticker
    assert len(gateway.state.holder.current.tokens) == 10_002
    print(f"longest stall {max(stalls) * 1000:.1f} ms, parse {parse_time * 1000:.0f} ms")
    assert max(stalls) < parse_time / 4, (max(stalls), parse_time)


def alias_bomb(levels: int = 9, fan: int = 6) -> str:
    """A small file whose aliases stand for fan**levels route targets."""
    lines = ["x0: &x0 [{channel: up, model: m}]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * fan) + "]")
    lines.append(f"model_groups: [{{name: g, targets: *x{levels - 1}}}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    """A 0.5 KB file standing for ten million targets: refused by its expanded size."""
    text = alias_bomb()
    assert len(text) < 1000
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.problems == [
        ("", f"refused: the document stands for more than {MAX_VALUES} values once its "
             "aliases are expanded")]


def test_measure_counts_aliases_expanded_and_finds_cycles() -> None:
    node = yaml.compose("a: &a [1, 2]\nb: [*a, *a, *a]\n", Loader=yaml.SafeLoader)
    assert measure(node) == (1 + (1 + 3) + (1 + 1 + 3 * 3), 4)  # mapping, a: [1, 2], b: 3 x a
    with pytest.raises(ValueError, match="contains itself"):
        measure(yaml.compose("a: &a [*a]\n", Loader=yaml.SafeLoader))


@pytest.mark.parametrize("depth", [330, 2000])
def test_deep_nesting_is_a_config_error(depth: int) -> None:
    """Nesting past MAX_DEPTH (or past libyaml's own 1000) is an error, not a RecursionError."""
    text = "channels: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ConfigError) as caught:
        parse(text)
    [(path, message)] = caught.value.problems
    assert path == ""
    assert f"more than {MAX_DEPTH} levels" in message or "nesting depth" in message


def test_an_impossible_date_names_its_path(tmp_path: Path) -> None:
    """expires: 2027-02-30 is reported at tokens[0].expires by `check`, no traceback."""
    config = base_config("http://127.0.0.1:9", tmp_path)
    config["tokens"][0]["expires"] = "DATE"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config).replace("DATE", "2027-02-30"))
    done = subprocess.run([sys.executable, "-m", "coderouter", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines())
                    if "2027-02-30" in text)
    assert f"tokens[0].expires (line {line}): expected a date or datetime such as 2027-01-01, " \
           "got '2027-02-30'" in done.stderr


async def test_the_watcher_survives_a_bad_file_and_applies_the_next_one(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """A save with an impossible date is refused and logged; the next save (a revocation)
    still applies: the watcher did not die."""
    config = base_config(upstream.url, tmp_path)
    async with serving(config, tmp_path) as gateway:
        broken = yaml.safe_dump({**gateway.config, "tokens": [
            {**gateway.config["tokens"][0], "expires": "DATE"}, gateway.config["tokens"][1]]})
        gateway.config_path.write_text(broken.replace("DATE", "2027-02-30"))
        line = 1 + broken.splitlines().index(next(text for text in broken.splitlines()
                                                  if "DATE" in text))
        await gateway.line(f"tokens[0].expires (line {line}): expected a date or datetime")
        revoked = {**gateway.config, "tokens": [{**gateway.config["tokens"][0],
                                                  "enabled": False},
                                                 gateway.config["tokens"][1]]}
        gateway.write_config(revoked)

        async def alice_refused() -> bool:
            async with aiohttp.ClientSession() as http:
                async with http.get(gateway.url + "/v1/models",
                                    headers={"Authorization": f"Bearer {ALICE}"}) as resp:
                    return resp.status == 401
        await until(alice_refused, "the revocation to apply")
        async with aiohttp.ClientSession() as http:
            async with http.get(gateway.url + "/v1/models",
                                headers={"Authorization": f"Bearer {BOB}"}) as resp:
                assert resp.status == 200
