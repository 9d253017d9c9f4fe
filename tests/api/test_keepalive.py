"""Keepalive: the server pings every connection and drops one that stops answering."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fixtures_server import ServerProcess, create_session, open_client

FAST_PINGS = {"READERAI_WS_PING_INTERVAL": "0.5", "READERAI_WS_PING_TIMEOUT": "0.5"}


async def test_a_client_that_answers_pings_stays_connected(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory(**FAST_PINGS))
    session_id = await create_session(server)
    async with open_client(server, session_id, ping_interval=None) as client:
        await client.recv()
        await anyio.sleep(2.5)  # several ping rounds, answered by the client library
        await client.send("PING", id="still-here")
        assert (await client.recv_until("PONG"))[-1]["payload"]["id"] == "still-here"


async def test_a_client_that_stops_answering_pings_is_closed_with_1011(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory(**FAST_PINGS))
    session_id = await create_session(server)
    async with open_client(server, session_id, ping_interval=None) as client:
        await client.recv()
        # Stop reading the socket at all: pings go unanswered, as with a dead peer.
        client.ws.transport.pause_reading()
        await anyio.sleep(2.0)
        client.ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv_until("NEVER", within=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
