"""Real ReaderAI server processes on free ports, and a WebSocket test client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from readerai.auth.principal import Role
from readerai.auth.tokens import TokenService
from readerai.loadtest.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
#: The token key every test server is started with (tests mint their own tokens).
TEST_AUTH_SECRET = "test-secret-for-readerai-tests-only-0123456789"


def mint_token(
    role: str = "admin",
    user: str = "test-admin",
    class_id: str | None = None,
    ttl: float = 3600,
    name: str = "",
) -> str:
    """A token test servers accept (`role` student, teacher or admin)."""
    tokens = TokenService.with_secret(TEST_AUTH_SECRET)
    return tokens.mint(
        user_id=user, role=Role(role), ttl_seconds=ttl, name=name or user, class_id=class_id
    )


def auth_headers(token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or mint_token()}"}


def ws_protocols(token: str | None = None) -> list[Subprotocol]:
    """What a client offers in `Sec-WebSocket-Protocol` to sign in."""
    return [Subprotocol("readerai.v1"), Subprotocol(f"bearer.{token or mint_token()}")]


@dataclass
class ServerProcess:
    """`readerai serve` in a subprocess, with blockbuster active inside it."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def full_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("READERAI_")}
        env.update(
            {
                "READERAI_DATABASE_URL": f"sqlite+aiosqlite:///{self.data_dir}/readerai.db",
                "READERAI_ENGINE": "extractive",
                "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.02",
                "READERAI_LOG_FORMAT": "json",
                "READERAI_AUTH_SECRET": TEST_AUTH_SECRET,
                "READERAI_DEMO_ACCOUNTS": "false",
                "HF_HUB_OFFLINE": "1",
            }
        )
        env.update(self.env)
        return env

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        self.log_path = self.data_dir / f"server-{self.starts}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.serve_blockbuster",
                    "serve",
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=self.full_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.data_dir.glob("*.log")))

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.all_logs().splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    def assert_never_blocked(self) -> None:
        logs = self.all_logs()
        assert "BlockingError" not in logs, f"the server blocked its event loop:\n{logs}"


@contextlib.contextmanager
def running_server(data_dir: Path, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.assert_never_blocked()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server shared by a test module: extractive engine, SQLite, in-process bus."""
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with particular settings; all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(start: bool = True, **env: str) -> ServerProcess:
        srv = ServerProcess(tmp_path / f"s{len(started)}", env=env)
        srv.data_dir.mkdir()
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in started:
        srv.stop()
        srv.assert_never_blocked()


class Client:
    """A real WebSocket client speaking the ReaderAI protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, type_: str, **payload: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, "payload": payload}))

    async def ask(self, question: str) -> None:
        await self.send("STUDENT_INTERRUPTION", questionText=question)

    async def recv(self, within: float = 10.0) -> dict[str, Any]:
        with anyio.fail_after(within):
            frame = await self.ws.recv()
        event: dict[str, Any] = json.loads(frame)
        return event

    async def recv_until(
        self, type_: str, within: float = 15.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Events up to and including the first `type_` whose payload matches."""
        seen = []
        with anyio.fail_after(within):
            while True:
                event = await self.recv(within)
                seen.append(event)
                payload = event["payload"]
                if event["type"] == type_ and all(payload.get(k) == v for k, v in match.items()):
                    return seen


def http_client(server: ServerProcess, token: str | None = None) -> httpx.AsyncClient:
    """An HTTP client for `server`, signed in (as an admin unless `token` says otherwise)."""
    return httpx.AsyncClient(base_url=server.base_url, headers=auth_headers(token))


async def create_session(
    server: ServerProcess, passage_id: str | None = "the-lion-and-the-mouse"
) -> str:
    async with http_client(server) as http:
        body = {"passageId": passage_id} if passage_id else {}
        response = await http.post("/api/sessions", json=body)
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id


@contextlib.asynccontextmanager
async def open_client(
    server: ServerProcess,
    session_id: str,
    query: str = "",
    token: str | None = None,
    **kwargs: Any,
) -> AsyncIterator[Client]:
    """A signed-in WebSocket client (an admin unless `token` says otherwise)."""
    kwargs.setdefault("subprotocols", ws_protocols(token))
    async with connect(f"{server.ws_url}/ws/{session_id}{query}", **kwargs) as ws:
        yield Client(ws)
