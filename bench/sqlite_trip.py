"""What one unit of work on SQLite's writing connection costs the node.

Every question's write and every reply's update is one `Database.in_sqlite_thread`
call: wait for its turn on the connection (kept from the last such call), run
`BEGIN IMMEDIATE`, the work and `COMMIT` on aiosqlite's thread. This times that call
with empty work against the bare trip to aiosqlite's thread and back (the same
transaction, nothing else), in CPU time of the process (both threads) and in wall
time, per call.

    python bench/sqlite_trip.py                # 5,000 calls of each, three rounds
    python bench/sqlite_trip.py --calls 20000
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from ack_latency import machine
from sqlalchemy.engine import make_url

from readerai.store.database import Database, _in_transaction


async def per_call(calls: int, unit: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """CPU and wall microseconds per call of `unit`, after a warm-up."""
    for _ in range(200):
        await unit()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await unit()
    return (
        (time.process_time() - cpu) / calls * 1e6,
        (time.perf_counter() - wall) / calls * 1e6,
    )


async def run(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = make_url(f"sqlite+aiosqlite:///{Path(folder) / 'trip.db'}")
        db = Database(url, connect_timeout=5)
        await db.connect()
        try:

            def nothing(_connection: object) -> None:
                return None

            async def unit() -> None:
                await db.in_sqlite_thread(nothing)

            await unit()
            # The connection `in_sqlite_thread` keeps between its units.
            assert db._kept is not None
            driver = db._kept.driver_connection

            async def bare() -> None:
                await driver._execute(_in_transaction, nothing, driver._conn)

            print(f"{'round':>5} {'in_sqlite_thread cpu/wall us':>30}", end="")
            print(f" {'bare trip cpu/wall us':>24}")
            for index in range(rounds):
                unit_cpu, unit_wall = await per_call(calls, unit)
                bare_cpu, bare_wall = await per_call(calls, bare)
                print(
                    f"{index + 1:>5} {unit_cpu:>17.1f} / {unit_wall:>8.1f}"
                    f" {bare_cpu:>13.1f} / {bare_wall:>8.1f}"
                )
        finally:
            await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("command: python bench/sqlite_trip.py", shlex.join(sys.argv[1:]))
    print("machine:", machine())
    uvloop.run(run(args.calls, args.rounds))


if __name__ == "__main__":
    main()
