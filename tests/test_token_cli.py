"""`coderouter token new --append | list | disable | rotate`: edits of the config file that
keep its comments and order, picked up by a running gateway's live reload."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from coderouter.config import parse
from coderouter.config.edit import EditError, append_token, set_token_field
from tests.conftest import ALICE, StartGateway
from tests.fakes import FakeUpstream
from tests.service import until
from tests.test_postgres import chat, pg_config

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "0" * 64
COMMENTED = f"""\
# my gateway
channels:
  - name: local   # the mock
    type: mock
    models: [mock-1]

tokens:
  # alice is the admin's
  - name: alice
    key: sk-cr-alice-0123456789abcdefghij   # plaintext for now
    models:
      - mock-1
  - {{name: bob, key_sha256: "{DIGEST}"}}

# how long a stop may take
shutdown:
  grace: 5s
"""


def coderouter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coderouter", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=os.environ.copy())


def key_of(output: str) -> str:
    found = re.search(r"^key:\s+(sk-cr-\S+)$", output, re.M)
    assert found, output
    return found.group(1)


def test_append_keeps_every_comment_and_the_order() -> None:
    edited = append_token(COMMENTED, [("name", "erin"), ("key_sha256", f'"{DIGEST[:-1]}1"'),
                                      ("models", '[mock-1, "m*"]')])
    assert edited == COMMENTED.replace(
        f'  - {{name: bob, key_sha256: "{DIGEST}"}}\n',
        f'  - {{name: bob, key_sha256: "{DIGEST}"}}\n'
        f'  - name: erin\n    key_sha256: "{DIGEST[:-1]}1"\n    models: [mock-1, "m*"]\n')
    assert [t.name for t in parse(edited).tokens] == ["alice", "bob", "erin"]


@pytest.mark.parametrize(("before", "after"), [
    ("x: 1\n", "x: 1\ntokens:\n  - name: erin\n    group: team\n"),
    ("x: 1", "x: 1\ntokens:\n  - name: erin\n    group: team\n"),
    ("tokens: []\nx: 1\n", "tokens: [{name: erin, group: team}]\nx: 1\n"),
    ("tokens:\nx: 1\n", "tokens:\n  - name: erin\n    group: team\nx: 1\n"),
])
def test_append_where_there_is_no_token_list_yet(before: str, after: str) -> None:
    assert append_token(before, [("name", "erin"), ("group", "team")]) == after


def test_disable_and_rotate_edit_only_their_token() -> None:
    disabled = set_token_field(COMMENTED, "bob", "enabled", "false")
    assert disabled == COMMENTED.replace(f'{DIGEST}"}}', f'{DIGEST}", enabled: false}}')
    rotated = set_token_field(COMMENTED, "alice", "key_sha256", f'"{DIGEST}"',
                              replaces=("key",))
    assert rotated == COMMENTED.replace(
        "    key: sk-cr-alice-0123456789abcdefghij   # plaintext for now",
        f'    key_sha256: "{DIGEST}"   # plaintext for now')
    twice = set_token_field(set_token_field(COMMENTED, "alice", "enabled", "false"),
                            "alice", "enabled", "true")
    assert twice == COMMENTED.replace("      - mock-1\n", "      - mock-1\n    enabled: true\n")
    with pytest.raises(EditError, match="no token named 'carol'"):
        set_token_field(COMMENTED, "carol", "enabled", "false")


def test_token_new_says_plainly_that_no_group_and_no_models_means_everything(
        tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED)
    done = coderouter("token", "new", "--name", "erin", "--append", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert "may use every model, without limit" in done.stdout
    limited = coderouter("token", "new", "--name", "fay", "--models", "mock-1", "--append",
                         "-c", str(path))
    assert "without limit" not in limited.stdout
    assert "# the mock" in path.read_text()


def test_an_edit_that_breaks_the_config_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED)
    done = coderouter("token", "new", "--name", "alice", "--append", "-c", str(path))
    assert done.returncode == 1
    assert "the edit would make an invalid config; the file is unchanged" in done.stderr
    assert "sk-cr-" not in done.stdout + done.stderr
    assert path.read_text() == COMMENTED


async def test_new_rotate_disable_and_list_on_a_running_gateway(
        start_gateway: StartGateway, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each edit is live once the gateway's watcher reloads the file; no key is logged."""
    caplog.set_level(logging.INFO)
    config = yaml.safe_load(COMMENTED)
    config["database"] = {"path": str(tmp_path / "usage.sqlite")}
    config["token_groups"] = [{"name": "team", "models": ["mock-1"]}]
    config["tokens"][0] = {"name": "alice", "key": ALICE}
    gateway = await start_gateway(config, watch=True)
    path = str(gateway.config_path)

    async def status(key: str) -> int:
        async with aiohttp.ClientSession() as http, http.post(
                gateway.url + "/v1/chat/completions", json={"model": "mock-1"},
                headers={"Authorization": f"Bearer {key}"}) as resp:
            await resp.read()
            return resp.status

    async def answers(key: str, expected: int) -> bool:
        return await status(key) == expected

    done = coderouter("token", "new", "--name", "erin", "--group", "team", "--append", "-c",
                      path)
    assert done.returncode == 0, done.stderr
    first = key_of(done.stdout)
    await until(lambda: answers(first, 200), "erin's key to be served")

    done = coderouter("token", "rotate", "erin", "-c", path)
    assert done.returncode == 0, done.stderr
    second = key_of(done.stdout)
    await until(lambda: answers(second, 200), "erin's new key to be served")
    assert await status(first) == 401

    await gateway.state.writer.flush()
    listed = coderouter("token", "list", "-c", path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["name", "group", "models", "enabled", "expires", "last_used"]
    erin = next(line for line in lines if line.startswith("erin"))
    assert erin.split()[:5] == ["erin", "team", "(group's)", "yes", "-"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$", erin)
    assert next(line for line in lines if line.startswith("bob")).endswith(" -")

    done = coderouter("token", "disable", "erin", "-c", path)
    assert done.returncode == 0, done.stderr
    await until(lambda: answers(second, 401), "erin's disabled key to be refused")
    assert await status(ALICE) == 200
    text = Path(path).read_text()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert first not in text + logged and second not in text + logged
    assert [line.rsplit("; ", 1)[-1] for line in logged.splitlines()
            if line.startswith("config reloaded")] == [
        "+token erin", "token erin changed", "token erin disabled"]


async def test_token_list_reads_last_use_from_postgres(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path,
        postgres_url: str) -> None:
    gateway = await start_gateway(pg_config(upstream, tmp_path, postgres_url))
    async with aiohttp.ClientSession() as http:
        assert await chat(http, gateway.url) == 200
    await gateway.stop()
    listed = coderouter("token", "list", "-c", str(gateway.config_path))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$", rows["alice"])
    assert rows["bob"].endswith(" -")


def test_edits_and_list_work_without_the_gateways_environment(tmp_path: Path) -> None:
    """The channel keys live in the gateway's environment, not the operator's shell: an edit
    that adds no problem is written, and list reads the tokens all the same."""
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED.replace("channels:\n", (
        "channels:\n  - {name: up, type: openai, base_url: 'http://127.0.0.1:1/v1',\n"
        "     keys: ['${CR_TEST_NEVER_SET_KEY}']}\n"), 1))
    assert "CR_TEST_NEVER_SET_KEY" not in os.environ
    done = coderouter("token", "new", "--name", "erin", "--group", "nogroup", "--append",
                      "-c", str(path))
    assert done.returncode == 1
    assert done.stderr.splitlines()[1:] == ["  tokens[2].group: no token group named 'nogroup'"]
    done = coderouter("token", "new", "--name", "erin", "--models", "mock-1", "--append", "-c",
                      str(path))
    assert done.returncode == 0, done.stderr
    listed = coderouter("token", "list", "-c", str(path))
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "name", "alice", "bob", "erin"]
