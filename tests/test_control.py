"""POST /admin/reload and the admin-key rule of /admin routes."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import yaml

from tests.conftest import ALICE, Running, StartGateway, base_config
from tests.fakes import FakeUpstream

ADMIN_KEY = "cr-admin-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def post_reload(gateway: Running, headers: dict[str, str]) -> tuple[int, object]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/admin/reload", headers=headers) as resp:
            return resp.status, await resp.json()


async def admin_gateway(start_gateway: StartGateway, upstream: FakeUpstream,
                        tmp_path: Path) -> Running:
    return await start_gateway({**base_config(upstream.url, tmp_path),
                                "admin": {"key": ADMIN_KEY}})


async def test_no_admin_key_configured_means_no_route(gateway: Running) -> None:
    """Without admin.key the /admin routes do not exist: 404, whatever key is sent."""
    for headers in ({}, {"Authorization": f"Bearer {ALICE}"}):
        status, body = await post_reload(gateway, headers)
        assert (status, body["error"]["code"]) == (404, "not_found")


async def test_wrong_or_missing_admin_key_is_401(start_gateway: StartGateway,
                                                 upstream: FakeUpstream,
                                                 tmp_path: Path) -> None:
    """A caller key, a wrong key or none: 401 invalid_api_key, and nothing is reloaded."""
    gateway = await admin_gateway(start_gateway, upstream, tmp_path)
    for headers in ({}, {"Authorization": f"Bearer {ALICE}"},
                    {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"}):
        status, body = await post_reload(gateway, headers)
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    assert gateway.state.holder.reloads_ok + gateway.state.holder.reloads_failed == 0


async def test_reload_swaps_a_changed_file(start_gateway: StartGateway,
                                           upstream: FakeUpstream, tmp_path: Path) -> None:
    """A changed valid file: 200 reloaded true, and the new model group is routable."""
    gateway = await admin_gateway(start_gateway, upstream, tmp_path)
    config = yaml.safe_load(gateway.config_path.read_text())
    config["model_groups"].append({"name": "fresh", "targets": [
        {"channel": "up", "model": "fresh-upstream"}]})
    gateway.config_path.write_text(yaml.safe_dump(config))
    assert await post_reload(gateway, ADMIN) == (200, {"reloaded": True, "errors": []})
    assert "fresh" in gateway.state.holder.current.routes
    assert await post_reload(gateway, ADMIN) == (200, {"reloaded": False, "errors": []})


async def test_invalid_file_lists_every_error_and_keeps_serving(
        start_gateway: StartGateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    """An invalid file: 422 with each problem's YAML path; the running config stays."""
    gateway = await admin_gateway(start_gateway, upstream, tmp_path)
    before = gateway.state.holder.current
    config = yaml.safe_load(gateway.config_path.read_text())
    config["model_groups"][0]["targets"][0]["channel"] = "upp"
    config["tokens"][0]["group"] = "nobody"
    gateway.config_path.write_text(yaml.safe_dump(config))
    status, body = await post_reload(gateway, ADMIN)
    assert status == 422
    assert body["reloaded"] is False
    assert [e["path"] for e in body["errors"]] == [
        "model_groups[0].targets[0].channel", "tokens[0].group"]
    assert [e["message"] for e in body["errors"]] == [
        "no channel named 'upp'; did you mean 'up'?", "no token group named 'nobody'"]
    assert gateway.state.holder.current is before
    gateway.config_path.write_text("")
    status, body = await post_reload(gateway, ADMIN)
    assert (status, body["errors"]) == (422, [{
        "path": str(gateway.config_path),
        "message": "file is empty; refusing to reload to an empty config"}])
