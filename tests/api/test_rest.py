"""The REST API: sessions, passages, health, and error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from tests.fixtures_server import ServerProcess, create_session, http_client, open_client


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(server) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["requestId"] == response.headers["x-request-id"]


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "bus": "ok"})


async def test_sample_passages_are_listed_and_split_into_sentences(http: httpx.AsyncClient) -> None:
    listed = (await http.get("/api/passages")).json()
    assert len(listed) >= 5
    lion = next(p for p in listed if p["id"] == "the-lion-and-the-mouse")
    passage = (await http.get("/api/passages/the-lion-and-the-mouse")).json()
    assert passage["title"] == lion["title"]
    assert len(passage["sentences"]) == lion["sentenceCount"] > 3


async def test_posted_passage_is_split_server_side(http: httpx.AsyncClient) -> None:
    body = {"title": "Tiny Tale", "text": "Sam had a red hat. The wind took it! Did Sam cry?"}
    accepted = await http.post("/api/passages", json=body)
    assert accepted.status_code == 202
    job_url = f"/api/jobs/{accepted.json()['jobId']}"
    for _ in range(300):
        job = (await http.get(job_url)).json()
        if job["status"] in ("completed", "failed"):
            break
        await anyio.sleep(0.1)
    assert job["status"] == "completed", job
    passage = (await http.get(f"/api/passages/{accepted.json()['passageId']}")).json()
    assert passage["sentences"] == ["Sam had a red hat.", "The wind took it!", "Did Sam cry?"]
    assert passage["status"] == "ready"


async def test_bad_requests_get_json_errors_with_request_ids(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/passages/nope"), 404, "not_found")
    assert_error(await http.get("/api/sessions/nope"), 404, "not_found")
    assert_error(await http.post("/api/passages", json={"title": ""}), 422, "invalid_payload")
    assert_error(await http.post("/api/sessions", json={"passageId": "nope"}), 404, "not_found")
    assert_error(await http.get("/api/sessions/x/messages?limit=0"), 422, "invalid_payload")
    sent_id = await http.get("/api/passages/nope", headers={"X-Request-ID": "trace-123"})
    assert sent_id.json()["error"]["requestId"] == "trace-123"


async def test_names_of_only_whitespace_are_refused_and_names_are_stored_trimmed(
    http: httpx.AsyncClient,
) -> None:
    # Found by schemathesis: a class named "\r" was trimmed to "" after validation
    # and the store refused it with a 500.
    for blank in ("\r", " ", "\n\t "):
        assert_error(await http.post("/api/classes", json={"name": blank}), 422, "invalid_payload")
        passage = {"title": blank, "text": "Sam had a red hat."}
        assert_error(await http.post("/api/passages", json=passage), 422, "invalid_payload")
    created = await http.post("/api/classes", json={"name": "  Room 4\n", "id": "room-4"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Room 4"
    for blank in ("\r", "  "):
        added = await http.post("/api/classes/room-4/students", json={"name": blank})
        assert_error(added, 422, "invalid_payload")
    added = await http.post("/api/classes/room-4/students", json={"name": " Ann "})
    assert added.status_code == 201, added.text
    assert added.json()["name"] == "Ann"


async def test_session_history_pages_backwards(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        for i in range(3):
            await client.ask(f"Question {i}: who is strong?")
            await client.recv_until("RESPONSE_DONE")
    page = (await http.get(f"/api/sessions/{session_id}/messages?limit=4")).json()
    assert [m["text"] for m in page["messages"] if m["role"] == "student"] == [
        "Question 1: who is strong?",
        "Question 2: who is strong?",
    ]
    older = (
        await http.get(f"/api/sessions/{session_id}/messages?limit=4&before={page['nextBefore']}")
    ).json()
    assert [m["role"] for m in older["messages"]] == ["student", "tutor"]
    assert older["nextBefore"] is None
    detail = (await http.get(f"/api/sessions/{session_id}")).json()
    assert len(detail["messages"]) == 6 and detail["passageId"] == "the-lion-and-the-mouse"


async def test_openapi_docs_are_served(http: httpx.AsyncClient) -> None:
    assert (await http.get("/docs")).status_code == 200
    schema = (await http.get("/openapi.json")).json()
    assert "/api/sessions/{session_id}/messages" in schema["paths"]


async def test_student_page_is_served(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert (await http.get("/static/app.js")).status_code == 200
