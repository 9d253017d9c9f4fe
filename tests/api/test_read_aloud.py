"""Read-aloud mode over a real WebSocket, heard by the real Whisper model: a reading
synthesised by Piper streams in, and the server follows it with `READING_PROGRESS`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from readerai.loadtest.readings import PASSAGE, WORDS, Script, speak
from tests.api.test_passage_jobs import TEACHER, add_passage, has_ended, job_when
from tests.api.test_read_aloud_help import Events, stream, student_in_class
from tests.fixtures_server import (
    Client,
    ServerProcess,
    create_session,
    http_client,
    open_client,
    running_server,
)
from tests.speech_samples import chunks, silence

pytestmark = pytest.mark.slow

FRAME_MS = 160


@pytest.fixture(scope="module")
def reading_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("read-aloud")) as server:
        yield server


async def add_reading_passage(server: ServerProcess) -> str:
    async with http_client(server, TEACHER) as http:
        job_id, passage_id = await add_passage(http, title="The Puppy", text=PASSAGE)
        await job_when(http, job_id, has_ended)
    return passage_id


async def test_a_read_aloud_session_is_followed_to_the_end_and_still_answers_questions(
    reading_server: ServerProcess,
) -> None:
    reading = await anyio.to_thread.run_sync(speak, Script("clean"))
    passage_id = await add_reading_passage(reading_server)
    session_id = await create_session(reading_server, passage_id=None)
    frames = chunks(reading.pcm, FRAME_MS)
    seen: list[tuple[float, dict[str, Any]]] = []
    async with open_client(reading_server, session_id) as client:
        await client.recv()  # SESSION_RESTORED
        await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect, client, seen, done)
            for i, frame in enumerate(frames):
                if i == len(frames) // 2:
                    await client.ask("Why was the puppy cold?")
                await client.ws.send(frame)
                await anyio.sleep(FRAME_MS / 1000 * 0.8)  # a little faster than real time
            await client.send("SESSION_UPDATE", mode="conversation")
            with anyio.fail_after(60):
                await done.wait()
            tg.cancel_scope.cancel()

    progress = [event["payload"] for _, event in seen if event["type"] == "READING_PROGRESS"]
    assert progress, "no READING_PROGRESS"
    assert {p["passageId"] for p in progress} == {passage_id}
    indices = [p["wordIndex"] for p in progress]
    assert indices == sorted(indices), indices  # a clean reading never moves back
    assert len(set(indices)) == len(indices)  # sent only when the word changed
    assert indices[-1] >= len(WORDS) - 3
    assert all(0 <= p["position"] < len(PASSAGE) for p in progress)
    assert not [e for _, e in seen if e["type"] == "ERROR"]

    # The position is kept like a client's reading progress: a reconnect sees it.
    async with open_client(reading_server, session_id) as client:
        restored = (await client.recv())["payload"]
    kept = {p["passageId"]: p["position"] for p in restored["progress"]}
    assert kept[passage_id] == progress[-1]["position"]


async def test_a_reading_started_again_resumes_from_the_offset_stored_by_the_page(
    reading_server: ServerProcess,
) -> None:
    """The page stores the start of the sentence the student moved to; a reading
    aloud started then resumes there: a stall at once is helped with that sentence's
    next word, not the passage's first."""
    passage_id = await add_reading_passage(reading_server)
    async with http_client(reading_server, TEACHER) as http:
        passage = (await http.get(f"/api/passages/{passage_id}")).json()
    third = passage["sentenceStarts"][2]
    assert PASSAGE[third:].startswith("His mother filled")
    token, session_id = await student_in_class(
        reading_server, "c-resume", passage_id, stallSeconds=1.0, stallHelp="say_word"
    )
    async with open_client(reading_server, session_id, token=token) as client:
        await client.recv()  # SESSION_RESTORED
        # A position is a character offset into the text: past its end is refused.
        await client.send("READING_PROGRESS", passageId=passage_id, position=len(PASSAGE) + 1)
        refused = (await client.recv_until("ERROR"))[-1]["payload"]
        assert refused["code"] == "invalid_payload"
        await client.send("READING_PROGRESS", passageId=passage_id, position=third)
        events = Events(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.collect)
            await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
            with anyio.fail_after(30):
                while not events.of("RESPONSE_DONE"):  # the reader stays silent
                    await stream(client, silence(1000), 1.5)
            tg.cancel_scope.cancel()
    # "His", the sentence's first word, counts as read (see `resume_at`).
    assert events.of("RESPONSE_DONE")[0]["text"] == "The word is “mother”."
    assert not events.of("ERROR")

    async with open_client(reading_server, session_id, token=token) as client:
        restored = (await client.recv())["payload"]
    assert [(p["passageId"], p["position"]) for p in restored["progress"]] == [(passage_id, third)]


async def test_read_aloud_without_a_passage_is_refused_clearly(
    reading_server: ServerProcess,
) -> None:
    session_id = await create_session(reading_server, passage_id=None)
    async with open_client(reading_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", mode="read_aloud")
        error = (await client.recv_until("ERROR"))[-1]["payload"]
        assert error["code"] == "invalid_payload"
        assert "passage" in error["message"]
        await client.send("SESSION_UPDATE", mode="read_aloud", passageId="no-such-passage")
        missing = (await client.recv_until("ERROR"))[-1]["payload"]
        assert missing["code"] == "not_found"
        # Still in conversation mode: audio needs voice turned on first.
        await client.ws.send(b"\x00\x00" * 160)
        unsupported = (await client.recv_until("ERROR"))[-1]["payload"]
        assert unsupported["code"] == "unsupported"


async def collect(
    client: Client, seen: list[tuple[float, dict[str, Any]]], done: anyio.Event
) -> None:
    """Events as they arrive, with when; `done` once the reading and the answer are in."""
    while True:
        frame = await client.ws.recv()
        assert isinstance(frame, str)
        seen.append((time.monotonic(), json.loads(frame)))
        if reached_the_end(seen) and answered(seen):
            done.set()


def reached_the_end(seen: list[tuple[float, dict[str, Any]]]) -> bool:
    return any(
        e["type"] == "READING_PROGRESS" and e["payload"]["wordIndex"] >= len(WORDS) - 3
        for _, e in seen
    )


def answered(seen: list[tuple[float, dict[str, Any]]]) -> bool:
    return any(
        e["type"] == "RESPONSE_DONE" and e["payload"]["status"] == "completed" for _, e in seen
    )
