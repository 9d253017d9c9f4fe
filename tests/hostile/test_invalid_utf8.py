"""A text frame that is not UTF-8: closed with 1007 (RFC 6455), and nothing else breaks."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fixtures_server import ServerProcess, create_session, open_client, running_server
from tests.hostile.frames import documented_close_codes

CLOSE_CODES = documented_close_codes()
NOT_UTF8 = [b"\xff", b'{"type": "PING", "payload": {"id": "\xc3\x28"}}', b"\xed\xa0\x80"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("utf8")) as srv:
        yield srv


async def send_not_utf8(server: ServerProcess, data: bytes) -> int | None:
    """The close code the server answers a text frame of `data` with."""
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ws.send(data, text=True)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv_until("NEVER", within=10)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


@pytest.mark.parametrize("data", NOT_UTF8)
async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007(
    server: ServerProcess, data: bytes
) -> None:
    assert await send_not_utf8(server, data) == 1007
    assert 1007 in CLOSE_CODES
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:  # the node serves on
        await client.recv()
        await client.send("PING", id="after")
        await client.recv_until("PONG", id="after")


async def test_a_text_frame_that_is_not_utf8_logs_no_error(server: ServerProcess) -> None:
    logged = len(await anyio.to_thread.run_sync(server.log_events))
    assert await send_not_utf8(server, b"\xff") == 1007
    errors: list[dict[str, object]] = []
    with anyio.move_on_after(3):  # the server writes its log from a thread of its own
        while not errors:
            events = await anyio.to_thread.run_sync(server.log_events)
            errors = [e for e in events[logged:] if e.get("level") == "error"]
            await anyio.sleep(0.1)
    assert not errors, errors
