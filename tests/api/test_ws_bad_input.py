"""Bad input gets a clear ERROR and the session lives on; floods and giants are closed."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fixtures_server import ServerProcess, create_session, open_client

CASES = [
    ("not json", "invalid_json"),
    ("[1, 2, 3]", "invalid_payload"),
    (json.dumps({"type": "NO_SUCH_EVENT", "payload": {}}), "unknown_type"),
    (json.dumps({"type": "STUDENT_INTERRUPTION", "payload": {}}), "invalid_payload"),
    (
        json.dumps({"type": "STUDENT_INTERRUPTION", "payload": {"questionText": 42}}),
        "invalid_payload",
    ),
    (
        json.dumps({"type": "STUDENT_INTERRUPTION", "payload": {"questionText": "   "}}),
        "invalid_payload",
    ),
    (
        json.dumps({"type": "STUDENT_INTERRUPTION", "payload": {"questionText": "why " * 600}}),
        "text_too_long",
    ),
    (
        json.dumps({"type": "READING_PROGRESS", "payload": {"passageId": "x", "position": -1}}),
        "invalid_payload",
    ),
    (
        json.dumps({"type": "READING_PROGRESS", "payload": {"passageId": "nope", "position": 1}}),
        "not_found",
    ),
    (json.dumps({"type": "SESSION_UPDATE", "payload": {"passageId": "nope"}}), "not_found"),
    (json.dumps({"type": "PING", "payload": {"extra": True}}), "invalid_payload"),
    (b"\x00\x01binary", "unsupported"),
]


@pytest.mark.parametrize(("frame", "code"), CASES)
async def test_bad_frame_gets_error_and_session_still_answers(
    server: ServerProcess, frame: str | bytes, code: str
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ws.send(frame)
        error = await client.recv()
        assert error["type"] == "ERROR"
        assert error["payload"]["code"] == code
        assert error["payload"]["message"]
        await client.ask("Who helped the lion?")
        done = (await client.recv_until("RESPONSE_DONE"))[-1]["payload"]
        assert done["status"] == "completed"


async def test_oversized_frame_closes_with_1009(server: ServerProcess) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id, max_size=None) as client:
        await client.recv()
        await client.ws.send("x" * 70_000)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_flood_is_rate_limited_then_closed_with_1008(
    server_factory: Callable[..., ServerProcess],
) -> None:
    env = {
        "READERAI_RATE_LIMIT_PER_SECOND": "5",
        "READERAI_RATE_LIMIT_BURST": "5",
        "READERAI_RATE_LIMIT_STRIKES": "10",
    }
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    session_id = await create_session(server)
    codes: list[str] = []
    async with open_client(server, session_id) as client:
        await client.recv()
        for i in range(100):
            try:
                await client.send("PING", id=str(i))
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                event = await client.recv()
                if event["type"] == "ERROR":
                    codes.append(event["payload"]["code"])
    assert "rate_limited" in codes
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_other_sessions_are_untouched_by_a_flooding_one(
    server_factory: Callable[..., ServerProcess],
) -> None:
    env = {"READERAI_RATE_LIMIT_PER_SECOND": "5", "READERAI_RATE_LIMIT_BURST": "5"}
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    flooder, calm = await create_session(server), await create_session(server)
    async with open_client(server, flooder) as bad, open_client(server, calm) as good:
        await bad.recv()
        await good.recv()
        for i in range(100):
            try:
                await bad.send("PING", id=str(i))
            except ConnectionClosed:
                break
        await good.ask("Who helped the lion?")
        done = (await good.recv_until("RESPONSE_DONE"))[-1]["payload"]
    assert done["status"] == "completed"
