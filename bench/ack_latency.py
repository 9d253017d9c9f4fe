"""Acknowledgement latency and time to first delta over real WebSockets.

Starts `readerai serve` on a free port (or uses --url), opens N sessions at once,
and has each ask questions one after another. Reports, per question:
- ack: question sent -> INTERRUPTION_ACKNOWLEDGED received (stored first);
- first delta: question sent -> first RESPONSE_DELTA received.

    python bench/ack_latency.py --sessions 100 --questions 5
    python bench/ack_latency.py --sessions 1 --questions 5 --engine local
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from readerai.auth.principal import Role
from readerai.auth.tokens import TokenService
from readerai.loadtest.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
#: The token key benchmark servers run with; the clients sign in as an admin.
BENCH_AUTH_SECRET = "bench-secret-readerai-0123456789abcdef"


def bench_token() -> str:
    """An admin token the benchmark's servers accept."""
    tokens = TokenService.with_secret(BENCH_AUTH_SECRET)
    return tokens.mint(user_id="bench", role=Role.ADMIN, ttl_seconds=86400)


#: What every benchmark client sends to sign in (REST header, WebSocket subprotocols).
AUTH = {"Authorization": f"Bearer {bench_token()}"}
PROTOCOLS = [Subprotocol("readerai.v1"), Subprotocol(f"bearer.{bench_token()}")]


def machine() -> str:
    cpu = "unknown cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB, Python {python}"


def start_server(
    engine: str, token_delay: float, data: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`readerai serve` on a free port, ready; `settings` are extra READERAI_* variables."""
    port = free_port()
    env = os.environ | {
        "READERAI_ENGINE": engine,
        "READERAI_DATABASE_URL": f"sqlite+aiosqlite:///{data}/bench.db",
        "READERAI_EXTRACTIVE_TOKEN_DELAY": str(token_delay),
        "READERAI_LOG_LEVEL": "warning",
        "READERAI_ENGINE_QUEUE_LIMIT": "10000",
        "READERAI_ENGINE_CONCURRENCY": "64" if engine == "extractive" else "2",
        "HF_HUB_OFFLINE": "1",
        "READERAI_AUTH_SECRET": BENCH_AUTH_SECRET,
        "READERAI_DEMO_ACCOUNTS": "false",
        **settings,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "readerai", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")


async def student(
    url: str, questions: int, think: float, acks: list[float], firsts: list[float]
) -> None:
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        created = await http.post("/api/sessions", json={"passageId": "the-lion-and-the-mouse"})
        session_id = created.json()["id"]
    ws_url = url.replace("http", "ws", 1) + f"/ws/{session_id}"
    async with connect(ws_url, max_size=None, subprotocols=PROTOCOLS) as ws:
        await ws.recv()  # SESSION_RESTORED
        for i in range(questions):
            # Students do not all ask at the same instant: spread them over `think`.
            await asyncio.sleep(random.uniform(0, 2 * think))
            frame = {
                "type": "STUDENT_INTERRUPTION",
                "payload": {"questionText": f"Q{i}: why did the lion laugh?"},
            }
            sent = time.perf_counter()
            await ws.send(json.dumps(frame))
            got_first = False
            while True:
                event = json.loads(await ws.recv())
                kind = event["type"]
                if kind == "INTERRUPTION_ACKNOWLEDGED":
                    acks.append(time.perf_counter() - sent)
                elif kind == "RESPONSE_DELTA" and not got_first:
                    firsts.append(time.perf_counter() - sent)
                    got_first = True
                elif kind == "RESPONSE_DONE":
                    break


def quantiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return (
        f"p50 {q[49]:.2f} ms  p90 {q[89]:.2f} ms  p99 {q[98]:.2f} ms  "
        f"max {ms[-1]:.2f} ms  (n={len(ms)})"
    )


async def run(
    url: str, sessions: int, questions: int, think: float
) -> tuple[list[float], list[float], float]:
    acks: list[float] = []
    firsts: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(student(url, questions, think, acks, firsts) for _ in range(sessions)))
    return acks, firsts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--engine", default="extractive", choices=["extractive", "local"])
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean seconds a student waits before each question (0 = flat out)",
    )
    parser.add_argument(
        "--token-delay",
        type=float,
        default=0.02,
        help="extractive engine: seconds between streamed words",
    )
    parser.add_argument("--url", help="use a running server instead of starting one")
    args = parser.parse_args()

    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as data:
        proc = None
        url = args.url
        if url is None:
            proc, url = start_server(args.engine, args.token_delay, Path(data))
        try:
            acks, firsts, seconds = asyncio.run(run(url, args.sessions, args.questions, args.think))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    print(
        f"engine: {args.engine}, sessions: {args.sessions}, questions each: {args.questions}, "
        f"think {args.think} s, wall {seconds:.1f} s, {len(acks) / seconds:.1f} questions/s"
    )
    print("acknowledgement:", quantiles(acks))
    print("first delta:    ", quantiles(firsts))


if __name__ == "__main__":
    main()
