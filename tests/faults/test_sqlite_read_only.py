"""The SQLite disk turning read-only under a serving node, then being repaired.

What the student sees: a question the node cannot store is refused with `ERROR`
`store_unavailable` and never acknowledged; the connection stays open, so the
student can ask again. What is stored: everything acknowledged before the fault,
readable throughout; nothing of the refused question. When service returns: the
node is not ready (`/readyz` 503) while writes fail, and serves again, without a
restart, once the disk is writable, as soon as the next question is asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from tests.faults.disk import Ext4Disk, ext4_disk
from tests.faults.recovery import (
    acknowledged_turns,
    ask_until_answered,
    attempt,
    record_return,
)
from tests.fixtures_server import ServerProcess, http_client, open_client
from tests.scaleout.test_cluster import QUESTION, new_session

__all__ = ["ext4_disk"]  # re-exported so pytest finds the fixture here

#: A question is refused after this long when the disk stays read-only.
RETRY_SECONDS = 1.0
#: Generous bound on the seconds from the repaired disk to an answered question.
RETURN_BOUND_SECONDS = 10.0


async def test_a_read_only_disk_refuses_questions_and_serves_again_once_replaced(
    server_factory: Callable[..., ServerProcess],
    ext4_disk: Ext4Disk,
    request: pytest.FixtureRequest,
) -> None:
    node = await anyio.to_thread.run_sync(
        lambda: server_factory(
            READERAI_DATABASE_URL=f"sqlite+aiosqlite:///{ext4_disk.mountpoint}/readerai.db",
            READERAI_STORE_WRITE_RETRY_SECONDS=str(RETRY_SECONDS),
        )
    )
    session_id = await new_session(node)
    async with open_client(node, session_id) as client, http_client(node) as http:
        await client.recv()
        before = await attempt(client, "Who helped the lion?")
        assert before[-1]["payload"].get("status") == "completed", before[-1]

        await anyio.to_thread.run_sync(ext4_disk.fail)

        refused = await attempt(client, QUESTION)
        assert [e["type"] for e in refused] == ["ERROR"], "never acknowledged"
        assert refused[-1]["payload"]["code"] == "store_unavailable"
        await client.send("PING", id="still-open")
        assert (await client.recv())["type"] == "PONG", "the connection lives on"
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (503, "store_unavailable")
        during = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
        assert [m["role"] for m in during] == ["student", "tutor"], "reads go on"
        async with open_client(node, session_id) as second:
            restored = (await second.recv())["payload"]["messages"]
        assert [m["role"] for m in restored] == ["student", "tutor"], "so do reconnects"

        await anyio.to_thread.run_sync(ext4_disk.replace)
        since = time.monotonic()
        recovery = await ask_until_answered(client, QUESTION, since, RETURN_BOUND_SECONDS)
        record_return(request.node, recovery.answered_after, RETURN_BOUND_SECONDS)
        assert (await http.get("/readyz")).status_code == 200
        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]

    assert node.proc is not None and node.proc.poll() is None, "the node never restarted"
    assert node.starts == 1
    stored = [m["turnId"] for m in messages if m["role"] == "student"]
    assert stored == [*acknowledged_turns(before), recovery.turn_id]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("student", "completed"),
        ("tutor", "completed"),
    ] * 2
    assert messages[-1]["text"] == recovery.events[-1]["payload"]["text"]
