"""`/metrics` of `readerai serve --workers 2`: whichever worker answers a scrape, it
counts the connections and turns of both, and forgets the gauges of a worker that died."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fixtures_redis import RedisServer, redis_server
from tests.fixtures_server import Client, ServerProcess, create_session, open_client
from tests.observability.env import NO_SPEECH_MODELS
from tests.observability.scrape import SampleKey, scrape, value

__all__ = ["redis_server"]  # the fixture, used here

pytestmark = pytest.mark.slow

QUESTION = "Why did the lion let the little mouse go?"
#: Sampled gauges (sessions held, tasks) are refreshed by each worker once a second,
#: and the parent looks for dead workers every half second.
SAMPLED_WITHIN = 10.0


@pytest.fixture
def two_workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """`readerai serve --workers 2` on a private Redis; its TMPDIR is `tmp_path/tmp`."""
    (tmp_path / "tmp").mkdir()
    server = ServerProcess(
        tmp_path / "server",
        env={
            "READERAI_WORKERS": "2",
            "READERAI_REDIS_URL": redis_server.url,
            "TMPDIR": str(tmp_path / "tmp"),
            **NO_SPEECH_MODELS,
        },
    )
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert not list((tmp_path / "tmp").glob("readerai-metrics-*")), "the parent removed it"


def metrics_dir_modes(tmp: Path) -> list[int]:
    """The permissions of each metrics folder the server made in `tmp`."""
    return [stat.S_IMODE(p.stat().st_mode) for p in tmp.glob("readerai-metrics-*")]


def worker_pids(server: ServerProcess) -> list[int]:
    """The worker processes of the server (uvicorn spawns them)."""
    assert server.proc is not None
    parent = server.proc.pid
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


async def still_open(client: Client) -> bool:
    """Whether the connection answers a PING (False once its worker is gone)."""
    try:
        await client.send("PING", id="alive")
        await client.recv_until("PONG", within=5)
    except ConnectionClosed:
        return False
    return True


async def scrape_until(
    base_url: str, name: str, expected: float, within: float = SAMPLED_WITHIN
) -> dict[SampleKey, float]:
    """Scrape until `name` reads `expected` (sampled gauges lag by up to a second)."""
    for _ in range(int(within / 0.2)):
        samples = await scrape(base_url)
        if value(samples, name) == expected:
            return samples
        await anyio.sleep(0.2)
    raise AssertionError(f"{name} is {value(samples, name)}, not {expected}, after {within} s")


async def test_one_scrape_counts_both_workers_and_forgets_a_dead_ones_gauges(
    two_workers: ServerProcess, tmp_path: Path
) -> None:
    server = two_workers
    modes = await anyio.to_thread.run_sync(metrics_dir_modes, tmp_path / "tmp")
    assert modes == [0o700], "one folder, private to the server's user"
    by_worker: defaultdict[str, list[Client]] = defaultdict(list)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(30):
            session_id = await create_session(server)
            client = await stack.enter_async_context(open_client(server, session_id))
            by_worker[(await client.recv())["payload"]["nodeId"]].append(client)
            if len(by_worker) == 2 and sum(map(len, by_worker.values())) >= 3:
                break
        assert len(by_worker) == 2, "the connections all landed on one worker"
        opened = sum(map(len, by_worker.values()))

        # Gauges: the sum over the workers, in every scrape (several connections,
        # so both workers answer some of them).
        for _ in range(6):
            assert value(await scrape(server.base_url), "readerai_connections") == opened
        await scrape_until(server.base_url, "readerai_live_sessions", opened)

        # Counters and histograms: one turn on each worker, both in every scrape.
        for clients in by_worker.values():
            await clients[0].ask(QUESTION)
            done = (await clients[0].recv_until("RESPONSE_DONE"))[-1]["payload"]
            assert done["status"] == "completed"
        for _ in range(6):
            samples = await scrape(server.base_url)
            assert value(samples, "readerai_turns_total", status="completed") == 2
            assert value(samples, "readerai_ack_seconds_count") == 2
            assert value(samples, "readerai_first_delta_seconds_count") == 2
            assert value(samples, "readerai_engine_wait_seconds_count") == 2
            assert value(samples, "readerai_bus_up") == 1
            assert value(samples, "readerai_store_up") == 1

        # A worker killed: its connections end, its gauges stop counting (the parent
        # marks it dead) while the turns it served stay in the totals.
        os.kill((await anyio.to_thread.run_sync(worker_pids, server))[0], signal.SIGKILL)
        clients = [c for cs in by_worker.values() for c in cs]
        alive = [c for c in clients if await still_open(c)]
        assert 0 < len(alive) < opened
        samples = await scrape_until(server.base_url, "readerai_connections", len(alive))
        assert value(samples, "readerai_turns_total", status="completed") == 2
        await scrape_until(server.base_url, "readerai_live_sessions", len(alive))

    await scrape_until(server.base_url, "readerai_connections", 0)
