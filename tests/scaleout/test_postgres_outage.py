"""PostgreSQL restarting under a node: readiness drops, writes wait, nothing is lost.

Each test states what the student sees (events; the socket stays open, no close
code), what is stored (the REST history: every acknowledged question, every reply
completed), and when service returns (seconds from PostgreSQL's restart to an
answered question, listed after the run and held to a generous bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from tests.faults.recovery import acknowledged_turns, record_return
from tests.fixtures_pg import PostgresServer, private_postgres
from tests.fixtures_server import ServerProcess, http_client, open_client
from tests.scaleout.test_cluster import QUESTION, new_session

__all__ = ["private_postgres"]  # re-exported so pytest finds the fixture here

#: Generous bound on the seconds from PostgreSQL's restart to an answered question
#: (writes retry with backoff capped at 1 s; a reply takes about a second).
RETURN_BOUND_SECONDS = 10.0
#: Words come this far apart, so a reply is still streaming across a restart.
SLOW_REPLY = {"READERAI_EXTRACTIVE_TOKEN_DELAY": "0.25"}
#: How long PostgreSQL stays down in the mid-reply test.
OUTAGE_SECONDS = 1.0


async def start_node(
    server_factory: Callable[..., ServerProcess], postgres: PostgresServer, **env: str
) -> ServerProcess:
    return await anyio.to_thread.run_sync(
        lambda: server_factory(READERAI_DATABASE_URL=postgres.url, **env)
    )


async def test_a_postgres_restart_drops_readiness_and_loses_no_acknowledged_question(
    server_factory: Callable[..., ServerProcess],
    private_postgres: PostgresServer,
    request: pytest.FixtureRequest,
) -> None:
    node = await start_node(server_factory, private_postgres)
    session_id = await new_session(node)
    async with (
        open_client(node, session_id) as client,
        http_client(node) as http,
    ):
        await client.recv()
        await client.ask("Who helped the lion?")
        first = await client.recv_until("RESPONSE_DONE", within=30)

        await anyio.to_thread.run_sync(private_postgres.stop)
        assert (await http.get("/readyz")).status_code == 503

        # A second connection cannot be checked against the store: it is told to
        # come back later (1013), and the open one is untouched.
        async with open_client(node, session_id) as late:
            with pytest.raises(ConnectionClosed) as refused:
                await late.recv(within=30)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013

        await client.ask(QUESTION)  # its write waits, retrying, while the database is down
        with anyio.move_on_after(OUTAGE_SECONDS):
            early = await client.recv(OUTAGE_SECONDS + 1)
            pytest.fail(f"nothing may be acknowledged while the database is down: {early}")
        await anyio.to_thread.run_sync(private_postgres.start)
        since = time.monotonic()

        events = await client.recv_until("RESPONSE_DONE", within=30)
        record_return(request.node, time.monotonic() - since, RETURN_BOUND_SECONDS)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "INTERRUPTION_ACKNOWLEDGED" and "ERROR" not in kinds
        assert events[-1]["payload"]["status"] == "completed"
        assert (await http.get("/readyz")).status_code == 200

        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
    assert [m["turnId"] for m in messages if m["role"] == "student"] == acknowledged_turns(
        first + events
    )
    assert [(m["role"], m["status"]) for m in messages] == [
        ("student", "completed"),
        ("tutor", "completed"),
    ] * 2
    assert messages[2]["text"] == QUESTION
    assert messages[3]["text"] == events[-1]["payload"]["text"]


async def test_a_postgres_restart_mid_reply_streams_on_and_stores_the_whole_reply(
    server_factory: Callable[..., ServerProcess],
    private_postgres: PostgresServer,
    request: pytest.FixtureRequest,
) -> None:
    node = await start_node(server_factory, private_postgres, **SLOW_REPLY)
    session_id = await new_session(node)
    outage: dict[str, float] = {}
    async with (
        open_client(node, session_id) as client,
        http_client(node) as http,
    ):
        await client.recv()
        await client.ask(QUESTION)
        events = await client.recv_until("RESPONSE_DELTA", seq=2, within=30)

        async def restart_postgres() -> None:
            await anyio.to_thread.run_sync(private_postgres.stop)
            outage["down"] = time.monotonic()
            outage["ready"] = float((await http.get("/readyz")).status_code)
            await anyio.sleep(OUTAGE_SECONDS)
            outage["up"] = time.monotonic()
            await anyio.to_thread.run_sync(private_postgres.start)
            outage["started"] = time.monotonic()

        arrivals: list[tuple[float, dict[str, Any]]] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(restart_postgres)
            while not events or events[-1]["type"] != "RESPONSE_DONE":
                events.append(await client.recv(30))
                arrivals.append((time.monotonic(), events[-1]))
        assert outage["ready"] == 503, "not ready while the database is down"
        streamed_while_down = [
            e
            for at, e in arrivals
            if outage["down"] < at < outage["up"] and e["type"] == "RESPONSE_DELTA"
        ]
        assert streamed_while_down, "the reply streams on while the database is down"
        done = events[-1]["payload"]
        assert done["status"] == "completed" and done.get("error") is None, done
        # The reply's last write waited for the database: it ends once that is stored.
        record_return(request.node, arrivals[-1][0] - outage["started"], RETURN_BOUND_SECONDS)
        deltas = [e["payload"] for e in events if e["type"] == "RESPONSE_DELTA"]
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1)), "none lost"
        assert "".join(d["text"] for d in deltas) == done["text"]

        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]

    assert [m["turnId"] for m in messages if m["role"] == "student"] == acknowledged_turns(events)
    assert [(m["role"], m["status"]) for m in messages] == [
        ("student", "completed"),
        ("tutor", "completed"),
    ]
    assert messages[1]["text"] == done["text"], "the reply is stored whole"
