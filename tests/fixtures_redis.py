"""A private `redis-server` per test, on a free loopback port, that tests can stop and restart.

Nothing is persisted (`--save ""`, no AOF): a restart comes back empty, as a Redis
that lost its data would. Without the binary the Redis tests are skipped with the
reason shown, except in CI (`CI=true`), where a missing binary is a failure.

The methods block (they wait for the process): inside an async test call them in a
thread, `await asyncio.to_thread(redis_server.stop)`, so the event loop stays free.

Import the fixture where it is used: `from tests.fixtures_redis import redis_server`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures_server import free_port
from tests.needs import missing

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclass
class RedisServer:
    """One `redis-server` process on 127.0.0.1; it keeps its port across restarts."""

    binary: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.starts += 1
        log_path = self.data_dir / f"redis-{self.starts}.log"
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._answers_ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start:\n{log_path.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, and wait for the process to exit (SIGKILL if it will not)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the server dies without closing anything itself."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Stop the server if it runs, then start it again, empty, on the same port."""
        self.stop()
        self.start()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running private Redis, stopped after the test whatever happened to it."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server", "no redis-server on PATH")
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(binary, data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
