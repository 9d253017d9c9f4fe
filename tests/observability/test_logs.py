"""The server's JSON log lines at info: every line of a turn names its request, session
and turn; no line holds a token, a question or a reply's words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.fixtures_server import (
    ServerProcess,
    http_client,
    mint_token,
    open_client,
    running_server,
)
from tests.observability.env import NO_SPEECH_MODELS

MARKER = "Quibbleflux"
#: Its reply quotes the passage's first sentences ("... as large as pillows ...").
QUESTION = f"{MARKER} wants to know: what were the lion's paws as large as?"
CANCELLED = f"{MARKER} asks why the lion laughed so hard that the leaves shook?"
RESUMED = f"{MARKER} asks how the mouse chewed the ropes with her sharp teeth?"
WS_REQUEST_ID = "obs-ws-connection-1"
HTTP_REQUEST_ID = "obs-http-request-1"


async def student_activity(server: ServerProcess, token: str) -> tuple[str, list[str]]:
    """A question answered, one cancelled, one resumed after a reconnect, a bad frame:
    the session id and every reply text the client saw."""
    async with http_client(server, token) as http:
        created = await http.post(
            "/api/sessions",
            json={"passageId": "the-lion-and-the-mouse"},
            headers={"X-Request-ID": HTTP_REQUEST_ID},
        )
        assert created.headers["x-request-id"] == HTTP_REQUEST_ID
        session_id: str = created.json()["id"]
    replies = []
    headers = {"X-Request-ID": WS_REQUEST_ID}
    async with open_client(server, session_id, token=token, additional_headers=headers) as client:
        assert client.ws.response is not None
        assert client.ws.response.headers["x-request-id"] == WS_REQUEST_ID
        await client.recv()
        await client.ask(QUESTION)
        replies.append((await client.recv_until("RESPONSE_DONE"))[-1]["payload"]["text"])

        await client.ask(CANCELLED)
        turn_id = (await client.recv_until("RESPONSE_DELTA"))[-1]["payload"]["turnId"]
        await client.send("RESPONSE_CANCEL", turnId=turn_id)
        done = (await client.recv_until("RESPONSE_DONE"))[-1]["payload"]
        assert done["status"] == "cancelled"

        await client.send("NO_SUCH_EVENT")  # refused with an ERROR, and logged
        await client.recv_until("ERROR")

        await client.ask(RESUMED)
        await client.recv_until("RESPONSE_DELTA", seq=2)
    # A client that also puts its token in the URL (none belongs there): not logged.
    async with open_client(server, session_id, f"?lastSeq=2&token={token}", token=token) as c:
        restored = (await c.recv())["payload"]
        if restored["inflight"] is None:  # it ended while we reconnected
            replies.append(restored["messages"][-1]["text"])
        else:
            replies.append((await c.recv_until("RESPONSE_DONE"))[-1]["payload"]["text"])
    return session_id, replies


def words_of(replies: list[str]) -> set[str]:
    """The replies' longer words (short ones, like "the", are in any log)."""
    return {w for r in replies for w in re.findall(r"[a-z]+", r.lower()) if len(w) >= 7}


@pytest.fixture
def logged_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path,
        READERAI_LOG_LEVEL="info",
        READERAI_EXTRACTIVE_TOKEN_DELAY="0.05",
        **NO_SPEECH_MODELS,
    ) as server:
        yield server


async def test_turn_lines_name_their_turn_and_no_line_holds_secrets_or_text(
    logged_server: ServerProcess,
) -> None:
    server = logged_server
    token = mint_token("student", "student-obs", name="Student")
    session_id, replies = await student_activity(server, token)
    await anyio.to_thread.run_sync(server.stop)  # every line written
    lines = (await anyio.Path(server.log_path or "").read_text()).splitlines()
    events: list[dict[str, Any]] = [json.loads(line) for line in lines]

    turn_lines = [e for e in events if e["event"].startswith("turn.") or "turn_id" in e]
    assert len([e for e in turn_lines if e["event"] == "turn.finished"]) == 3
    for line in turn_lines:  # all three turns began on the first connection
        assert line.get("session_id") == session_id, line
        assert line.get("request_id") == WS_REQUEST_ID, line
        assert line.get("turn_id"), line
    refused = [e for e in events if e["event"] == "client.refused"]
    assert [(e["session_id"], e["request_id"]) for e in refused] == [(session_id, WS_REQUEST_ID)]
    access = [e for e in events if e.get("logger") == "uvicorn.access"]
    assert access and all("request_id" in e for e in access)
    assert any(e["request_id"] == HTTP_REQUEST_ID for e in access)

    secrets = [token, MARKER, QUESTION, *replies, *words_of(replies)]
    for line in lines:
        for secret in secrets:
            assert secret.lower() not in line.lower(), f"{secret!r} is logged: {line}"
