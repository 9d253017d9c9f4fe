"""Server CPU per turn, split by thread: what one question costs the node.

Starts `readerai serve` (extractive engine, one-word replies, no delay between words),
opens --sessions sessions that each ask --questions questions one after another as
fast as the answers come (the next once `RESPONSE_DONE` is in), and reads the server's
CPU time from /proc before and after the questions: in all, the event loop's thread, and
the others (SQLite's above all), in milliseconds per turn. Being closed-loop, the load
follows the server, so the figure compares commits run one after the other on the same
machine better than a latency does.

    python bench/turn_cost.py                       # 20 sessions x 150 questions, 3 rounds
    python bench/turn_cost.py --sessions 50 --questions 100 --rounds 5
    python bench/turn_cost.py --database postgresql+asyncpg://postgres@127.0.0.1/readerai_bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import httpx
from ack_latency import AUTH, PROTOCOLS, machine, start_server
from websockets.asyncio.client import connect

#: Clock ticks per second of /proc's CPU times.
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(stat_path: str) -> float:
    """User + system CPU seconds in a /proc `stat` file."""
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def server_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of `pid`'s main thread (the event loop's) and of its other threads
    together (SQLite's connection and checkpoints, worker threads, those that ended
    included: Python 3.11 does not name them for the OS)."""
    loop = _cpu_seconds(f"/proc/{pid}/task/{pid}/stat")
    return {"event loop": loop, "threads": _cpu_seconds(f"/proc/{pid}/stat") - loop}


async def student(url: str, questions: int, ready: asyncio.Event, go: asyncio.Event) -> int:
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        created = await http.post("/api/sessions", json={"passageId": "the-lion-and-the-mouse"})
        session_id = created.json()["id"]
    ws_url = url.replace("http", "ws", 1) + f"/ws/{session_id}"
    done = 0
    async with connect(ws_url, max_size=None, subprotocols=PROTOCOLS) as ws:
        await ws.recv()  # SESSION_RESTORED
        ready.set()
        await go.wait()
        for i in range(questions):
            frame = {
                "type": "STUDENT_INTERRUPTION",
                "payload": {"questionText": f"Q{i}: why did the lion laugh?"},
            }
            await ws.send(json.dumps(frame))
            while json.loads(await ws.recv())["type"] != "RESPONSE_DONE":
                pass
            done += 1
    return done


async def one_round(
    url: str, pid: int, sessions: int, questions: int
) -> tuple[int, float, dict[str, float]]:
    """Turns answered, wall seconds, and CPU seconds per thread over the questions."""
    readies = [asyncio.Event() for _ in range(sessions)]
    go = asyncio.Event()
    tasks = [asyncio.create_task(student(url, questions, r, go)) for r in readies]
    for ready in readies:
        await ready.wait()
    await asyncio.sleep(0.5)  # the connections' own work settles
    before, start = server_cpu(pid), time.perf_counter()
    go.set()
    turns = sum(await asyncio.gather(*tasks))
    wall = time.perf_counter() - start
    after = server_cpu(pid)
    return turns, wall, {name: after[name] - before[name] for name in after}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--questions", type=int, default=150, help="per session per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", help="a database URL instead of a temporary SQLite file")
    args = parser.parse_args()
    print("command: python bench/turn_cost.py", shlex.join(sys.argv[1:]))
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as data:
        proc, url = start_server(
            "extractive",
            0.0,
            Path(data),
            READERAI_MAX_REPLY_TOKENS="1",
            # A session asks as fast as it is answered: over the default 30 messages/s
            # on a fast machine, which would close it (1008).
            READERAI_RATE_LIMIT_PER_SECOND="100000",
            READERAI_RATE_LIMIT_BURST="100000",
            **({"READERAI_DATABASE_URL": args.database} if args.database else {}),
        )
        try:
            for index in range(args.rounds):
                turns, wall, cpu = asyncio.run(
                    one_round(url, proc.pid, args.sessions, args.questions)
                )
                total = sum(cpu.values())
                print(
                    f"round {index + 1}: {turns} turns in {wall:.1f} s ({turns / wall:.0f}/s); "
                    f"server CPU per turn {total / turns * 1e3:.3f} ms: event loop "
                    f"{cpu['event loop'] / turns * 1e3:.3f}, "
                    f"other threads {cpu['threads'] / turns * 1e3:.3f}"
                )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
