"""Redis restarting while a reply streams (tests/scaleout covers a restart between
questions and the reconnection itself).

What the student sees: the reply streams on, every delta in order, and completes;
the socket stays open. What is stored: the question and the whole reply. When
service returns: the node stays ready throughout (`/readyz` 200, `bus` unavailable
while Redis is down); cross-node features (a teacher's broadcast) are refused with
`bus_unavailable` meanwhile and come back, without a restart of the node, once Redis
is up: the seconds from Redis's restart to a delivered broadcast are the figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from tests.faults.recovery import acknowledged_turns, record_return
from tests.fixtures_redis import RedisServer, redis_server
from tests.fixtures_server import ServerProcess, http_client, open_client
from tests.scaleout.test_cluster import QUESTION, broadcast, broadcasts_within, new_session

__all__ = ["redis_server"]  # re-exported so pytest finds the fixture here

#: Generous bound on the seconds from Redis's restart to a delivered broadcast (the
#: bus reconnects with jittered backoff).
RETURN_BOUND_SECONDS = 15.0
OUTAGE_SECONDS = 1.0
SLOW_REPLY = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.25"}


async def test_a_redis_restart_mid_reply_streams_on_and_broadcasts_come_back(
    server_factory: Callable[..., ServerProcess],
    redis_server: RedisServer,
    request: pytest.FixtureRequest,
) -> None:
    node = await anyio.to_thread.run_sync(
        lambda: server_factory(READERAI_REDIS_URL=redis_server.url, **SLOW_REPLY)
    )
    session_id = await new_session(node, "class-f")
    outage: dict[str, Any] = {}
    async with open_client(node, session_id) as client, http_client(node) as http:
        await client.recv()
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=2, within=30)

        async def restart_redis() -> None:
            await anyio.to_thread.run_sync(redis_server.stop)
            outage["down"] = time.monotonic()
            outage["broadcast"] = (await broadcast(node, "class-f", "Hello?")).json()
            outage["ready"] = (await http.get("/readyz")).json()
            await anyio.sleep(OUTAGE_SECONDS)
            outage["up"] = time.monotonic()
            await anyio.to_thread.run_sync(redis_server.start)
            outage["started"] = time.monotonic()

        arrivals: list[float] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(restart_redis)
            while events[-1]["type"] != "RESPONSE_DONE":
                events.append(await client.recv(30))
                arrivals.append(time.monotonic())

        assert outage["ready"] == {"status": "ready", "bus": "unavailable"}
        assert outage["broadcast"]["error"]["code"] == "bus_unavailable"
        assert any(outage["down"] < at < outage["up"] for at in arrivals), (
            "the reply streams on while Redis is down"
        )
        done = events[-1]["payload"]
        assert done["status"] == "completed" and done.get("error") is None, done
        deltas = [e["payload"] for e in events if e["type"] == "RESPONSE_DELTA"]
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1)), "none lost"
        assert "".join(d["text"] for d in deltas) == done["text"]

        with anyio.fail_after(RETURN_BOUND_SECONDS):  # the node reconnects by itself
            while True:
                if (await broadcast(node, "class-f", "We are back.")).status_code == 202:
                    break
                await anyio.sleep(0.1)
        assert "We are back." in await broadcasts_within(client, 1.5)
        record_return(request.node, time.monotonic() - outage["started"], RETURN_BOUND_SECONDS)
        assert (await http.get("/readyz")).json() == {"status": "ready", "bus": "ok"}
        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]

    assert node.starts == 1
    assert [m["turnId"] for m in messages if m["role"] == "student"] == acknowledged_turns(events)
    assert [(m["role"], m["status"]) for m in messages] == [
        ("student", "completed"),
        ("tutor", "completed"),
    ]
    assert messages[1]["text"] == done["text"], "the reply is stored whole"
