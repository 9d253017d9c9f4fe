"""Adding a passage runs a job on a real server: split, index, narrate with Piper,
fail with a reason, and survive the server being killed mid-way."""

from __future__ import annotations

import io
import signal
import time
import wave
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from tests.fixtures_server import ServerProcess, http_client, mint_token

KITE = (
    "# The Kite\n\n"
    "Mia had a **red** kite. The wind took it [up high](https://example.org/sky).\n\n"
    "![a kite](kite.png)\n\n"
    "- She ran after it!\n"
)
TEACHER = mint_token("teacher", "t1")
STUDENT = mint_token("student", "s1", class_id="3b")


async def add_passage(http: httpx.AsyncClient, **body: Any) -> tuple[str, str]:
    response = await http.post("/api/passages", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    return accepted["jobId"], accepted["passageId"]


async def job_when(
    http: httpx.AsyncClient,
    job_id: str,
    check: Callable[[dict[str, Any]], bool],
    within: float = 60.0,
) -> dict[str, Any]:
    """The job as soon as `check(job)` holds (polled)."""
    deadline = time.monotonic() + within
    while True:
        response = await http.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if check(job):
            return job
        assert time.monotonic() < deadline, f"job never got there: {job}"
        await anyio.sleep(0.1)


def has_ended(job: dict[str, Any]) -> bool:
    return job["status"] in ("completed", "failed")


async def test_a_teachers_markdown_passage_is_prepared_and_narrated(
    server: ServerProcess,
) -> None:
    async with http_client(server, TEACHER) as http:
        job_id, passage_id = await add_passage(http, title="The Kite", text=KITE, format="markdown")
        job = await job_when(http, job_id, has_ended)
        assert (job["status"], job["progress"], job["detail"]) == ("completed", 1.0, None)
        assert (job["id"], job["kind"], job["passageId"]) == (job_id, "prepare_passage", passage_id)
        assert job["createdAt"] <= job["updatedAt"]
        passage = (await http.get(f"/api/passages/{passage_id}")).json()
    assert passage["sentences"] == [
        "Mia had a red kite.",
        "The wind took it up high.",
        "She ran after it!",
    ]
    assert (passage["status"], passage["narration"]) == ("ready", True)
    assert "**" not in passage["text"] and "kite.png" not in passage["text"]

    async with http_client(server, STUDENT) as http:
        listed = {p["id"]: p for p in (await http.get("/api/passages")).json()}
        audio = await http.get(f"/api/passages/{passage_id}/audio/0")
        missing = await http.get(f"/api/passages/{passage_id}/audio/3")
    assert (listed[passage_id]["status"], listed[passage_id]["narration"]) == ("ready", True)
    assert listed[passage_id]["sentenceCount"] == 3
    assert (audio.status_code, audio.headers["content-type"]) == (200, "audio/wav")
    with wave.open(io.BytesIO(audio.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        assert wav.getframerate() > 0 and wav.getnframes() > wav.getframerate() // 4
    assert missing.status_code == 404


async def test_samples_are_ready_without_narration(server: ServerProcess) -> None:
    async with http_client(server, STUDENT) as http:
        lion = (await http.get("/api/passages/the-lion-and-the-mouse")).json()
        audio = await http.get("/api/passages/the-lion-and-the-mouse/audio/0")
    assert (lion["status"], lion["narration"]) == ("ready", False)
    assert audio.status_code == 404


async def test_students_may_neither_add_passages_nor_follow_jobs(server: ServerProcess) -> None:
    async with http_client(server, TEACHER) as http:
        job_id, _ = await add_passage(http, title="Tiny", text="Sam ran. Sam sat.")
        unknown = await http.get("/api/jobs/no-such-job")
    async with http_client(server, STUDENT) as http:
        posted = await http.post("/api/passages", json={"title": "Mine", "text": "I ran."})
        followed = await http.get(f"/api/jobs/{job_id}")
    assert (posted.status_code, posted.json()["error"]["code"]) == (403, "forbidden")
    assert (followed.status_code, followed.json()["error"]["code"]) == (403, "forbidden")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


async def test_blank_text_is_refused_at_once(server: ServerProcess) -> None:
    async with http_client(server, TEACHER) as http:
        blank = await http.post("/api/passages", json={"title": "Blank", "text": "  \n "})
        bad_format = await http.post(
            "/api/passages", json={"title": "X", "text": "Hi.", "format": "html"}
        )
    assert (blank.status_code, bad_format.status_code) == (422, 422)


async def test_markdown_without_sentences_fails_its_job_with_the_reason(
    server: ServerProcess,
) -> None:
    async with http_client(server, TEACHER) as http:
        job_id, passage_id = await add_passage(
            http, title="Only Rules", text="***\n---\n", format="markdown"
        )
        job = await job_when(http, job_id, has_ended)
        passage = (await http.get(f"/api/passages/{passage_id}")).json()
    assert job["status"] == "failed"
    assert "no sentences" in job["detail"]
    assert (passage["status"], passage["narration"], passage["sentences"]) == ("failed", False, [])


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_job_cut_off_by_a_killed_server_is_resumed_after_restart(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(
        lambda: server_factory(READERAI_JOB_STALE_SECONDS="2", READERAI_JOB_HEARTBEAT_SECONDS="0.3")
    )
    text = " ".join(
        f"On day {n} the little fox ran across the long green field to find its friend."
        for n in range(1, 41)
    )
    async with http_client(server, TEACHER) as http:
        job_id, passage_id = await add_passage(http, title="Forty Days", text=text)
        running = await job_when(
            http, job_id, lambda job: job["status"] == "running" and job["progress"] > 0.2
        )
    assert running["progress"] < 1.0, "the job must still be running when the server dies"
    await anyio.to_thread.run_sync(lambda: server.stop(signal.SIGKILL))
    await anyio.to_thread.run_sync(server.start)

    async with http_client(server, TEACHER) as http:
        job = await job_when(http, job_id, has_ended, within=120)
        passage = (await http.get(f"/api/passages/{passage_id}")).json()
    assert (job["status"], job["progress"], job["detail"]) == ("completed", 1.0, None)
    assert (passage["status"], passage["narration"], len(passage["sentences"])) == (
        "ready",
        True,
        40,
    )
    events = await anyio.to_thread.run_sync(server.log_events)
    starts = [e for e in events if e.get("event") == "job.started"]
    assert [e["attempt"] for e in starts if e["job_id"] == job_id] == [1, 2]
