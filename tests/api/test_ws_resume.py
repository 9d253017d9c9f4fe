"""Reconnecting during a reply, restarting the server, SIGTERM mid-reply."""

from __future__ import annotations

import signal
from collections.abc import Callable

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fixtures_server import ServerProcess, create_session, open_client

# Slow enough that a reply is still streaming while the test reconnects or signals.
SLOW = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.1"}
QUESTION = "What did the little mouse do to help the lion?"


async def test_reconnect_during_reply_resumes_from_last_seq_without_gap_or_duplicate(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory(**SLOW))
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=3)
    turn_id = events[0]["payload"]["turnId"]
    before = [e["payload"]["text"] for e in events if e["type"] == "RESPONSE_DELTA"]

    async with open_client(server, session_id, "?lastSeq=3") as client:
        state = (await client.recv())["payload"]
        rest = await client.recv_until("RESPONSE_DONE")

    assert state["inflight"]["turnId"] == turn_id
    assert state["messages"][-1]["role"] == "student"  # the reply is not duplicated in history
    seqs = [e["payload"]["seq"] for e in rest if e["type"] == "RESPONSE_DELTA"]
    assert seqs == list(range(4, 4 + len(seqs))) and seqs, "resumed at seq 4, no gap"
    after = [e["payload"]["text"] for e in rest if e["type"] == "RESPONSE_DELTA"]
    done = rest[-1]["payload"]
    assert done["status"] == "completed"
    assert "".join(before + after) == done["text"]


async def test_reconnect_without_last_seq_gets_text_so_far_then_the_rest(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory(**SLOW))
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        await client.recv_until("RESPONSE_DELTA", seq=2)
    async with open_client(server, session_id) as client:
        inflight = (await client.recv())["payload"]["inflight"]
        rest = await client.recv_until("RESPONSE_DONE")
    deltas = [e["payload"] for e in rest if e["type"] == "RESPONSE_DELTA"]
    assert deltas[0]["seq"] == inflight["seq"] + 1
    assert inflight["text"] + "".join(d["text"] for d in deltas) == rest[-1]["payload"]["text"]


async def test_restart_keeps_history_and_progress(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory())
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        done = (await client.recv_until("RESPONSE_DONE"))[-1]["payload"]
        await client.send("READING_PROGRESS", passageId="the-lion-and-the-mouse", position=7)
        await client.send("PING")
        await client.recv_until("PONG")

    await anyio.to_thread.run_sync(server.stop)
    await anyio.to_thread.run_sync(server.start)

    async with open_client(server, session_id) as client:
        state = (await client.recv())["payload"]
    assert [m["text"] for m in state["messages"]] == [QUESTION, done["text"]]
    assert [(p["passageId"], p["position"]) for p in state["progress"]] == [
        ("the-lion-and-the-mouse", 7)
    ]


async def test_sigterm_mid_reply_closes_with_1012_and_saves_the_finished_reply(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory(**SLOW))
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        await client.recv_until("RESPONSE_DELTA", seq=2)
        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv_until("NEVER", within=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    code = await anyio.to_thread.run_sync(lambda: server.proc.wait(30))  # type: ignore[union-attr]
    assert code == 0

    await anyio.to_thread.run_sync(server.start)
    async with open_client(server, session_id) as client:
        messages = (await client.recv())["payload"]["messages"]
    tutor = messages[-1]
    assert tutor["role"] == "tutor" and tutor["status"] == "completed"
    assert "mouse" in tutor["text"].lower()


async def test_sigterm_past_the_grace_period_stores_the_reply_as_interrupted(
    server_factory: Callable[..., ServerProcess],
) -> None:
    env = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.5", "READERAI_SHUTDOWN_GRACE_SECONDS": "0.5"}
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        await client.recv_until("RESPONSE_DELTA", seq=1)
    code = await anyio.to_thread.run_sync(server.stop)
    assert code == 0
    await anyio.to_thread.run_sync(server.start)
    async with open_client(server, session_id) as client:
        messages = (await client.recv())["payload"]["messages"]
    tutor = messages[-1]
    assert tutor["status"] == "interrupted"
    assert tutor["text"], "what was generated before the deadline is kept"


async def test_kill_9_mid_reply_then_restart_shows_the_checkpointed_reply_interrupted(
    server_factory: Callable[..., ServerProcess],
) -> None:
    env = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.3"}
    server = await anyio.to_thread.run_sync(lambda: server_factory(**env))
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=6, within=20)
        await anyio.to_thread.run_sync(lambda: server.stop(signal.SIGKILL))
    seen = "".join(e["payload"]["text"] for e in events if e["type"] == "RESPONSE_DELTA")

    await anyio.to_thread.run_sync(server.start)
    async with open_client(server, session_id) as client:
        state = (await client.recv())["payload"]
    assert state["inflight"] is None
    question, reply = state["messages"][-2:]
    assert (question["role"], question["text"]) == ("student", QUESTION)
    assert (reply["role"], reply["status"]) == ("tutor", "interrupted")
    # Checkpointed every second: 6 deltas at 0.3 s took over a second to stream.
    assert reply["text"] and seen.startswith(reply["text"])
