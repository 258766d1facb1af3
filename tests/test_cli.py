"""The `coderouter` command as an operator runs it, in subprocesses."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coderouter", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_check_accepts_the_example_config() -> None:
    """`check` prints a one-line summary and exits 0 for the shipped example."""
    done = run("check", "-c", str(EXAMPLE))
    assert done.returncode == 0
    assert done.stdout == (f"{EXAMPLE}: ok: 1 channels, 3 routable models, 1 token groups, "
                           "1 tokens\n")


def test_check_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    """`check` prints every problem with its YAML path and exits 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels:\n  - {name: a, type: mock, wat: 1}\n"
                   "model_groups:\n  - {name: g, targets: [{channel: azur, model: m}]}\n")
    done = run("check", "-c", str(bad))
    assert done.returncode == 1
    assert done.stderr == (
        f"{bad}: invalid config\n"
        "  channels[0].wat: unknown key 'wat'; expected one of name, type, base_url, keys, "
        "headers, forward_headers, models, timeout, api_version, enabled, responses\n"
        "  model_groups[0].targets[0].channel: no channel named 'azur'\n")


def test_check_reads_coderouter_config_from_the_environment(tmp_path: Path) -> None:
    """Without -c the path comes from $CODEROUTER_CONFIG."""
    done = run("check", env={"CODEROUTER_CONFIG": str(tmp_path / "missing.yaml")})
    assert done.returncode == 1
    assert "cannot read" in done.stderr and "missing.yaml" in done.stderr


def test_token_new_prints_a_key_and_its_hash() -> None:
    """`token new` prints sk-cr- plus 40+ url-safe characters and the key's SHA-256."""
    done = run("token", "new", "--name", "carol")
    assert done.returncode == 0
    key = re.search(r"^key:\s+(\S+)$", done.stdout, re.M)
    digest = re.search(r"^key_sha256: ([0-9a-f]{64})$", done.stdout, re.M)
    assert key and digest
    assert re.fullmatch(r"sk-cr-[A-Za-z0-9_-]{40,}", key.group(1))
    assert hashlib.sha256(key.group(1).encode()).hexdigest() == digest.group(1)
    snippet = done.stdout[done.stdout.index("  - name:"):]
    assert yaml.safe_load(snippet) == [{"name": "carol", "key_sha256": digest.group(1)}]
    assert run("token", "new").stdout != done.stdout


async def test_serve_answers_the_readme_curl(tmp_path: Path) -> None:
    """The README's first command and curl: serve the example, get a mock completion."""
    config = yaml.safe_load(EXAMPLE.read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config["listen"]["port"] = port
    config["database"]["path"] = str(tmp_path / "usage.sqlite")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coderouter", "serve", "-c", str(path), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with http.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    headers={"Authorization": "Bearer sk-cr-demo-key-change-me"},
                    json={"model": "smart",
                          "messages": [{"role": "user", "content": "hello"}]}) as resp:
                assert resp.status == 200
                body = await resp.json()
        assert body["choices"][0]["message"]["content"] == (
            "Hello from the Code Router mock channel. You said: hello")
        assert body["model"] == "mock-1"
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert b"sk-cr-demo-key-change-me" not in stderr
