"""Message writes on the SQL store: one at a time vs concurrent (group commit).

python bench/store_writes.py                      # SQLite in a temporary folder
createdb readerai_bench && python bench/store_writes.py \
    --url postgresql+asyncpg://postgres@127.0.0.1/readerai_bench
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from pathlib import Path

from ack_latency import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from readerai.protocol import ReplyStatus
from readerai.store.sql import SqlStore


async def run(url: str, count: int) -> None:
    store = SqlStore(url)
    await store.start()
    try:
        session = await store.create_session()

        def write() -> object:
            return store.add_message(
                session_id=session.id,
                turn_id="bench",
                role="student",
                text="Why did the lion laugh?",
                status=ReplyStatus.COMPLETED,
            )

        started = time.perf_counter()
        for _ in range(count):
            await write()
        one_by_one = (time.perf_counter() - started) / count
        started = time.perf_counter()
        await asyncio.gather(*(write() for _ in range(count)))  # type: ignore[misc]
        together = (time.perf_counter() - started) / count
        started = time.perf_counter()
        for _ in range(count):
            await store.recent_messages(session.id, limit=30)
        reads = (time.perf_counter() - started) / count
    finally:
        await store.close()
    print(f"add_message one at a time: {one_by_one * 1000:.2f} ms each")
    print(f"add_message {count} at once: {together * 1000:.2f} ms each (group commit)")
    print(f"recent_messages(limit=30):  {reads * 1000:.2f} ms each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="SQLAlchemy async URL (default: a fresh SQLite file)")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as data:
        url = args.url or f"sqlite+aiosqlite:///{data}/bench.db"
        print("database:", url.split(":", 1)[0])
        asyncio.run(run(url, args.count))


if __name__ == "__main__":
    main()
