"""A reading aloud over a real WebSocket ends scored and stored: the student gets
`READING_RESULT`, the teacher's feed a `reading` event, and the REST endpoints show
it (a class's readings, a student's fluency, the words missed, one reading for replay).

The reading is synthesised by Piper with known edits and heard by the real Whisper
model (the helpers of `test_read_aloud`)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from readerai.loadtest.readings import WORDS, MiscueKey, Reading, Script, omit, speak, swap
from readerai.loadtest.readings import insert as insert_word
from readerai.loadtest.readings import repeat as repeat_word
from readerai.readaloud import MiscueKind, normalize
from tests.api.test_passage_jobs import TEACHER
from tests.api.test_read_aloud import FRAME_MS, add_reading_passage, reading_server
from tests.fixtures_server import Client, ServerProcess, http_client, mint_token, open_client
from tests.speech_samples import chunks, silence

__all__ = ["reading_server"]  # the fixture, shared with test_read_aloud

pytestmark = pytest.mark.slow

CLASS = "readers"
STUDENT_ID = "s-reader"
STUDENT = mint_token("student", STUDENT_ID, CLASS)
OTHER_STUDENT = mint_token("student", "s-other", CLASS)
EDITED = Script("drops", (omit(3), swap(9, "snow"), repeat_word(21), insert_word(36, "some")))
#: Audio is sent a little under the server's limit of twice real time.
PACE = 0.6


async def enrol(server: ServerProcess) -> None:
    """Teacher t1's class `readers`, with the student in it."""
    async with http_client(server, TEACHER) as http:
        made = await http.post("/api/classes", json={"name": "Readers", "id": CLASS})
        assert made.status_code == 201, made.text
        added = await http.post(
            f"/api/classes/{CLASS}/students", json={"name": "Rita", "userId": STUDENT_ID}
        )
        assert added.status_code == 201, added.text


async def student_session(server: ServerProcess, passage_id: str) -> str:
    async with http_client(server, STUDENT) as http:
        made = await http.post("/api/sessions", json={"passageId": passage_id})
        assert made.status_code == 201, made.text
        assert made.json()["classId"] == CLASS
        session_id: str = made.json()["id"]
        return session_id


async def stream(client: Client, reading: Reading, *, share: float = 1.0) -> None:
    """Send the first `share` of the reading's audio, paced like a browser (a bit faster)."""
    frames = chunks(reading.pcm, FRAME_MS)
    for frame in frames[: round(len(frames) * share)]:
        await client.ws.send(frame)
        await anyio.sleep(FRAME_MS / 1000 * PACE)


async def feed_readings(
    server: ServerProcess, found: list[dict[str, Any]], arrived: anyio.Event
) -> None:
    """The `reading` events of the class's dashboard feed, as they come."""
    async with (
        http_client(server, TEACHER) as http,
        http.stream("GET", f"/api/classes/{CLASS}/feed", timeout=None) as response,
    ):
        assert response.status_code == 200
        kind = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "reading":
                found.append(json.loads(line.removeprefix("data: ")))
                arrived.set()


@pytest.fixture(scope="module")
def passage_id(reading_server: ServerProcess) -> str:
    """The class enrolled and the passage added (narrated by a job), once per module."""

    async def prepare() -> str:
        await enrol(reading_server)
        return await add_reading_passage(reading_server)

    return anyio.run(prepare)


def keys(miscues: list[dict[str, Any]]) -> set[MiscueKey]:
    """Miscues as `Script.truth` states them."""
    return {
        (MiscueKind(m["kind"]), normalize(m["heard"]))
        if m["wordIndex"] is None
        else (MiscueKind(m["kind"]), m["wordIndex"])
        for m in miscues
    }


async def test_a_reading_ends_scored_stored_and_shown_to_the_teacher(
    reading_server: ServerProcess, passage_id: str
) -> None:
    reading = await anyio.to_thread.run_sync(speak, EDITED)
    session_id = await student_session(reading_server, passage_id)
    reported: list[dict[str, Any]] = []
    arrived = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed_readings, reading_server, reported, arrived)
        async with open_client(reading_server, session_id, token=STUDENT) as client:
            await client.recv()  # SESSION_RESTORED
            await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
            await stream(client, reading)
            await client.send("SESSION_UPDATE", mode="conversation")
            seen = await client.recv_until("READING_RESULT", within=60)
        with anyio.fail_after(10):
            await arrived.wait()
        tg.cancel_scope.cancel()

    assert not [e for e in seen if e["type"] == "ERROR"], seen
    result = seen[-1]["payload"]
    assert result["passageId"] == passage_id
    found, truth = keys(result["miscues"]), EDITED.truth()
    precision = len(found & truth) / len(found)
    recall = len(found & truth) / len(truth)
    assert precision >= 0.8, sorted(found ^ truth, key=str)
    assert recall >= 0.8, sorted(found ^ truth, key=str)
    assert result["wordsAttempted"] == len(WORDS)
    errors = sum(MiscueKind(m["kind"]).is_error for m in result["miscues"])
    assert result["wordsCorrect"] == len(WORDS) - errors
    assert result["wcpm"] == pytest.approx(reading.wcpm(), rel=0.10)
    assert result["accuracy"] == pytest.approx(result["wordsCorrect"] / len(WORDS), abs=1e-3)
    assert reported[0]["readingId"] == result["readingId"]
    assert (reported[0]["userId"], reported[0]["sessionId"]) == (STUDENT_ID, session_id)

    async with http_client(reading_server, TEACHER) as http:
        listed = (await http.get(f"/api/classes/{CLASS}/readings?userId={STUDENT_ID}")).json()
        detail = (await http.get(f"/api/readings/{result['readingId']}")).json()
        fluency = (await http.get(f"/api/classes/{CLASS}/students/{STUDENT_ID}/fluency")).json()
        missed = (await http.get(f"/api/classes/{CLASS}/missed-words")).json()
    mine = next(r for r in listed if r["readingId"] == result["readingId"])
    assert (mine["sessionId"], mine["wordsCorrect"]) == (session_id, result["wordsCorrect"])
    assert [
        {k: m[k] for k in ("kind", "wordIndex", "expected", "heard")} for m in detail["miscues"]
    ] == result["miscues"]
    assert [w["text"] for w in detail["words"]] == WORDS
    assert detail["timeline"], "no heard words to replay"
    assert all(
        w["wordIndex"] is None or 0 <= w["wordIndex"] < len(WORDS) for w in detail["timeline"]
    )
    starts = [w["start"] for w in detail["timeline"]]
    assert starts == sorted(starts)
    (passage,) = [p for p in fluency["passages"] if p["passageId"] == passage_id]
    assert passage["readings"][-1]["wcpm"] == pytest.approx(result["wcpm"], abs=0.05)
    assert {w["word"] for w in missed} >= {
        m["expected"].casefold() for m in result["miscues"] if MiscueKind(m["kind"]).is_error
    }

    async with (
        http_client(reading_server, STUDENT) as own,
        http_client(reading_server, OTHER_STUDENT) as other,
    ):
        assert (await own.get(f"/api/readings/{result['readingId']}")).status_code == 200
        assert (await other.get(f"/api/readings/{result['readingId']}")).status_code == 403


async def test_a_reading_cut_off_by_the_connection_closing_is_still_stored(
    reading_server: ServerProcess, passage_id: str
) -> None:
    reading = await anyio.to_thread.run_sync(speak, Script("clean"))
    session_id = await student_session(reading_server, passage_id)
    async with open_client(reading_server, session_id, token=STUDENT) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
        await stream(client, reading, share=0.6)
        with anyio.fail_after(20):
            while (
                not (await client.recv_until("READING_PROGRESS"))[-1]["payload"]["wordIndex"] >= 10
            ):
                pass
    # Closed mid-reading, without going back to conversation.
    async with http_client(reading_server, TEACHER) as http:
        with anyio.fail_after(30):
            while True:
                listed = await http.get(
                    f"/api/classes/{CLASS}/readings", params={"passageId": passage_id}
                )
                stored = [r for r in listed.json() if r["sessionId"] == session_id]
                if stored:
                    break
                await anyio.sleep(0.2)
    (cut,) = stored
    assert 10 <= cut["wordsAttempted"] < len(WORDS)
    assert cut["errors"] == 0, cut["miscues"]


async def test_the_class_help_setting_is_changed_by_its_teacher_only(
    reading_server: ServerProcess, passage_id: str
) -> None:
    change = {"stallSeconds": 3.5, "stallHelp": "ask"}
    async with http_client(reading_server, TEACHER) as http:
        before = (await http.get(f"/api/classes/{CLASS}")).json()
        changed = await http.patch(f"/api/classes/{CLASS}", json=change)
        after = (await http.get(f"/api/classes/{CLASS}")).json()
        refused = await http.patch(f"/api/classes/{CLASS}", json={"stallHelp": "shout"})
        negative = await http.patch(f"/api/classes/{CLASS}", json={"stallSeconds": -1})
    assert (before["stallSeconds"], before["stallHelp"]) == (5.0, "say_word")
    assert changed.status_code == 200, changed.text
    assert (after["stallSeconds"], after["stallHelp"]) == (3.5, "ask")
    assert (refused.status_code, negative.status_code) == (422, 422)
    async with httpx.AsyncClient(
        base_url=reading_server.base_url, headers={"Authorization": f"Bearer {STUDENT}"}
    ) as student:
        assert (await student.patch(f"/api/classes/{CLASS}", json=change)).status_code == 403


async def test_a_reading_of_no_words_is_neither_stored_nor_reported(
    reading_server: ServerProcess, passage_id: str
) -> None:
    session_id = await student_session(reading_server, passage_id)
    async with open_client(reading_server, session_id, token=STUDENT) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
        for frame in chunks(silence(2000), FRAME_MS):
            await client.ws.send(frame)
        await client.send("SESSION_UPDATE", mode="conversation")
        with anyio.fail_after(20):
            while not await anyio.to_thread.run_sync(too_short, reading_server, session_id):
                await client.send("PING", id="wait")
                seen = await client.recv_until("PONG")
                assert not [e for e in seen if e["type"] == "READING_RESULT"], seen
    async with http_client(reading_server, TEACHER) as http:
        listed = (await http.get(f"/api/classes/{CLASS}/readings")).json()
    assert session_id not in {r["sessionId"] for r in listed}


def too_short(server: ServerProcess, session_id: str) -> bool:
    """Whether the server logged the session's reading as too short to keep (blocking)."""
    return any(
        e.get("event") == "reading.too_short" and e.get("session_id") == session_id
        for e in server.log_events()
    )
