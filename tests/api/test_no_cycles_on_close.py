"""Connections end without leaving cyclic garbage, on a real server.

The node freezes what survives the collector's young passes (`readerai.collector`):
a cycle that becomes garbage after that waits for the full pass, every
`READERAI_GC_FULL_COLLECTION_SECONDS` (an hour by default). So ending a session,
whichever way, must leave nothing for that pass: each closed connection's objects
would otherwise stay in memory for up to an hour. Here the full pass runs every
second and logs what it freed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.fixtures_server import (
    Client,
    ServerProcess,
    create_session,
    open_client,
    running_server,
)

SESSIONS = 6


async def full_passes_after(server: ServerProcess, logged: int, count: int) -> list[int]:
    """What the next `count` full collector passes logged after line `logged` freed."""
    with anyio.fail_after(30):
        while True:
            events = await anyio.to_thread.run_sync(server.log_events)
            freed = [e["freed"] for e in events[logged:] if e.get("event") == "gc.full_collection"]
            if len(freed) >= count:
                return freed[:count]
            await anyio.sleep(0.2)


async def end(server: ServerProcess, how: str) -> None:
    """A session that is answered once, then ends `how`."""
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        assert (await client.recv())["type"] == "SESSION_RESTORED"
        await client.ask("Who helped the lion?")
        if how == "cancelled":
            await client.recv_until("RESPONSE_DELTA")
            await client.send("RESPONSE_CANCEL")
            await client.recv_until("RESPONSE_DONE", status="cancelled")
        elif how == "mid-reply":
            await client.recv_until("RESPONSE_DELTA")
            await close_abruptly(client)
            return
        else:
            await client.recv_until("RESPONSE_DONE")
        if how == "dropped":
            await close_abruptly(client)


async def close_abruptly(client: Client) -> None:
    """Drop the TCP connection without a close frame."""
    client.ws.transport.abort()
    await asyncio.sleep(0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "READERAI_GC_FREEZE_SECONDS": "0.1",
        "READERAI_GC_FULL_COLLECTION_SECONDS": "1",
        "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.05",
    }
    with running_server(tmp_path, **env) as srv:
        yield srv


async def test_sessions_ended_every_way_leave_nothing_for_the_full_pass(
    server: ServerProcess,
) -> None:
    ways = ["closed", "cancelled", "mid-reply", "dropped"]
    # Once each first: what start-up and the first requests leave is freed by then.
    await asyncio.gather(*(end(server, how) for how in ways))
    await full_passes_after(server, 0, 2)
    logged = len(await anyio.to_thread.run_sync(server.log_events))
    await asyncio.gather(*(end(server, how) for how in ways for _ in range(SESSIONS)))
    ended = len(await anyio.to_thread.run_sync(server.log_events))
    # Two passes after the last session ended (replies cut off are stored meanwhile).
    await full_passes_after(server, ended, 2)
    events = await anyio.to_thread.run_sync(server.log_events)
    freed = [e["freed"] for e in events[logged:] if e.get("event") == "gc.full_collection"]
    assert set(freed) == {0}, f"cyclic garbage left, freed by the full passes: {freed}"
