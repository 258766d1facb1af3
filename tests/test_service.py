"""`coderouter serve` as a process: graceful stop, live reload while serving, SIGHUP, sd_notify.

The fake upstream runs in the test's event loop; the gateway is a real subprocess.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ALICE, UPSTREAM_KEY, base_config
from tests.fakes import FakeUpstream
from tests.service import TIMEOUT, serving, until

AUTH = {"Authorization": f"Bearer {ALICE}"}
STREAM = {"model": "smart", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def with_group(config: dict[str, Any], name: str) -> dict[str, Any]:
    """*config* plus a model group *name* on the same channel."""
    group = {"name": name, "targets": [{"channel": "up", "model": f"{name}-upstream"}]}
    return {**config, "model_groups": [*config["model_groups"], group]}


async def refused(url: str) -> bool:
    """Whether a new connection to *url* is refused."""
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz"):
                return False
    except aiohttp.ClientConnectionError:
        return True


async def status_of(http: aiohttp.ClientSession, url: str, model: str) -> int:
    async with http.post(url + "/v1/chat/completions", headers=AUTH,
                         json={"model": model, "messages": []}) as resp:
        await resp.read()
        return resp.status


class TestGracefulStop:
    async def test_sigterm_mid_stream_lets_it_finish(self, upstream: FakeUpstream,
                                                      tmp_path: Path) -> None:
        """SIGTERM during a stream: no new connections, the stream completes, the row is
        written, the process exits 0 and said STOPPING."""
        hold = asyncio.Event()
        upstream.then(pause=hold)
        async with serving(base_config(upstream.url, tmp_path), tmp_path) as gw:
            async with aiohttp.ClientSession() as http:
                async with http.post(gw.url + "/v1/chat/completions", json=STREAM,
                                     headers=AUTH) as resp:
                    first = await resp.content.readuntil(b"\n\n")
                    gw.signal(signal.SIGTERM)
                    await gw.line("SIGTERM: stopping")
                    await until(lambda: refused(gw.url), "the listener to close")
                    hold.set()
                    body = first + await resp.read()
            assert await gw.exit_code() == 0
        assert body.count(b"data: ") == 7
        assert body.endswith(b"data: [DONE]\n\n")
        [row] = gw.rows()
        assert (row["status"], row["stream"], row["total_tokens"], row["error"]) == \
            (200, 1, 15, None)

    async def test_grace_exceeded_ends_stream_with_error_event(
            self, upstream: FakeUpstream, tmp_path: Path) -> None:
        """Past shutdown.grace a stream ends with the error event and a waiting request gets
        503; both rows say so, and the process still exits 0."""
        hold = asyncio.Event()
        upstream.then(pause=hold).then(hold=hold)
        config = {**base_config(upstream.url, tmp_path), "shutdown": {"grace": "200ms"}}
        try:
            async with serving(config, tmp_path) as gw:
                async with aiohttp.ClientSession() as http:
                    async with http.post(gw.url + "/v1/chat/completions", json=STREAM,
                                         headers=AUTH) as stream:
                        first = await stream.content.readuntil(b"\n\n")
                        waiting = asyncio.create_task(http.post(
                            gw.url + "/v1/chat/completions", headers=AUTH,
                            json={"model": "smart", "messages": []}))

                        async def both_upstream() -> bool:
                            return upstream.in_flight == 2
                        await until(both_upstream, "both requests to reach the upstream")
                        gw.signal(signal.SIGTERM)
                        rest = await stream.read()
                    async with await waiting as answer:
                        assert answer.status == 503
                        assert await answer.json() == {"error": {
                            "message": "server shutting down", "type": "server_error",
                            "code": "shutting_down", "param": None}}
                assert await gw.exit_code() == 0
        finally:
            hold.set()
        assert first.startswith(b"data: {")
        assert rest == b'data: {"error":{"message":"server shutting down",' \
                       b'"type":"upstream_error","code":"shutting_down"}}\n\n'
        rows = sorted(gw.rows(), key=lambda r: r["stream"])
        assert [(r["stream"], r["status"], r["error"]) for r in rows] == [
            (0, 503, "server shutting down"), (1, 503, "server shutting down")]
        assert "grace period of 0.2s is over: ending 2 requests" in "".join(gw.stderr)

    async def test_sigint_stops_cleanly(self, upstream: FakeUpstream, tmp_path: Path) -> None:
        """SIGINT (Ctrl-C) is a graceful stop too: rows flushed, exit 0."""
        async with serving(base_config(upstream.url, tmp_path), tmp_path) as gw:
            async with aiohttp.ClientSession() as http:
                assert await status_of(http, gw.url, "smart") == 200
            gw.signal(signal.SIGINT)
            assert await gw.exit_code() == 0
        assert [r["status"] for r in gw.rows()] == [200]


class TestLiveReload:
    @pytest.mark.parametrize("atomic", [True, False], ids=["by-rename", "in-place"])
    async def test_rewrite_while_requests_run(self, upstream: FakeUpstream, tmp_path: Path,
                                              atomic: bool) -> None:
        """Saving the file while requests and streams run fails none of them, and the new
        model group serves soon after."""
        upstream.default.chunk_delay = 0.01
        async with serving(base_config(upstream.url, tmp_path), tmp_path) as gw:
            statuses: list[int] = []
            stop = asyncio.Event()

            async def worker(stream: bool) -> None:
                async with aiohttp.ClientSession() as http:
                    while not stop.is_set():
                        async with http.post(gw.url + "/v1/chat/completions", headers=AUTH,
                                             json={**STREAM, "stream": stream}) as resp:
                            body = await resp.read()
                            ok = resp.status == 200 and (not stream or body.endswith(
                                b"data: [DONE]\n\n"))
                            statuses.append(200 if ok else resp.status)

            workers = [asyncio.create_task(worker(i % 2 == 0)) for i in range(4)]
            async with aiohttp.ClientSession() as http:
                assert await status_of(http, gw.url, "fresh") == 404
                gw.write_config(with_group(gw.config, "fresh"), atomic=atomic)

                async def fresh_served() -> bool:
                    return await status_of(http, gw.url, "fresh") == 200
                await until(fresh_served, "the new model group to serve")
            stop.set()
            await asyncio.gather(*workers)
        assert len(statuses) > 4
        assert set(statuses) == {200}

    async def test_invalid_then_fixed(self, upstream: FakeUpstream, tmp_path: Path) -> None:
        """An invalid save is logged with its YAML paths and counted; the old config keeps
        serving; the fixed save is swapped in."""
        async with serving(base_config(upstream.url, tmp_path), tmp_path) as gw:
            broken = with_group(gw.config, "fresh")
            broken["model_groups"][-1]["targets"][0]["channel"] = "upp"
            broken["tokens"][0]["group"] = "nobody"
            gw.write_config(broken)
            await gw.line("config reload failed (file changed): 2 problems")
            await gw.line("model_groups[1].targets[0].channel (line ")
            await gw.line("): no channel named 'upp'")
            await gw.line("tokens[0].group (line ")
            async with aiohttp.ClientSession() as http:
                assert await status_of(http, gw.url, "smart") == 200
                assert await status_of(http, gw.url, "fresh") == 404
                gw.write_config(with_group(base_config(upstream.url, tmp_path), "fresh"))

                async def fresh_served() -> bool:
                    return await status_of(http, gw.url, "fresh") == 200
                await until(fresh_served, "the fixed config to serve")
                async with http.get(gw.url + "/metrics") as resp:
                    text = await resp.text()
        assert 'coderouter_config_reloads_total{result="ok"} 1.0' in text.splitlines()
        assert 'coderouter_config_reloads_total{result="failed"} 1.0' in text.splitlines()

    async def test_sighup_rereads_the_file(self, upstream: FakeUpstream,
                                           tmp_path: Path) -> None:
        """SIGHUP re-reads the file: a file the watcher already refused is read (and refused)
        again, and the old config keeps serving."""
        async with serving(base_config(upstream.url, tmp_path), tmp_path) as gw:
            gw.write_config({**gw.config, "channels": "not a list"})
            await gw.line("config reload failed (file changed)")
            gw.signal(signal.SIGHUP)
            await gw.line("config reload failed (SIGHUP)")
            async with aiohttp.ClientSession() as http:
                assert await status_of(http, gw.url, "smart") == 200
            gw.signal(signal.SIGTERM)
            assert await gw.exit_code() == 0

    async def test_listen_change_needs_a_restart(self, upstream: FakeUpstream,
                                                 tmp_path: Path) -> None:
        """A changed listen port is logged as needing a restart; the gateway stays put."""
        async with serving(base_config(upstream.url, tmp_path), tmp_path) as gw:
            moved = {**gw.config, "listen": {"host": "127.0.0.1", "port": 1}}
            gw.write_config(with_group(moved, "fresh"))
            await gw.line("listen changed: restart to apply")
            async with aiohttp.ClientSession() as http:
                assert await status_of(http, gw.url, "fresh") == 200


class TestSystemdAndLogs:
    async def test_notify_ready_reloading_stopping(self, upstream: FakeUpstream,
                                                   tmp_path: Path) -> None:
        """With $NOTIFY_SOCKET: READY=1 once serving, RELOADING=1 then READY=1 around a
        reload, STOPPING=1 on SIGTERM."""
        path = tmp_path / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()

            async def receive() -> str:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
                return data.decode().splitlines()[0]

            async with serving(base_config(upstream.url, tmp_path), tmp_path,
                               env={"NOTIFY_SOCKET": str(path)}) as gw:
                assert await receive() == "READY=1"
                gw.write_config(with_group(gw.config, "fresh"))
                assert [await receive(), await receive()] == ["RELOADING=1", "READY=1"]
                gw.signal(signal.SIGTERM)
                assert await receive() == "STOPPING=1"
                assert await gw.exit_code() == 0

    async def test_access_log_lines_never_carry_a_key(self, upstream: FakeUpstream,
                                                      tmp_path: Path) -> None:
        """One JSON access line per request, naming the token; no caller or upstream key in
        anything the process logs."""
        config = {**base_config(upstream.url, tmp_path), "log": {"format": "json"}}
        async with serving(config, tmp_path) as gw:
            async with aiohttp.ClientSession() as http:
                assert await status_of(http, gw.url, "smart") == 200
                assert await status_of(http, gw.url, "nope") == 404
            gw.signal(signal.SIGTERM)
            assert await gw.exit_code() == 0
        # the config warnings `check` also prints come before logging is set up
        assert [line for line in gw.stderr if not line.startswith("{")] == [
            "warning: tokens[1].key: plaintext key; store key_sha256 instead "
            "(`coderouter token new` prints both)\n",
            "warning: tokens[1].models[0]: 'other-*' matches no routable model\n"]
        lines = [orjson.loads(line) for line in gw.stderr if line.startswith("{")]
        access = [line for line in lines if line["logger"] == "coderouter.access"]
        assert [(a["status"], a["model"], a["token"], a["tokens"]) for a in access] == [
            (200, "smart", "alice", 15), (404, "nope", "alice", 0)]
        everything = "".join(gw.stderr)
        assert ALICE not in everything
        assert UPSTREAM_KEY not in everything
