"""A question cancelled before its turn ever ran still ends like any other turn.

A client that sends a question and, at once, a cancel or another question can have
the second frame read before the first question's turn task has run a step. Each
acknowledged turn must still end with `RESPONSE_DONE` (and a stored reply), and the
session must leave the node's memory once its client has gone.

Found by `test_hostile_sessions.py` at commit 7ae78e8, where `TurnRunner.ask`
started the turn task only after storing the question, so a cancel read next
cancelled a task that had not started: its coroutine never ran, and with it neither
the `finally` that stores the reply, sends `RESPONSE_DONE`, clears `live.turn` and
lets the hub forget the session (one `LiveSession` leaked per race).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from tests.fixtures_server import (
    Client,
    ServerProcess,
    create_session,
    http_client,
    open_client,
    running_server,
)
from tests.hostile.node_work import quiet_work, settled_work

QUESTION = json.dumps({"type": "STUDENT_INTERRUPTION", "payload": {"questionText": "Who?"}})
CANCEL = json.dumps({"type": "RESPONSE_CANCEL", "payload": {}})
#: Longest wait for the turns to end: a whole reply takes about a second here.
ENDS_WITHIN = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.01"}
    with running_server(tmp_path_factory.mktemp("races"), **env) as srv:
        yield srv


async def send_at_once(client: Client, *frames: str) -> None:
    for frame in frames:
        await client.ws.send(frame)


async def turn_ends(client: Client, turns: int) -> list[tuple[str, str | None]]:
    """Each acknowledged turn and the status its `RESPONSE_DONE` gave (None: none
    came), once `turns` turns were acknowledged and ended, or `ENDS_WITHIN` passed."""
    acked: list[str] = []
    ended: dict[str, str] = {}
    with anyio.move_on_after(ENDS_WITHIN):
        while len(acked) < turns or not all(turn in ended for turn in acked):
            event: dict[str, Any] = await client.recv(within=ENDS_WITHIN)
            if event["type"] == "INTERRUPTION_ACKNOWLEDGED":
                acked.append(event["payload"]["turnId"])
            elif event["type"] == "RESPONSE_DONE":
                ended[event["payload"]["turnId"]] = event["payload"]["status"]
    return [(turn, ended.get(turn)) for turn in acked]


async def stored_replies(server: ServerProcess, session_id: str) -> list[str]:
    """The statuses of the session's stored replies, oldest first (read within the
    turn lease, so a reply left `in_progress` shows as such)."""
    async with http_client(server) as http:
        detail = (await http.get(f"/api/sessions/{session_id}")).raise_for_status().json()
    return [m["status"] for m in detail["messages"] if m["role"] == "tutor"]


async def test_a_question_cancelled_at_once_ends_with_response_done_cancelled(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await send_at_once(client, QUESTION, CANCEL)
        ends = await turn_ends(client, turns=1)
    assert [status for _, status in ends] == ["cancelled"]
    assert await stored_replies(server, session_id) == ["cancelled"]


async def test_a_question_replaced_at_once_ends_with_response_done_cancelled(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await send_at_once(client, QUESTION, QUESTION)
        ends = await turn_ends(client, turns=2)
    assert [status for _, status in ends] == ["cancelled", "completed"]
    assert await stored_replies(server, session_id) == ["cancelled", "completed"]


async def test_a_session_cancelled_at_once_is_forgotten_once_its_client_leaves(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    # The earlier tests' replies have ended, but their checkpoint loop may not yet.
    baseline = await quiet_work(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await send_at_once(client, QUESTION, CANCEL)
        await client.recv_until("INTERRUPTION_ACKNOWLEDGED")
    assert await settled_work(server, baseline, within=5) == baseline
