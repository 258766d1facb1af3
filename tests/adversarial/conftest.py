"""Fixtures: the real gateway in front of a misbehaving upstream (`Hostile`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.hostile import Hostile
from tests.conftest import UPSTREAM_KEY, Running, StartGateway, base_config

#: A channel header value the gateway sends and must never relay back.
HEADER_SECRET = "hdr-secret-value-0123456789"
#: The upstream models the hostile channel serves; each is also a model group of that name.
BEHAVIOURS = ("echo", "echo-400", "echo-404", "echo-409", "echo-413", "echo-422", "echo-401",
              "echo-stream", "echo-stream-error", "redirect", "huge", "gzip-bomb",
              "endless-event", "big-event", "retry-after", "status-401", "status-403", "ok")


def hostile_config(hostile_url: str, tmp_path: Path, **top: Any) -> dict[str, Any]:
    """`base_config` plus a channel `bad` on the hostile upstream and a group per behaviour."""
    config = base_config("http://127.0.0.1:9/v1", tmp_path)
    config["channels"].append(
        {"name": "bad", "type": "openai", "base_url": hostile_url + "/v1",
         "keys": [UPSTREAM_KEY], "headers": {"X-Secret": HEADER_SECRET}})
    config["model_groups"] += [
        {"name": name, "targets": [{"channel": "bad", "model": name}], "retry": {"attempts": 1}}
        for name in BEHAVIOURS]
    config.update(top)
    return config


@pytest.fixture
async def hostile(aiohttp_server: Any) -> Hostile:
    fake = Hostile()
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def hostile_gateway(start_gateway: StartGateway, hostile: Hostile,
                          tmp_path: Path) -> Running:
    return await start_gateway(hostile_config(hostile.url, tmp_path))
