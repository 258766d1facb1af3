"""The single-file deployable: built by one shiv command, it checks a config and serves.

Deselect with ``-m "not pyz"`` when offline: shiv pip-installs the dependencies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.service import TIMEOUT, free_port

pytestmark = pytest.mark.pyz

ROOT = Path(__file__).resolve().parent.parent
SHIV = Path(sys.executable).with_name("shiv")
#: The interpreter the venv was made from, run with -S: nothing importable but the pyz itself.
PYTHON = [getattr(sys, "_base_executable", sys.executable), "-S"]


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/coderouter.pyz as the README's command builds it (here into a temp dir)."""
    out = tmp_path_factory.mktemp("dist") / "coderouter.pyz"
    subprocess.run([str(SHIV), "-c", "coderouter", "-o", str(out), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    return out


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def test_check_the_example_config(pyz: Path, tmp_path: Path) -> None:
    """`python coderouter.pyz check -c config.example.yaml` validates it and exits 0."""
    done = subprocess.run([*PYTHON, str(pyz), "check", "-c", str(ROOT / "config.example.yaml")],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "SHIV_ROOT": str(tmp_path / "shiv")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(
        ": ok: 1 channel, 3 routable models, 1 token group, 1 token\n")


def test_serve_answers_healthz_and_stops_on_sigterm(pyz: Path, tmp_path: Path) -> None:
    """`python coderouter.pyz serve -c CONFIG` serves /healthz and exits 0 on SIGTERM."""
    config = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    port = free_port()
    config["listen"]["port"] = port
    config["database"]["path"] = str(tmp_path / "usage.sqlite")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([*PYTHON, str(pyz), "serve", "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "SHIV_ROOT": str(tmp_path / "shiv")})
    try:
        deadline = time.monotonic() + TIMEOUT
        while not healthy(f"http://127.0.0.1:{port}"):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the pyz never answered /healthz"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
