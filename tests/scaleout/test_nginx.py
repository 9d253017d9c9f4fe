"""deploy/nginx.conf in front of real nodes: round robin, no sticky sessions, failover.

Each test starts real nodes on one Redis and one PostgreSQL database, then a real
nginx running a copy of deploy/nginx.conf in which only the two upstream addresses
and the listen port are rewritten. nginx is looked up on PATH and in /usr/sbin; the
tests are skipped with the reason shown without it, except in CI (`CI=true`), where
a missing nginx is a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.fixtures_server import (
    ROOT,
    Client,
    ServerProcess,
    free_port,
    http_client,
    open_client,
    ws_protocols,
)
from tests.needs import missing
from tests.scaleout.conftest import StartNodes

CONFIG = ROOT / "deploy" / "nginx.conf"
QUESTION = "What did the little mouse do to help the lion?"
#: Slow replies, so a test can reconnect while one is streaming.
SLOW = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.15"}
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclass
class Nginx:
    """nginx in the foreground, from a prefix directory holding its config and logs."""

    binary: str
    prefix: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start nginx and wait until it proxies `/healthz` to a node."""
        # As root, nginx would run its workers as `nobody`, who cannot enter the
        # test's private temp directory; keep them as the current user.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        command = [self.binary, "-p", f"{self.prefix}/", "-c", "nginx.conf"]
        with (self.prefix / "logs" / "nginx.out").open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "-g", f"daemon off; {user}"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start:\n{self.logs()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGTERM closes open WebSockets at once), SIGKILL if need be."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        paths = [*sorted((self.prefix / "logs").glob("*.log")), self.prefix / "logs/nginx.out"]
        return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        return False


def rewritten_config(text: str, upstream_ports: Sequence[int], listen_port: int) -> str:
    """deploy/nginx.conf with its node addresses and listen port replaced, loopback only."""
    replacements = [
        (r"^(\s*server\s+)127\.0\.0\.1:8001\b", rf"\g<1>127.0.0.1:{upstream_ports[0]}"),
        (r"^(\s*server\s+)127\.0\.0\.1:8002\b", rf"\g<1>127.0.0.1:{upstream_ports[1]}"),
        (r"^(\s*listen\s+)8080\b", rf"\g<1>127.0.0.1:{listen_port}"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx.conf no longer has one line matching {pattern!r}"
    return text


StartNginx = Callable[[Sequence[ServerProcess]], Nginx]


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[StartNginx]:
    """`start_nginx(nodes)` runs deploy/nginx.conf in front of `nodes` (blocking call).

    Requested before `start_nodes`, so a missing nginx skips before any node starts.
    """
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        missing("nginx", "no nginx on PATH or in /usr/sbin")
    started: list[Nginx] = []

    def start(nodes: Sequence[ServerProcess]) -> Nginx:
        prefix = tmp_path / f"nginx{len(started)}"
        for directory in ("logs", "temp"):
            (prefix / directory).mkdir(parents=True)
        proxy = Nginx(binary, prefix, free_port())
        ports = [node.port for node in nodes]
        (prefix / "nginx.conf").write_text(rewritten_config(CONFIG.read_text(), ports, proxy.port))
        started.append(proxy)
        proxy.start()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


async def new_session(target: Nginx | ServerProcess) -> str:
    async with http_client(target) as http:
        response = await http.post("/api/sessions", json={"passageId": "the-lion-and-the-mouse"})
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id


@contextlib.asynccontextmanager
async def open_through(
    proxy: Nginx, session_id: str, query: str = "", origin: str | None = None
) -> AsyncIterator[Client]:
    """A student connection through nginx, sending the Origin a browser on it would."""
    url = f"{proxy.ws_url}/ws/{session_id}{query}"
    async with connect(
        url, origin=Origin(origin or proxy.base_url), subprotocols=ws_protocols()
    ) as ws:
        yield Client(ws)


async def node_id_of(node: ServerProcess) -> str:
    """The `nodeId` a node reports, asked directly (not through nginx)."""
    async with open_client(node, await new_session(node)) as client:
        node_id: str = (await client.recv())["payload"]["nodeId"]
        return node_id


async def ask_and_finish(client: Client) -> dict[str, Any]:
    """Ask QUESTION and return the payload of its RESPONSE_DONE."""
    await client.ask(QUESTION)
    done: dict[str, Any] = (await client.recv_until("RESPONSE_DONE", within=30))[-1]["payload"]
    return done


async def test_round_robin_spreads_sessions_over_both_nodes_and_answers_through_nginx(
    start_nginx: StartNginx, start_nodes: StartNodes
) -> None:
    nodes = await anyio.to_thread.run_sync(start_nodes, 2)
    proxy = await anyio.to_thread.run_sync(start_nginx, nodes)
    # Sessions first: alternating one POST and one connection would put every
    # connection on the same node, round robin being strict.
    sessions = [await new_session(proxy) for _ in range(4)]
    served_by: list[str] = []
    for session_id in sessions:
        async with open_through(proxy, session_id) as client:
            served_by.append((await client.recv())["payload"]["nodeId"])
            if len(set(served_by)) == 2:
                done = await ask_and_finish(client)
                break
    assert len(set(served_by)) == 2, f"every connection went to one node: {served_by}"
    assert done["status"] == "completed" and done["text"]


async def test_the_origin_check_accepts_the_nginx_address_and_refuses_others(
    start_nginx: StartNginx, start_nodes: StartNodes
) -> None:
    nodes = await anyio.to_thread.run_sync(start_nodes, 2)
    proxy = await anyio.to_thread.run_sync(start_nginx, nodes)
    session_id = await new_session(proxy)
    served_by = set()
    for _ in range(2):  # two connections in a row: one on each node
        async with open_through(proxy, session_id) as client:
            served_by.add((await client.recv())["payload"]["nodeId"])
    assert len(served_by) == 2, "a browser on the nginx address is accepted by both nodes"

    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            async with open_through(proxy, session_id, origin="http://elsewhere.example"):
                pass
        assert refused.value.response.status_code == 403


async def test_a_reply_in_flight_resumes_in_order_after_a_reconnect_lands_on_the_other_node(
    start_nginx: StartNginx, start_nodes: StartNodes
) -> None:
    nodes = await anyio.to_thread.run_sync(lambda: start_nodes(2, **SLOW))
    proxy = await anyio.to_thread.run_sync(start_nginx, nodes)
    session_id = await new_session(proxy)
    async with open_through(proxy, session_id) as client:
        writer = (await client.recv())["payload"]["nodeId"]
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=3)
    seen = [e["payload"]["text"] for e in events if e["type"] == "RESPONSE_DELTA"]

    # Reconnect as a page would, until round robin hands the connection to the node
    # that is not writing the reply; that one resumes it from Redis.
    for _ in range(8):
        async with open_through(proxy, session_id, "?lastSeq=3") as client:
            restored = (await client.recv())["payload"]
            if restored["nodeId"] == writer:
                continue
            rest = await client.recv_until("RESPONSE_DONE", within=30)
            break
    assert restored["nodeId"] != writer, "no reconnect reached the other node"

    deltas = [e["payload"] for e in rest if e["type"] == "RESPONSE_DELTA"]
    assert deltas and [d["seq"] for d in deltas] == list(range(4, 4 + len(deltas)))
    done = rest[-1]["payload"]
    assert done["status"] == "completed"
    assert done["text"] == "".join(seen + [d["text"] for d in deltas]), "no gap, no duplicate"


async def test_after_a_node_is_killed_nginx_sends_everything_to_the_other(
    start_nginx: StartNginx, start_nodes: StartNodes
) -> None:
    victim, survivor = await anyio.to_thread.run_sync(start_nodes, 2)
    proxy = await anyio.to_thread.run_sync(start_nginx, [victim, survivor])
    survivor_id = await node_id_of(survivor)
    async with http_client(proxy) as http:
        for _ in range(4):  # keep-alive connections to both nodes, like a busy proxy
            assert (await http.get("/readyz")).status_code == 200

        await anyio.to_thread.run_sync(lambda: victim.stop(signal.SIGKILL))

        statuses = [(await http.get("/readyz")).status_code for _ in range(6)]
    assert statuses == [200] * 6, f"/readyz through nginx: {statuses}\n{proxy.logs()}"

    for _ in range(2):  # new sessions and their connections: all on the survivor
        async with open_through(proxy, await new_session(proxy)) as client:
            assert (await client.recv())["payload"]["nodeId"] == survivor_id
            done = await ask_and_finish(client)
        assert done["status"] == "completed" and done["text"]
