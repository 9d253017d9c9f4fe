"""PostgreSQL restarting under a node: readiness drops, writes wait, nothing is lost."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from tests.fixtures_pg import PostgresServer, private_postgres
from tests.fixtures_server import ServerProcess, http_client, open_client
from tests.scaleout.test_cluster import QUESTION, new_session

__all__ = ["private_postgres"]  # re-exported so pytest finds the fixture here


async def test_a_postgres_restart_drops_readiness_and_loses_no_acknowledged_question(
    server_factory: Callable[..., ServerProcess], private_postgres: PostgresServer
) -> None:
    node = await anyio.to_thread.run_sync(
        lambda: server_factory(READERAI_DATABASE_URL=private_postgres.url)
    )
    session_id = await new_session(node)
    async with (
        open_client(node, session_id) as client,
        http_client(node) as http,
    ):
        await client.recv()
        await client.ask("Who helped the lion?")
        await client.recv_until("RESPONSE_DONE", within=30)

        await anyio.to_thread.run_sync(private_postgres.stop)
        assert (await http.get("/readyz")).status_code == 503

        await client.ask(QUESTION)  # its write waits, retrying, while the database is down
        await anyio.sleep(1.0)
        await anyio.to_thread.run_sync(private_postgres.start)

        events = await client.recv_until("RESPONSE_DONE", within=30)
        kinds = [e["type"] for e in events]
        assert "INTERRUPTION_ACKNOWLEDGED" in kinds and "ERROR" not in kinds
        assert events[-1]["payload"]["status"] == "completed"
        assert (await http.get("/readyz")).status_code == 200

        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("student", "completed"),
        ("tutor", "completed"),
        ("student", "completed"),
        ("tutor", "completed"),
    ]
    assert messages[2]["text"] == QUESTION
