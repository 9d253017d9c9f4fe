"""The node-wide engine limit: a waiting student sees its queue position."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from tests.fixtures_server import ServerProcess, create_session, open_client


async def test_second_student_waits_with_visible_position_then_is_answered(
    server_factory: Callable[..., ServerProcess],
) -> None:
    env = {"READERAI_ENGINE_CONCURRENCY": "1", "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.05"}
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    first_id, second_id = await create_session(server), await create_session(server)
    async with open_client(server, first_id) as first, open_client(server, second_id) as second:
        await first.recv()
        await second.recv()
        await first.ask("What did the mouse promise?")
        await first.recv_until("RESPONSE_STARTED")
        await second.ask("What did the mouse promise?")
        waiting = await second.recv_until("RESPONSE_DONE")
        first_done = (await first.recv_until("RESPONSE_DONE"))[-1]["payload"]

    types = [e["type"] for e in waiting]
    assert types[:2] == ["INTERRUPTION_ACKNOWLEDGED", "RESPONSE_QUEUED"]
    assert waiting[1]["payload"]["position"] == 1
    assert types.index("RESPONSE_QUEUED") < types.index("RESPONSE_STARTED")
    assert waiting[-1]["payload"]["status"] == first_done["status"] == "completed"


async def test_cancel_while_queued_leaves_the_queue(
    server_factory: Callable[..., ServerProcess],
) -> None:
    env = {"READERAI_ENGINE_CONCURRENCY": "1", "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.05"}
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    first_id, second_id = await create_session(server), await create_session(server)
    async with open_client(server, first_id) as first, open_client(server, second_id) as second:
        await first.recv()
        await second.recv()
        await first.ask("What did the mouse promise?")
        await first.recv_until("RESPONSE_STARTED")
        await second.ask("What did the mouse promise?")
        await second.recv_until("RESPONSE_QUEUED")
        await second.send("RESPONSE_CANCEL")
        done = (await second.recv_until("RESPONSE_DONE"))[-1]["payload"]
        assert (done["status"], done["text"]) == ("cancelled", "")
        await second.ask("Who was caught in the net?")
        answered = (await second.recv_until("RESPONSE_DONE", status="completed"))[-1]["payload"]
    assert answered["text"]
