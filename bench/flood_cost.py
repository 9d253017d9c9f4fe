"""Server CPU per flood: a client writing N small frames at once until closed (1008).

Starts a server as the flood test does (`tests/hostile/test_floods.py`, its limits:
a burst of 60 messages and 20 strikes), then, one after another, opens `--floods`
connections that each write `--frames` PING frames in one go and read until the
server closes them. Reports the server's CPU (from /proc) per flood and the
median time from the first byte written to the close.

    python bench/flood_cost.py [--floods 40] [--frames 2000]
    python bench/flood_cost.py --frames 82    # just past the strikes: the floor
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from ack_latency import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fixtures_server import ServerProcess, create_session, mint_token
from tests.hostile.peers import flood, flood_bytes
from tests.hostile.test_floods import PASSAGE, SERVER_ENV, cpu_seconds


async def main(floods: int, frames: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = ServerProcess(Path(folder) / "server", env=dict(SERVER_ENV))
        server.data_dir.mkdir()
        await asyncio.to_thread(server.start)
        try:
            assert server.proc is not None
            token, data = mint_token(), flood_bytes(frames, binary=False)
            sessions = [await create_session(server, PASSAGE) for _ in range(floods)]
            before = await cpu_seconds(server.proc.pid)
            seconds = []
            for session_id in sessions:
                ending = await flood(server, session_id, token, data)
                seconds.append(ending.seconds)
                await asyncio.sleep(0.2)
            after = await cpu_seconds(server.proc.pid)
        finally:
            await asyncio.to_thread(server.stop)
    print(f"command: python {shlex.join(sys.argv)}")
    print(f"machine: {machine()}")
    print(f"floods {floods} of {frames} frames ({len(data)} bytes each)")
    print(f"server CPU per flood: {(after - before) * 1000 / floods:.1f} ms")
    print(f"first byte to close, median: {statistics.median(seconds) * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--floods", type=int, default=40)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.floods, args.frames))
