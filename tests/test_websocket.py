"""The Responses WebSocket (Codex's built-in provider) and the 426 of routes without one."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import ALICE, Running

AUTH = {"Authorization": f"Bearer {ALICE}"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/realtime"])
async def test_upgrade_where_no_websocket_is_426(gateway: Running, path: str) -> None:
    """A route that serves no WebSocket refuses the upgrade with 426, which makes Codex fall
    back to HTTP at once (it retries a 404 or 405 for seconds)."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(gateway.url + path, headers=AUTH)
        assert refused.value.status == 426
        async with http.get(gateway.url + path, headers=AUTH) as plain:
            assert plain.status in (404, 405)  # no upgrade asked: the usual answer
