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

from coderouter.config.channels import CHANNEL_KEYS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coderouter", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_check_accepts_the_example_config() -> None:
    """`check` prints a one-line summary and exits 0 for the shipped example."""
    done = run("check", "-c", str(EXAMPLE))
    assert done.returncode == 0
    assert done.stdout == (f"{EXAMPLE}: ok: 1 channel, 3 routable models, 1 token group, "
                           "1 token\n")


def test_check_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    """`check` prints every problem with its YAML path and exits 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels:\n  - {name: a, type: mock, wat: 1}\n"
                   "model_groups:\n  - {name: g, targets: [{channel: azur, model: m}]}\n")
    done = run("check", "-c", str(bad))
    assert done.returncode == 1
    assert done.stderr == (
        f"{bad}: invalid config\n"
        "  channels[0].wat (line 2): unknown key 'wat'; expected one of "
        f"{', '.join(CHANNEL_KEYS)}\n"
        "  model_groups[0].targets[0].channel (line 4): no channel named 'azur'\n")


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
            # the dashboard works on the first run: the example's admin key
            async with http.get(f"http://127.0.0.1:{port}/admin/overview?range=24h",
                                headers={"Authorization":
                                         "Bearer sk-cr-admin-demo-change-me"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["totals"]["requests"] >= 0
            async with http.get(f"http://127.0.0.1:{port}/dashboard") as resp:
                assert resp.status == 200
        assert body["choices"][0]["message"]["content"] == (
            "Hello from the Code Router mock channel. You said: hello")
        assert body["model"] == "mock-1"
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert b"sk-cr-demo-key-change-me" not in stderr


async def test_usage_into_a_reader_that_leaves_stops_quietly(tmp_path: Path) -> None:
    """`coderouter usage | head -1`: no BrokenPipe traceback when the reader goes away."""
    import aiosqlite

    from coderouter.usage import migrate

    database = tmp_path / "usage.sqlite"
    async with aiosqlite.connect(database) as db:
        await migrate(db)
        await db.executemany(
            "INSERT INTO usage (ts, request_id, token, endpoint, status) VALUES (?, ?, ?, ?, ?)",
            [(1.7e9, f"req_{i}", f"token-{i:05d}", "/v1/chat/completions", 200)
             for i in range(5000)])
        await db.commit()
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {database}}}\n")
    with subprocess.Popen([sys.executable, "-m", "coderouter", "usage", "-c", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().split()[0] == b"token"
        proc.stdout.close()  # as head does after its first line
        stderr = proc.stderr.read()
        assert proc.wait(60) == 141
    assert stderr == b""


def test_serve_logs_serving_only_once_bound(tmp_path: Path) -> None:
    """A port already taken: the log says it cannot listen, never that it is serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"listen: {{host: 127.0.0.1, port: {port}}}\n"
                          f"database: {{path: {tmp_path / 'usage.sqlite'}}}\n")
        done = run("serve", "-c", str(config))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "serving" not in done.stderr


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    """`coderouter check` of a file holding *text*: its exit code and its stderr, with the
    file's path written as FILE."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    done = run("check", "-c", str(path))
    return done.returncode, done.stderr.replace(str(path), "FILE")


def test_check_refuses_a_key_given_twice(tmp_path: Path) -> None:
    """`cooldown: 30s` then `cooldown: 0` in one group: an error naming both lines, where
    YAML alone would silently turn cooldown off."""
    assert check(tmp_path, "channels: [{name: m, type: mock, models: [x]}]\n"
                           "model_groups:\n"
                           "  - name: g\n"
                           "    targets: [{channel: m, model: x}]\n"
                           "    cooldown: 30s\n"
                           "    cooldown: 0\n") == (1, (
        "FILE: invalid config\n"
        "  model_groups[0].cooldown (line 5): given twice (lines 5 and 6); YAML would keep "
        "only the last\n"))


def test_check_reports_one_mistake_once_and_warns_about_dead_globs(tmp_path: Path) -> None:
    """A channel with a bad type is one error, not one more per target naming it; an
    allow-list entry that matches no routable name is a warning (a typo there refuses the
    requests it was meant to allow)."""
    assert check(tmp_path, "channels: [{name: up, type: opnai, models: [x]}, "
                           "{name: m, type: mock, models: [y]}]\n"
                           "model_groups:\n"
                           "  - {name: g, targets: [{channel: up, model: x}]}\n"
                           "  - {name: h, targets: [{channel: up, model: x}]}\n") == (1, (
        "FILE: invalid config\n"
        "  channels[0].type (line 1): expected one of openai, anthropic, azure, gemini, mock, "
        "got 'opnai'\n"))
    assert check(tmp_path, "channels: [{name: m, type: mock, models: [y]}]\n"
                           "model_groups: [{name: c, aliases: ['claude-*'], "
                           "targets: [{channel: m, model: y}]}]\n"
                           "token_groups: [{name: team, models: [y, 'claude-3*', 'gtp-*']}]\n"
                 ) == (0, "warning: token_groups[0].models[2]: 'gtp-*' matches no routable "
                          "model\n")
