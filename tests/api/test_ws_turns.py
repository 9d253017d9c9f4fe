"""Questions, replies, barge-in and isolation over a real WebSocket to a real server."""

from __future__ import annotations

import anyio

from tests.fixtures_server import Client, ServerProcess, create_session, http_client, open_client

QUESTION = "Why did the lion let the mouse go?"


def deltas_of(events: list[dict], turn_id: str) -> list[dict]:
    return [
        e["payload"]
        for e in events
        if e["type"] == "RESPONSE_DELTA" and e["payload"]["turnId"] == turn_id
    ]


async def restored(client: Client) -> dict:
    event = await client.recv()
    assert event["type"] == "SESSION_RESTORED"
    payload: dict = event["payload"]
    return payload


async def test_question_is_acknowledged_then_reply_streams_and_completes(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        first = await restored(client)
        assert first["sessionId"] == session_id and first["messages"] == []
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DONE")

    types = [e["type"] for e in events]
    assert types[0] == "INTERRUPTION_ACKNOWLEDGED"
    turn_id = events[0]["payload"]["turnId"]
    assert types.index("RESPONSE_STARTED") < types.index("RESPONSE_DELTA")
    deltas = deltas_of(events, turn_id)
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    done = events[-1]["payload"]
    assert done["status"] == "completed"
    assert done["text"] == "".join(d["text"] for d in deltas)
    assert "mouse" in done["text"].lower()
    assert done["citations"], "the answer cites the passage sentences it used"


async def test_twenty_concurrent_sessions_see_only_their_own_events(server: ServerProcess) -> None:
    session_ids = [await create_session(server) for _ in range(20)]
    seen: dict[str, list[dict]] = {}

    async def converse(index: int, session_id: str) -> None:
        async with open_client(server, session_id) as client:
            await restored(client)
            await client.ask(f"Question number {index}: what did the mouse promise?")
            seen[session_id] = await client.recv_until("RESPONSE_DONE")

    async with anyio.create_task_group() as tg:
        for index, session_id in enumerate(session_ids):
            tg.start_soon(converse, index, session_id)

    turn_ids = {sid: events[0]["payload"]["turnId"] for sid, events in seen.items()}
    assert len(set(turn_ids.values())) == 20
    for session_id, events in seen.items():
        foreign = {e["payload"].get("turnId") for e in events} - {turn_ids[session_id]}
        assert foreign == set(), "a session received another session's events"

    async with http_client(server) as http:
        for index, session_id in enumerate(session_ids):
            messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
            assert [m["role"] for m in messages] == ["student", "tutor"]
            assert messages[0]["text"].startswith(f"Question number {index}:")
            assert messages[1]["turnId"] == turn_ids[session_id]


async def test_new_question_cancels_the_reply_in_flight_and_turns_never_interleave(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await restored(client)
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA")
        first_turn = events[0]["payload"]["turnId"]
        await client.ask("What did the hunters do?")
        events += await client.recv_until("RESPONSE_DONE", status="completed")

    done_first = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "RESPONSE_DONE" and e["payload"]["turnId"] == first_turn
    )
    assert events[done_first]["payload"]["status"] == "cancelled"
    second_ack = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "INTERRUPTION_ACKNOWLEDGED" and e["payload"]["turnId"] != first_turn
    )
    assert done_first < second_ack, "the old turn ends before the new one is acknowledged"
    second_turn = events[second_ack]["payload"]["turnId"]
    for i, event in enumerate(events):
        turn = event["payload"].get("turnId")
        if turn == first_turn:
            assert i <= done_first
        if turn == second_turn:
            assert i >= second_ack


async def test_cancel_stops_deltas_of_old_turn_and_stores_what_was_sent(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await restored(client)
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=3)
        turn_id = events[0]["payload"]["turnId"]
        await client.send("RESPONSE_CANCEL", turnId=turn_id)
        events += await client.recv_until("RESPONSE_DONE")
        done = events[-1]["payload"]
        # Nothing of the cancelled turn may follow its RESPONSE_DONE.
        await client.send("PING", id="after")
        tail = await client.recv_until("PONG", id="after")

    assert done["status"] == "cancelled"
    received = "".join(d["text"] for d in deltas_of(events, turn_id))
    assert done["text"] == received, "the stored reply is exactly what the student received"
    assert not deltas_of(tail, turn_id)
    async with http_client(server) as http:
        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
    tutor = messages[-1]
    assert (tutor["status"], tutor["text"]) == ("cancelled", received)


async def test_cancel_with_nothing_in_flight_is_harmless(server: ServerProcess) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await restored(client)
        await client.send("RESPONSE_CANCEL")
        await client.send("PING", id="x")
        assert (await client.recv())["type"] == "PONG"


async def test_disconnect_mid_reply_still_completes_and_restores_on_reconnect(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await restored(client)
        await client.ask(QUESTION)
        await client.recv_until("RESPONSE_DELTA", seq=2)
    # The socket is gone; the reply goes on and is stored.
    with anyio.fail_after(15):
        while True:
            async with open_client(server, session_id) as client:
                state = await restored(client)
            if state["inflight"] is None:
                break
            await anyio.sleep(0.2)
    roles = [(m["role"], m["status"]) for m in state["messages"]]
    assert roles == [("student", "completed"), ("tutor", "completed")]
    assert "mouse" in state["messages"][1]["text"].lower()


async def test_reading_progress_is_kept_per_passage(server: ServerProcess) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await restored(client)
        for position in range(1, 40):
            await client.send(
                "READING_PROGRESS", passageId="the-lion-and-the-mouse", position=position
            )
        await client.send("READING_PROGRESS", passageId="the-tortoise-and-the-hare", position=2)
        await client.send("PING", id="sync")
        await client.recv_until("PONG")
    async with open_client(server, session_id) as client:
        progress = {p["passageId"]: p["position"] for p in (await restored(client))["progress"]}
    assert progress == {"the-lion-and-the-mouse": 39, "the-tortoise-and-the-hare": 2}


async def test_session_update_changes_the_passage_questions_are_about(
    server: ServerProcess,
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await restored(client)
        await client.send("SESSION_UPDATE", passageId="the-tortoise-and-the-hare")
        await client.ask("Who won the race?")
        done = (await client.recv_until("RESPONSE_DONE"))[-1]["payload"]
    assert "race" in done["text"].lower(), "the answer comes from the new passage"
    async with open_client(server, session_id) as client:
        assert (await restored(client))["passageId"] == "the-tortoise-and-the-hare"


async def test_unknown_session_closes_with_4404(server: ServerProcess) -> None:
    async with open_client(server, "no-such-session") as client:
        from websockets.exceptions import ConnectionClosed

        try:
            await client.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4404
        else:
            raise AssertionError("expected the connection to close")
