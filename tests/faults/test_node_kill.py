"""A node killed (SIGKILL) mid-reply, then started again: the student's side of it.

tests/api/test_ws_resume.py proves the checkpointed reply is stored `interrupted`
and tests/scaleout/test_cluster.py that another node serves the session at once;
this test states what the student sees and when the restarted node serves again.

What the student sees: the socket drops with no close frame (1006); on reconnect,
`SESSION_RESTORED` holds the history, the cut reply `interrupted`, nothing in flight.
What is stored: every acknowledged question; the earlier reply `completed`, the cut
one `interrupted`. When service returns: the seconds from the restart command to the
first answered question (the node's start-up included).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.faults.recovery import acknowledged_turns, ask_until_answered, attempt, record_return
from tests.fixtures_server import ServerProcess, http_client, open_client
from tests.scaleout.test_cluster import QUESTION, new_session

#: Words this far apart: seven of them span a reply checkpoint (one a second).
SLOW_REPLY = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.2"}
FAST_REPLY = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.02"}
#: Generous bound on the seconds from the restart to an answer (start-up included).
RETURN_BOUND_SECONDS = 60.0
#: WebSocket close code a client reports when the connection dropped without a close.
ABNORMAL_CLOSURE = 1006


async def test_kill_9_mid_reply_drops_the_socket_and_the_restarted_node_answers(
    server_factory: Callable[..., ServerProcess], request: pytest.FixtureRequest
) -> None:
    node = await anyio.to_thread.run_sync(lambda: server_factory(**SLOW_REPLY))
    session_id = await new_session(node)
    async with open_client(node, session_id) as client:
        await client.recv()
        first = await attempt(client, "Who helped the lion?")
        await client.ask(QUESTION)
        cut = await client.recv_until("RESPONSE_DELTA", seq=7, within=30)
        await anyio.to_thread.run_sync(lambda: node.stop(signal.SIGKILL))
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is None, "no close frame from a killed process"
        assert client.ws.close_code == ABNORMAL_CLOSURE

    node.env.update(FAST_REPLY)  # the restarted node need not be slow
    since = time.monotonic()
    await anyio.to_thread.run_sync(node.start)
    async with open_client(node, session_id) as client, http_client(node) as http:
        restored = (await client.recv())["payload"]
        recovery = await ask_until_answered(
            client, "Who helped the lion?", since, RETURN_BOUND_SECONDS
        )
        record_return(request.node, recovery.answered_after, RETURN_BOUND_SECONDS)
        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]

    assert restored["inflight"] is None
    assert [(m["role"], m["status"]) for m in restored["messages"]] == [
        ("student", "completed"),
        ("tutor", "completed"),
        ("student", "completed"),
        ("tutor", "interrupted"),
    ]
    acknowledged = [*acknowledged_turns(first + cut), recovery.turn_id]
    assert [m["turnId"] for m in messages if m["role"] == "student"] == acknowledged
    assert [m["status"] for m in messages if m["role"] == "tutor"] == [
        "completed",
        "interrupted",
        "completed",
    ]
