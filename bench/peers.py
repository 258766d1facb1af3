"""Optional peers: LiteLLM proxy (PyPI) and Portkey gateway (npm), installed on demand."""

from __future__ import annotations

from pathlib import Path

from . import procs
from .targets import Skipped, Target


def start_litellm(p: procs.Procs, workdir: Path, upstream_port: int) -> Target:
    raise Skipped("not implemented yet")


def start_portkey(p: procs.Procs, workdir: Path, upstream_port: int) -> Target:
    raise Skipped("not implemented yet")
