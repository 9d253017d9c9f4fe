"""Server CPU per REST request, split by thread: what a teacher's notice, a session's
creation and a session's read cost the node.

Starts `readerai serve`, creates a session, then sends --requests requests of each
kind one after another (closed loop, one connection) and reads the server's CPU time
from /proc before and after each kind: in all, the event loop's thread, and the others
(SQLite's, FastAPI's thread pool). A request's CPU is work every other connection
waits behind on the same loop, so it is what a teacher's traffic costs the students.

    python bench/rest_cost.py                  # 2,000 of each kind, 3 rounds
    python bench/rest_cost.py --requests 500 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from ack_latency import AUTH, machine, start_server
from turn_cost import server_cpu

PASSAGE = "the-lion-and-the-mouse"
#: The longest notice a teacher may send (2,000 characters), as the flood test sends.
NOTICE = {"text": "Please look up. " * 125}

Request = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]

KINDS: dict[str, Request] = {
    "POST notice": lambda http, sid: http.post(f"/api/sessions/{sid}/notices", json=NOTICE),
    "POST session": lambda http, sid: http.post("/api/sessions", json={"passageId": PASSAGE}),
    "GET session": lambda http, sid: http.get(f"/api/sessions/{sid}"),
}


async def measure(
    url: str, pid: int, requests: int, send: Request
) -> tuple[dict[str, float], list[float]]:
    """CPU seconds per thread over `requests` requests, and each one's latency."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        created = await http.post("/api/sessions", json={"passageId": PASSAGE})
        created.raise_for_status()
        session_id = created.json()["id"]
        for _ in range(20):  # warm: the connection, the route, the statements
            (await send(http, session_id)).raise_for_status()
        await asyncio.sleep(0.3)
        latencies: list[float] = []
        before = server_cpu(pid)
        for _ in range(requests):
            started = time.perf_counter()
            (await send(http, session_id)).raise_for_status()
            latencies.append(time.perf_counter() - started)
        after = server_cpu(pid)
    return {name: after[name] - before[name] for name in after}, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="of each kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("command: python bench/rest_cost.py", shlex.join(sys.argv[1:]))
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as data:
        proc, url = start_server("extractive", 0.0, Path(data))
        try:
            for index in range(args.rounds):
                for kind, send in KINDS.items():
                    cpu, latencies = asyncio.run(measure(url, proc.pid, args.requests, send))
                    n = args.requests
                    print(
                        f"round {index + 1}, {kind}: server CPU per request "
                        f"{sum(cpu.values()) / n * 1e3:.3f} ms (event loop "
                        f"{cpu['event loop'] / n * 1e3:.3f}, other threads "
                        f"{cpu['threads'] / n * 1e3:.3f}); latency p50 "
                        f"{statistics.median(latencies) * 1e3:.2f} ms"
                    )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
