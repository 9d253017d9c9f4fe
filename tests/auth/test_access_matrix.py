"""Every route and the WebSocket, for every kind of caller: the documented refusal,
or through for the right user (docs/classroom.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from readerai.store.sql import SqlStore
from tests.fixtures_server import ServerProcess, mint_token, ws_protocols
from tests.store.test_readings import reading

PASSAGE = "the-lion-and-the-mouse"


def tampered(token: str) -> str:
    """The same token with its role changed to admin and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


TOKENS = {
    "anonymous": None,
    "expired": mint_token("student", "s1", "c1", ttl=-300),
    "tampered": tampered(mint_token("student", "s1", "c1")),
    "s1": mint_token("student", "s1", "c1"),
    "s2": mint_token("student", "s2", "c2"),
    "t1": mint_token("teacher", "t1"),
    "t2": mint_token("teacher", "t2"),
    "admin": mint_token("admin", "root"),
}
UNAUTHENTICATED = ("anonymous", "expired", "tampered")


@dataclass
class World:
    server: ServerProcess
    s1_session: str
    job_id: str
    passage_id: str
    reading_id: str


def client(server: ServerProcess, who: str) -> httpx.AsyncClient:
    token = TOKENS[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.base_url, headers=headers)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(server: ServerProcess) -> AsyncIterator[World]:
    """Two teachers, each with a class of one student, and a session of student s1."""
    async with client(server, "admin") as admin:
        for teacher in ("t1", "t2"):
            response = await admin.post("/api/teachers", json={"name": teacher, "userId": teacher})
            assert response.status_code == 201, response.text
    for teacher, class_id, student in (("t1", "c1", "s1"), ("t2", "c2", "s2")):
        async with client(server, teacher) as http:
            made = await http.post("/api/classes", json={"name": class_id, "id": class_id})
            assert made.status_code == 201, made.text
            added = await http.post(
                f"/api/classes/{class_id}/students", json={"name": student, "userId": student}
            )
            assert added.status_code == 201, added.text
    async with client(server, "s1") as http:
        session = await http.post("/api/sessions", json={"passageId": PASSAGE})
        assert session.status_code == 201, session.text
        assert (session.json()["userId"], session.json()["classId"]) == ("s1", "c1")
    async with client(server, "t1") as http:
        accepted = await http.post("/api/passages", json={"title": "Narrated", "text": "Hi."})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        for _ in range(600):  # narration of one sentence by the bundled voice
            if (await http.get(f"/api/jobs/{job['jobId']}")).json()["status"] == "completed":
                break
            await anyio.sleep(0.1)
    # A reading aloud of s1 in c1, stored as the server stores one when it ends.
    store = SqlStore(f"sqlite+aiosqlite:///{server.data_dir}/readerai.db")
    await store.start()
    try:
        read = reading(user_id="s1", class_id="c1", passage_id=PASSAGE)
        await store.save_reading(read)
    finally:
        await store.close()
    yield World(server, session.json()["id"], job["jobId"], job["passageId"], read.id)


#: (method, path, body, callers who get through); everyone else is refused.
ROUTES: list[tuple[str, str, dict[str, object] | None, set[str]]] = [
    ("GET", "/api/me", None, {"s1", "s2", "t1", "t2", "admin"}),
    ("GET", "/api/passages", None, {"s1", "s2", "t1", "t2", "admin"}),
    ("GET", f"/api/passages/{PASSAGE}", None, {"s1", "s2", "t1", "t2", "admin"}),
    ("GET", "/api/sessions", None, {"s1", "s2", "t1", "t2", "admin"}),
    ("GET", "/api/sessions/{s1}", None, {"s1", "t1", "admin"}),
    ("GET", "/api/sessions/{s1}/messages", None, {"s1", "t1", "admin"}),
    ("POST", "/api/sessions/{s1}/notices", {"text": "hi"}, {"t1", "admin"}),
    ("POST", "/api/sessions", {"passageId": PASSAGE, "userId": "s1"}, {"s1", "t1", "admin"}),
    ("GET", "/api/classes", None, {"s1", "s2", "t1", "t2", "admin"}),
    ("POST", "/api/classes", {"name": "New class"}, {"t1", "t2", "admin"}),
    ("GET", "/api/classes/c1", None, {"s1", "t1", "admin"}),
    ("POST", "/api/classes/c1/students", {"name": "Newcomer"}, {"t1", "admin"}),
    ("POST", "/api/classes/c1/students/s1/code", None, {"t1", "admin"}),
    ("POST", "/api/classes/c1/broadcasts", {"text": "Page 2"}, {"t1", "admin"}),
    ("GET", "/api/classes/c1/broadcasts", None, {"s1", "t1", "admin"}),
    ("GET", "/api/classes/c1/roster", None, {"t1", "admin"}),
    ("POST", "/api/teachers", {"name": "Another"}, {"admin"}),
    ("POST", "/api/passages", {"title": "Tale", "text": "A tale."}, {"t1", "t2", "admin"}),
    ("GET", "/api/jobs/{job}", None, {"t1", "t2", "admin"}),
    ("GET", "/api/passages/{passage}/audio/0", None, {"s1", "s2", "t1", "t2", "admin"}),
    ("GET", "/api/classes/c1/readings", None, {"t1", "admin"}),
    ("GET", "/api/classes/c1/missed-words", None, {"t1", "admin"}),
    ("GET", "/api/classes/c1/students/s1/fluency", None, {"s1", "t1", "admin"}),
    ("GET", "/api/readings/{reading}", None, {"s1", "t1", "admin"}),
    ("PATCH", "/api/classes/c1", {"stallSeconds": 4.0, "stallHelp": "ask"}, {"t1", "admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES, ids=lambda v: str(v))
@pytest.mark.parametrize("who", list(TOKENS))
async def test_rest_route_refuses_or_admits(
    world: World,
    who: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
    allowed: set[str],
) -> None:
    async with client(world.server, who) as http:
        target = path.format(
            s1=world.s1_session,
            job=world.job_id,
            passage=world.passage_id,
            reading=world.reading_id,
        )
        response = await http.request(method, target, json=body)
    if who in allowed:
        assert response.status_code < 300, response.text
        return
    expected = (401, "unauthenticated") if who in UNAUTHENTICATED else (403, "forbidden")
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == expected, response.text
    assert error["message"]


@pytest.mark.parametrize("who", list(TOKENS))
async def test_dashboard_feed_is_for_the_class_teacher(world: World, who: str) -> None:
    async with (
        client(world.server, who) as http,
        http.stream("GET", "/api/classes/c1/feed") as response,
    ):
        if who in {"t1", "admin"}:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = await anext(response.aiter_lines())
            assert first == "event: roster"
        else:
            assert response.status_code == (401 if who in UNAUTHENTICATED else 403)


@pytest.mark.parametrize("who", list(TOKENS))
async def test_websocket_refuses_with_4401_or_4403_before_any_event(world: World, who: str) -> None:
    token = TOKENS[who]
    protocols = ws_protocols(token) if token else [Subprotocol("readerai.v1")]
    url = f"{world.server.ws_url}/ws/{world.s1_session}"
    async with connect(url, subprotocols=protocols) as ws:
        if who in {"s1", "t1", "admin"}:
            first = json.loads(await ws.recv())
            assert first["type"] == "SESSION_RESTORED"
            assert ws.subprotocol == "readerai.v1"
            return
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()  # anonymous: the server waits 5 s for an AUTH frame
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == (4401 if who in UNAUTHENTICATED else 4403)


async def test_the_token_may_come_in_a_first_auth_frame(world: World) -> None:
    url = f"{world.server.ws_url}/ws/{world.s1_session}"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "AUTH", "payload": {"token": TOKENS["s1"]}}))
        assert json.loads(await ws.recv())["type"] == "SESSION_RESTORED"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "AUTH", "payload": {"token": TOKENS["tampered"]}}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_public_routes_need_no_token_and_bad_codes_are_refused(world: World) -> None:
    async with client(world.server, "anonymous") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        refused = await http.post("/api/auth/exchange", json={"code": "NOPE2345"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_code"


async def test_a_code_signs_in_once_and_the_token_reaches_only_that_student(
    world: World,
) -> None:
    async with client(world.server, "t1") as teacher:
        code = (await teacher.post("/api/classes/c1/students/s1/code")).json()["code"]
    async with client(world.server, "anonymous") as http:
        signed_in = await http.post("/api/auth/exchange", json={"code": code.lower()})
        again = await http.post("/api/auth/exchange", json={"code": code})
    assert signed_in.status_code == 200, signed_in.text
    body = signed_in.json()
    assert (body["userId"], body["role"], body["classId"]) == ("s1", "student", "c1")
    assert again.status_code == 401, "a code works once"
    headers = {"Authorization": f"Bearer {body['token']}"}
    async with httpx.AsyncClient(base_url=world.server.base_url, headers=headers) as student:
        assert (await student.get(f"/api/sessions/{world.s1_session}")).status_code == 200
        assert (await student.get("/api/classes/c2")).status_code == 403


async def test_removing_a_student_is_for_the_class_teacher(world: World) -> None:
    async with client(world.server, "t1") as teacher:
        added = await teacher.post("/api/classes/c1/students", json={"name": "Leaver"})
        leaver = added.json()["userId"]
    path = f"/api/classes/c1/students/{leaver}"
    for who, status in (("anonymous", 401), ("tampered", 401), ("s1", 403), ("t2", 403)):
        async with client(world.server, who) as http:
            assert (await http.delete(path)).status_code == status, who
    async with client(world.server, "t1") as teacher:
        assert (await teacher.delete(path)).status_code == 204
        assert (await teacher.delete(path)).status_code == 404
