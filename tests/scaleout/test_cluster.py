"""Several nodes behind no load balancer at all: any node serves any session.

Each test starts real server processes on one private Redis and one PostgreSQL
database, and talks to them with real WebSocket clients.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from typing import Any

import anyio
import httpx

from tests.fixtures_redis import RedisServer
from tests.fixtures_server import Client, ServerProcess, http_client, open_client
from tests.scaleout.conftest import StartNodes

QUESTION = "What did the little mouse do to help the lion?"
#: Slow replies, so a test can act while one is streaming.
SLOW = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.15"}


async def ensure_class(node: ServerProcess, class_id: str) -> None:
    """The class exists, taught by a teacher the admin creates."""
    async with http_client(node) as admin:
        await admin.post("/api/teachers", json={"name": "Teacher", "userId": "teacher-1"})
        made = await admin.post(
            "/api/classes", json={"name": class_id, "id": class_id, "teacherId": "teacher-1"}
        )
        assert made.status_code in (201, 409), made.text


async def new_session(node: ServerProcess, class_id: str | None = None) -> str:
    body: dict[str, Any] = {"passageId": "the-lion-and-the-mouse"}
    if class_id:
        await ensure_class(node, class_id)
        body["classId"] = class_id
    async with http_client(node) as http:
        response = await http.post("/api/sessions", json=body)
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id


async def broadcast(node: ServerProcess, class_id: str, text: str) -> httpx.Response:
    async with http_client(node) as http:
        return await http.post(f"/api/classes/{class_id}/broadcasts", json={"text": text})


async def broadcasts_within(client: Client, seconds: float) -> list[str]:
    """Texts of the CLASS_BROADCAST events `client` receives in `seconds`."""
    texts = []
    with anyio.move_on_after(seconds):
        while True:
            event = await client.recv(seconds)
            if event["type"] == "CLASS_BROADCAST":
                texts.append(event["payload"]["text"])
    return texts


async def test_a_broadcast_through_node_c_reaches_students_on_a_and_b_once_each(
    start_nodes: StartNodes,
) -> None:
    a, b, c = await anyio.to_thread.run_sync(start_nodes, 3)
    on_a, on_b = await new_session(a, "class-7"), await new_session(b, "class-7")
    elsewhere = await new_session(a, "class-8")
    async with (
        open_client(a, on_a) as student_a,
        open_client(b, on_b) as student_b,
        open_client(a, elsewhere) as other_class,
    ):
        nodes = {(await s.recv())["payload"]["nodeId"] for s in (student_a, student_b)}
        assert len(nodes) == 2, "the two students are held by two different nodes"
        await other_class.recv()

        response = await broadcast(c, "class-7", "Read page 3 now, please.")
        assert response.status_code == 202, response.text

        assert await broadcasts_within(student_a, 1.5) == ["Read page 3 now, please."]
        assert await broadcasts_within(student_b, 0.5) == ["Read page 3 now, please."]
        assert await broadcasts_within(other_class, 0.2) == [], "other classes hear nothing"


async def test_a_notice_reaches_the_session_on_whichever_node_holds_it(
    start_nodes: StartNodes,
) -> None:
    a, b = await anyio.to_thread.run_sync(start_nodes, 2)
    session_id = await new_session(a)
    async with open_client(a, session_id) as student:
        await student.recv()
        async with http_client(b) as http:
            response = await http.post(
                f"/api/sessions/{session_id}/notices", json={"text": "Well read!"}
            )
        assert response.status_code == 202 and response.json()["nodes"] == 1
        notice = await student.recv_until("NOTICE")
        assert notice[-1]["payload"]["text"] == "Well read!"


async def test_a_reply_in_flight_on_a_resumes_on_b_in_order_then_is_in_history(
    start_nodes: StartNodes,
) -> None:
    a, b = await anyio.to_thread.run_sync(lambda: start_nodes(2, **SLOW))
    session_id = await new_session(a)
    async with open_client(a, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=3)
    turn_id = events[0]["payload"]["turnId"]
    seen = [e["payload"]["text"] for e in events if e["type"] == "RESPONSE_DELTA"]

    async with open_client(b, session_id, "?lastSeq=3") as client:
        restored = (await client.recv())["payload"]
        rest = await client.recv_until("RESPONSE_DONE", within=30)

    assert restored["inflight"]["turnId"] == turn_id, "node B sees the reply node A is writing"
    assert restored["messages"][-1]["role"] == "student", "the reply is not also in history"
    deltas = [e["payload"] for e in rest if e["type"] == "RESPONSE_DELTA"]
    assert [d["seq"] for d in deltas] == list(range(4, 4 + len(deltas))) and deltas
    done = rest[-1]["payload"]
    assert done["status"] == "completed"
    assert done["text"] == "".join(seen + [d["text"] for d in deltas]), "no gap, no duplicate"

    async with open_client(b, session_id) as client:
        history = (await client.recv())["payload"]
    assert history["inflight"] is None
    assert [(m["role"], m["status"]) for m in history["messages"][-2:]] == [
        ("student", "completed"),
        ("tutor", "completed"),
    ]
    assert history["messages"][-1]["text"] == done["text"]


async def test_kill_9_mid_reply_leaves_the_question_and_an_interrupted_partial_reply(
    start_nodes: StartNodes,
) -> None:
    a, b = await anyio.to_thread.run_sync(lambda: start_nodes(2, **SLOW))
    session_id = await new_session(a)
    async with open_client(a, session_id) as client:
        await client.recv()
        await client.ask("Who helped the lion?")
        first = await client.recv_until("RESPONSE_DONE", within=30)
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=12, within=30)
        acked = [
            e["payload"]["turnId"]
            for e in first + events
            if e["type"] == "INTERRUPTION_ACKNOWLEDGED"
        ]
        await anyio.to_thread.run_sync(lambda: a.stop(signal.SIGKILL))
    seen = "".join(e["payload"]["text"] for e in events if e["type"] == "RESPONSE_DELTA")

    # Node B may still see the reply as being written (its lease has not run out):
    # then it follows it and ends it as `interrupted` once the lease expires.
    async with open_client(b, session_id) as client:
        restored = (await client.recv())["payload"]
        if restored["inflight"] is not None:
            done = (await client.recv_until("RESPONSE_DONE", within=20))[-1]["payload"]
            assert done["status"] == "interrupted"
    async with open_client(b, session_id) as client:
        history = (await client.recv())["payload"]

    assert history["inflight"] is None
    messages = history["messages"]
    student_turns = [m["turnId"] for m in messages if m["role"] == "student"]
    assert student_turns == acked, "every acknowledged question is stored"
    last = messages[-1]
    assert (last["role"], last["status"], last["turnId"]) == ("tutor", "interrupted", acked[-1])
    assert last["text"], "the reply is stored as far as it was checkpointed"
    assert seen.startswith(last["text"]), "what is stored is what was streamed, cut short"


async def test_two_workers_with_redis_both_deliver_broadcasts(
    start_nodes: StartNodes,
) -> None:
    (node,) = await anyio.to_thread.run_sync(lambda: start_nodes(1, READERAI_WORKERS="2"))
    clients: list[Client] = []
    workers: Counter[str] = Counter()
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(24):
            session_id = await new_session(node, "class-w")
            client = await stack.enter_async_context(open_client(node, session_id))
            workers[(await client.recv())["payload"]["nodeId"]] += 1
            clients.append(client)
            if len(workers) == 2 and len(clients) >= 4:
                break
        assert len(workers) == 2, f"connections all landed on one worker: {workers}"
        response = await broadcast(node, "class-w", "Time to read together.")
        assert response.status_code == 202
        for client in clients:
            assert await broadcasts_within(client, 1.0) == ["Time to read together."]


async def test_redis_restart_sessions_keep_answering_and_broadcasts_come_back(
    start_nodes: StartNodes, redis_server: RedisServer
) -> None:
    (node,) = await anyio.to_thread.run_sync(start_nodes, 1)
    session_id = await new_session(node, "class-r")
    async with open_client(node, session_id) as client:
        await client.recv()
        await anyio.to_thread.run_sync(redis_server.stop)

        await client.ask(QUESTION)
        done = (await client.recv_until("RESPONSE_DONE", within=30))[-1]["payload"]
        assert done["status"] == "completed" and done["text"], "the session keeps answering"
        refused = await broadcast(node, "class-r", "Hello?")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "bus_unavailable"

        await anyio.to_thread.run_sync(redis_server.start)
        for _ in range(100):  # the node reconnects by itself, with backoff
            if (await broadcast(node, "class-r", "We are back.")).status_code == 202:
                break
            await anyio.sleep(0.2)
        assert "We are back." in await broadcasts_within(client, 1.5)

    async with http_client(node) as http:
        history = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
    assert [(m["role"], m["status"]) for m in history] == [
        ("student", "completed"),
        ("tutor", "completed"),
    ]


async def test_the_cluster_engine_limit_holds_across_nodes(start_nodes: StartNodes) -> None:
    a, b = await anyio.to_thread.run_sync(
        lambda: start_nodes(2, READERAI_CLUSTER_ENGINE_CONCURRENCY="1", **SLOW)
    )
    on_a, on_b = await new_session(a), await new_session(b)
    async with open_client(a, on_a) as first, open_client(b, on_b) as second:
        await first.recv()
        await second.recv()
        await first.ask(QUESTION)
        await first.recv_until("RESPONSE_DELTA", seq=1)
        await second.ask(QUESTION)
        waiting = await second.recv_until("RESPONSE_QUEUED", within=5)
        assert waiting[-1]["payload"]["position"] == 1, "node B's reply waits for node A's"

        events: list[str] = []

        async def watch(client: Client, name: str, until: str) -> None:
            # Each event is noted as it arrives, so `events` is the order across both
            # sockets (node A's RESPONSE_DONE may well come after B has started).
            with anyio.fail_after(40):
                while (event := await client.recv(within=40))["type"] != until:
                    events.append(f"{name}:{event['type']}")
            events.append(f"{name}:{until}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, first, "a", "RESPONSE_DONE")
            tg.start_soon(watch, second, "b", "RESPONSE_STARTED")
        # Node A gives its slot back when its engine stream ends (its last delta).
        last_a_delta = max(i for i, e in enumerate(events) if e == "a:RESPONSE_DELTA")
        assert last_a_delta < events.index("b:RESPONSE_STARTED")
        done = (await second.recv_until("RESPONSE_DONE", within=40))[-1]["payload"]
        assert done["status"] == "completed"
