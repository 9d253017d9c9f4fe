"""A class in use: the teacher's live feed, broadcasts for late comers, demo links."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from tests.fixtures_server import ROOT, ServerProcess, http_client, mint_token, open_client

PASSAGE = "the-lion-and-the-mouse"


async def set_up_class(server: ServerProcess, teacher: str, class_id: str, student: str) -> str:
    """A teacher, a class with one student, and a session of that student."""
    async with http_client(server) as admin:
        await admin.post("/api/teachers", json={"name": teacher, "userId": teacher})
    async with http_client(server, mint_token("teacher", teacher)) as http:
        assert (await http.post("/api/classes", json={"name": class_id, "id": class_id})).is_success
        added = await http.post(
            f"/api/classes/{class_id}/students", json={"name": student, "userId": student}
        )
        assert added.is_success
    async with http_client(server, mint_token("student", student, class_id)) as http:
        created = await http.post("/api/sessions", json={"passageId": PASSAGE})
        session_id: str = created.json()["id"]
        return session_id


class Feed:
    """The teacher's dashboard feed, parsed: (event, data, seconds since opened)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, float]] = []
        self.opened = time.monotonic()

    async def read(self, response: httpx.Response) -> None:
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
                self.events.append((kind, data, time.monotonic() - self.opened))

    async def wait_for(self, match: Callable[[str, Any], bool], within: float = 5.0) -> float:
        """When (monotonic) the first matching event arrived."""
        with anyio.fail_after(within):
            while True:
                for kind, data, at in self.events:
                    if match(kind, data):
                        return at + self.opened
                await anyio.sleep(0.02)


async def test_the_dashboard_sees_a_student_come_read_ask_and_leave_within_a_second(
    server: ServerProcess,
) -> None:
    session_id = await set_up_class(server, "t-feed", "c-feed", "s-feed")
    feed = Feed()
    async with (
        http_client(server, mint_token("teacher", "t-feed")) as teacher,
        teacher.stream("GET", "/api/classes/c-feed/feed") as response,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(feed.read, response)
        await feed.wait_for(lambda kind, data: kind == "roster")
        roster = feed.events[0][1]
        assert [(e["userId"], e["online"]) for e in roster] == [("s-feed", False)]

        student = mint_token("student", "s-feed", "c-feed")
        async with open_client(server, session_id, token=student) as client:
            await client.recv()
            online = await feed.wait_for(
                lambda k, d: k == "student" and d.get("online") is True and d["userId"] == "s-feed"
            )
            sent = time.monotonic()
            await client.send("READING_PROGRESS", passageId=PASSAGE, position=4)
            moved = await feed.wait_for(lambda k, d: k == "student" and d.get("position") == 4)
            assert moved - sent < 1.0, "the dashboard follows within a second"
            await client.ask("Who helped the lion?")
            asked = await feed.wait_for(lambda k, d: k == "message" and d["role"] == "student")
            assert asked - sent < 2.0
            await client.recv_until("RESPONSE_DONE")
            await feed.wait_for(lambda k, d: k == "message" and d["role"] == "tutor")
        await feed.wait_for(lambda k, d: k == "student" and d.get("online") is False)
        assert online > 0
        tg.cancel_scope.cancel()

    question = next(d for k, d, _ in feed.events if k == "message" and d["role"] == "student")
    assert (question["text"], question["sessionId"]) == ("Who helped the lion?", session_id)
    async with http_client(server, mint_token("teacher", "t-feed")) as teacher:
        after = (await teacher.get("/api/classes/c-feed/roster")).json()
    assert after[0]["questions"] == 1 and after[0]["position"] == 4
    assert after[0]["sessionId"] == session_id and after[0]["lastActivity"]


async def test_a_student_who_connects_later_sees_the_last_broadcasts(
    server: ServerProcess,
) -> None:
    session_id = await set_up_class(server, "t-late", "c-late", "s-late")
    async with http_client(server, mint_token("teacher", "t-late")) as teacher:
        for text in ("Open your books.", "Read page 2."):
            assert (
                await teacher.post("/api/classes/c-late/broadcasts", json={"text": text})
            ).status_code == 202
    student = mint_token("student", "s-late", "c-late")
    async with open_client(server, session_id, token=student) as client:
        restored = (await client.recv())["payload"]
    assert [b["text"] for b in restored["broadcasts"]] == ["Open your books.", "Read page 2."]


async def test_serve_on_the_defaults_logs_demo_links_whose_codes_sign_in_once(
    server_factory: Callable[..., ServerProcess],
) -> None:
    node = await anyio.to_thread.run_sync(lambda: server_factory(READERAI_DEMO_ACCOUNTS="true"))
    events = await anyio.to_thread.run_sync(node.log_events)
    links = next(e for e in events if e.get("event") == "demo.sign_in")
    assert links["teacher"].startswith(f"{node.base_url}/teacher?code=")
    assert links["student"].startswith(f"{node.base_url}/?code=")
    async with httpx.AsyncClient(base_url=node.base_url) as http:
        for link, role in ((links["teacher"], "teacher"), (links["student"], "student")):
            code = link.rsplit("=", 1)[1]
            signed_in = await http.post("/api/auth/exchange", json={"code": code})
            assert signed_in.status_code == 200 and signed_in.json()["role"] == role
            assert (await http.post("/api/auth/exchange", json={"code": code})).status_code == 401
    assert "eyJ" not in links["teacher"] + links["student"], "no token in a URL"


def test_readerai_token_mints_a_token_the_server_accepts(server: ServerProcess) -> None:
    env = {
        "READERAI_AUTH_SECRET": server.full_env()["READERAI_AUTH_SECRET"],
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "readerai", "token", "--role", "teacher", "--user", "cli-t"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    me = httpx.get(
        f"{server.base_url}/api/me",
        headers={"Authorization": f"Bearer {result.stdout.strip()}"},
        timeout=10,
    )
    assert me.json() == {"userId": "cli-t", "role": "teacher", "name": "cli-t", "classId": None}
