"""Servers the benchmark starts: ReaderAI, the two baselines, the upstream fake.

Each runs as a subprocess on a free loopback port, with its output in a log file of
the run's work folder, and is stopped with SIGTERM (then SIGKILL after
`STOP_SECONDS`) when its context exits. A `Target` is what the clients need to know
of a server, whether the benchmark started it or was given its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

#: Longest wait for a started server to answer.
READY_SECONDS = 120.0
#: Longest wait for a server to exit after SIGTERM.
STOP_SECONDS = 30.0
#: Settings of a ReaderAI server started for a benchmark: the limits a benchmark
#: must not run into (it measures the server, not its refusals).
BENCH_SETTINGS = {
    "READERAI_ENGINE": "extractive",
    "READERAI_EXTRACTIVE_TOKEN_DELAY": "0",
    "READERAI_DEMO_ACCOUNTS": "false",
    "READERAI_LOG_LEVEL": "warning",
    "READERAI_LOG_FORMAT": "json",
    "READERAI_ENGINE_CONCURRENCY": "1024",
    "READERAI_ENGINE_QUEUE_LIMIT": "1000000",
    "READERAI_RATE_LIMIT_PER_SECOND": "10000",
    "READERAI_RATE_LIMIT_BURST": "10000",
    "READERAI_OUTBOUND_QUEUE_SIZE": "4096",
    "HF_HUB_OFFLINE": "1",
}


@dataclass(frozen=True)
class Target:
    """A server under load, as the clients and the sampler see it."""

    name: str
    http_url: str
    pid: int | None
    token: str | None = None
    prometheus: bool = False

    @property
    def ws_url(self) -> str:
        return "ws" + self.http_url.removeprefix("http")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def readerai_server(
    workdir: Path, secret: str, database_url: str, settings: Mapping[str, str]
) -> AsyncIterator[Target]:
    """`readerai serve` with `BENCH_SETTINGS`, then `settings`; an admin-less target.

    The caller mints the token (`Target.token` is left empty here).
    """
    port = free_port()
    env = {
        **os.environ,
        **BENCH_SETTINGS,
        "READERAI_AUTH_SECRET": secret,
        "READERAI_DATABASE_URL": database_url,
        **settings,
    }
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "readerai", "serve", "--host", "127.0.0.1", "--port", str(port)]
    async with _process("readerai", argv, env, workdir, _http_ready(f"{url}/readyz")) as pid:
        yield Target("readerai", url, pid, prometheus=True)


@contextlib.asynccontextmanager
async def baseline_server(kind: str, workdir: Path) -> AsyncIterator[Target]:
    """A baseline (`plain` or `naive`) from `readerai.loadtest.baselines`."""
    port = free_port()
    argv = [
        *(sys.executable, "-m", "readerai.loadtest.baselines", kind),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    async with _process(kind, argv, dict(os.environ), workdir, _tcp_ready(port)) as pid:
        yield Target(kind, f"http://127.0.0.1:{port}", pid)


@contextlib.asynccontextmanager
async def upstream_server(
    workdir: Path, ttft_ms: float, tokens_per_second: float, tokens: int
) -> AsyncIterator[Target]:
    """The OpenAI-compatible fake from `readerai.loadtest.upstream`."""
    port = free_port()
    argv = [
        *(sys.executable, "-m", "readerai.loadtest.upstream", "--port", str(port)),
        *("--ttft-ms", f"{ttft_ms:g}", "--tokens-per-second", f"{tokens_per_second:g}"),
        *("--tokens", str(tokens)),
    ]
    async with _process("upstream", argv, dict(os.environ), workdir, _tcp_ready(port)) as pid:
        yield Target("upstream", f"http://127.0.0.1:{port}", pid)


@contextlib.asynccontextmanager
async def _process(
    name: str,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    ready: Callable[[], Awaitable[bool]],
) -> AsyncIterator[int]:
    """Run `argv` in `workdir` until the context exits; yields its pid once `ready`."""
    log_path = workdir / f"{name}.log"
    log = await asyncio.to_thread(log_path.open, "ab")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=workdir, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    finally:
        log.close()  # the child has its own copy
    try:
        await _wait_ready(name, process, ready, log_path)
        yield process.pid
    finally:
        await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it has not exited in `STOP_SECONDS`."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _wait_ready(
    name: str,
    process: asyncio.subprocess.Process,
    ready: Callable[[], Awaitable[bool]],
    log_path: Path,
) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            break
        if await ready():
            return
        await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-4000:]
    raise RuntimeError(f"{name} did not become ready (log {log_path}):\n{tail}")


def _http_ready(url: str) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
                return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def _tcp_ready(port: int) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return ready
