"""SIGTERM with many students connected and replies streaming (issue 7, item 9).

What a student sees: the connection closes with 1012 (server restarting). What is
stored: every acknowledged question, and each reply either `completed` (it finished
within the grace period) or `interrupted` with what was generated; none is left
`in_progress`. When: the process exits within the grace period plus the bounded
cleanup (`CANCEL_GRACE`) after the signal.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from readerai.supervisor import CANCEL_GRACE
from tests.fixtures_server import Client, ServerProcess, create_session, open_client

IDLE_STUDENTS = 40
ASKING_STUDENTS = 20
GRACE_SECONDS = 1.5
QUESTION = "What did the little mouse do to help the lion?"


async def _closed_code(client: Client) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv_until("NEVER", within=20)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def test_sigterm_under_load_closes_everyone_with_1012_and_loses_nothing(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # Replies of a few seconds each (0.3 s a word): some finish within the grace
    # period, the others are cut by it.
    env = {
        "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.3",
        "READERAI_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    sessions = [await create_session(server) for _ in range(IDLE_STUDENTS + ASKING_STUDENTS)]
    codes: list[int | None] = []
    acked: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(open_client(server, s)) for s in sessions]
        for client in clients:
            await client.recv()  # SESSION_RESTORED
        for session_id, client in zip(
            sessions[:ASKING_STUDENTS], clients[:ASKING_STUDENTS], strict=True
        ):
            await client.ask(QUESTION)
            events = await client.recv_until("RESPONSE_DELTA", seq=1)
            acked[session_id] = next(
                e["payload"]["turnId"] for e in events if e["type"] == "INTERRUPTION_ACKNOWLEDGED"
            )
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            for client in clients:

                async def close(client: Client = client) -> None:
                    codes.append(await _closed_code(client))

                tg.start_soon(close)
        exit_code = await anyio.to_thread.run_sync(lambda: server.proc.wait(60))  # type: ignore[union-attr]
        exited_after = time.monotonic() - signalled

    assert codes == [1012] * len(clients), "every student is told the server is restarting"
    assert exit_code == 0
    assert exited_after < GRACE_SECONDS + CANCEL_GRACE + 5, f"exited after {exited_after:.1f} s"

    await anyio.to_thread.run_sync(server.start)
    statuses = []
    for session_id, turn_id in acked.items():
        async with open_client(server, session_id) as client:
            restored = (await client.recv())["payload"]
        assert restored["inflight"] is None
        by_role = {m["role"]: m for m in restored["messages"] if m["turnId"] == turn_id}
        assert by_role["student"]["text"] == QUESTION, "the acknowledged question is stored"
        reply = by_role["tutor"]
        assert reply["status"] in ("completed", "interrupted"), reply
        assert reply["text"], "what was generated before the deadline is kept"
        statuses.append(reply["status"])
    assert "interrupted" in statuses, "the grace period cut the longer replies"
