"""Read-aloud help and questions mid-reading, over a real WebSocket, heard by the real
Whisper model: Piper reads part of the passage and stops (help comes, or not, as the
class chose), or stops to ask a spoken question and then reads on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from readerai.loadtest.readings import PASSAGE, WORDS, Script
from tests.api.test_passage_jobs import TEACHER, add_passage, has_ended, job_when
from tests.fixtures_server import (
    Client,
    ServerProcess,
    http_client,
    mint_token,
    open_client,
    running_server,
)
from tests.speech_samples import chunks, silence, spoken

pytestmark = pytest.mark.slow

FRAME_MS = 160
#: The reader stops after "...and carried it home." (word 29 of 52).
STOP = 29
#: Speech is sent a little faster than real time; silence, which costs no decoding, faster.
SPEECH_SPEED = 1.5
SILENCE_SPEED = 4.0
AUDIO_ON = {"inputFormat": "pcm16", "inputSampleRate": 16000, "output": False}


@pytest.fixture(scope="module")
def help_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        # A student in no class gets no help here; classes choose their own.
        "READERAI_READ_ALOUD_STALL_HELP": "off",
        "READERAI_READ_ALOUD_STALL_SECONDS": "1",
        "READERAI_AUDIO_BYTES_PER_SECOND": "1000000",  # silence goes faster than real time
        # A reply streams for about 2 s: longer than a stall.
        "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.1",
    }
    with running_server(tmp_path_factory.mktemp("read-aloud-help"), **env) as server:
        yield server


@pytest.fixture(scope="module")
def passage_id(help_server: ServerProcess) -> str:
    async def add() -> str:
        async with http_client(help_server, TEACHER) as http:
            job_id, passage = await add_passage(http, title="The Puppy", text=PASSAGE)
            await job_when(http, job_id, has_ended)
        return passage

    return anyio.run(add)


@pytest.fixture(scope="module")
def first_part() -> bytes:
    """The passage read to `STOP`, then 1.5 s of silence."""
    return spoken(Script("to home", last_word=STOP).text())


class Events:
    """Every text event of one connection, as it arrives."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[dict[str, Any]] = []
        self._arrived = anyio.Event()

    async def collect(self) -> None:
        while True:
            frame = await self.client.ws.recv()
            if isinstance(frame, str):
                self.seen.append(json.loads(frame))
                self._arrived.set()
                self._arrived = anyio.Event()

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e["payload"]
            for e in self.seen
            if e["type"] == kind and all(e["payload"].get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, kind: str, within: float, count: int = 1, **match: Any
    ) -> dict[str, Any]:
        """The `count`-th event of `kind` matching `match`, once it has arrived."""
        with anyio.fail_after(within):
            while len(found := self.of(kind, **match)) < count:
                await self._arrived.wait()
        return found[count - 1]

    async def reached(self, word: int, within: float) -> None:
        """Wait for `READING_PROGRESS` at `word` or beyond."""
        with anyio.fail_after(within):
            while not any(p["wordIndex"] >= word for p in self.of("READING_PROGRESS")):
                await self._arrived.wait()


async def stream(client: Client, pcm: bytes, speed: float) -> None:
    for frame in chunks(pcm, FRAME_MS):
        await client.ws.send(frame)
        await anyio.sleep(FRAME_MS / 1000 / speed)


async def student_in_class(
    server: ServerProcess, class_id: str, passage: str, **help_: Any
) -> tuple[str, str]:
    """A class with read-aloud help `help_` and one student: (student's token, session)."""
    async with http_client(server) as admin:
        await admin.post("/api/teachers", json={"name": "Ms T", "userId": "t1"})
    async with http_client(server, TEACHER) as http:
        assert (await http.post("/api/classes", json={"name": class_id, "id": class_id})).is_success
        student = f"{class_id}-s"
        added = await http.post(
            f"/api/classes/{class_id}/students", json={"name": student, "userId": student}
        )
        assert added.is_success
        changed = await http.patch(f"/api/classes/{class_id}", json=help_)
        assert changed.is_success, changed.text
    token = mint_token("student", student, class_id)
    async with http_client(server, token) as http:
        created = await http.post("/api/sessions", json={"passageId": passage})
        return token, created.json()["id"]


async def test_a_reader_who_stops_halfway_is_told_the_next_word_once_after_any_reply(
    help_server: ServerProcess, passage_id: str, first_part: bytes
) -> None:
    token, session_id = await student_in_class(
        help_server, "c-say", passage_id, stallSeconds=2.0, stallHelp="say_word"
    )
    async with open_client(help_server, session_id, token=token) as client:
        await client.recv()  # SESSION_RESTORED
        events = Events(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.collect)
            await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
            await stream(client, first_part, SPEECH_SPEED)  # ends in 1.5 s of silence
            # The reader stops and types a question: its reply streams for longer than
            # the stall time, in silence; help must wait for it, then come once.
            await client.ask("Why was the puppy cold?")
            with anyio.fail_after(30):
                while len(events.of("RESPONSE_DONE")) < 2:  # the reader stays silent
                    await stream(client, silence(1000), SILENCE_SPEED)
            # As long again in silence: still one offer for this one stall.
            await stream(client, silence(4000), SILENCE_SPEED)
            await anyio.sleep(1.0)
            tg.cancel_scope.cancel()

    started = events.of("RESPONSE_STARTED")
    assert [s["reason"] for s in started] == [None, "reading_help"], started
    answer_turn, help_turn = (s["turnId"] for s in started)
    assert [a["turnId"] for a in events.of("INTERRUPTION_ACKNOWLEDGED")] == [answer_turn]
    done = events.of("RESPONSE_DONE")
    assert [(d["turnId"], d["status"]) for d in done] == [
        (answer_turn, "completed"),
        (help_turn, "completed"),
    ]
    help_starts = events.seen.index({"type": "RESPONSE_STARTED", "payload": started[1]})
    answer_ends = events.seen.index({"type": "RESPONSE_DONE", "payload": done[0]})
    assert answer_ends < help_starts  # never over the reply
    before_help = [
        e["payload"]["wordIndex"]
        for e in events.seen[:help_starts]
        if e["type"] == "READING_PROGRESS"
    ]
    assert before_help and before_help[-1] >= STOP - 2, before_help  # it followed the reading
    assert done[1]["text"] == f"The word is “{WORDS[before_help[-1] + 1]}”."

    # The help is in the conversation's history, as a tutor message with no question.
    async with open_client(help_server, session_id, token=token) as client:
        restored = (await client.recv())["payload"]
    kept = [(m["role"], m["text"]) for m in restored["messages"] if m["turnId"] == help_turn]
    assert kept == [("tutor", done[1]["text"])]


async def test_no_help_comes_when_it_is_off(
    help_server: ServerProcess, passage_id: str, first_part: bytes
) -> None:
    """A student in no class: the node's settings (here `off`, after 1 s) apply."""
    reading = first_part[: len(silence(3500))]  # a few words, cut off
    async with http_client(help_server) as http:
        created = await http.post("/api/sessions", json={"passageId": passage_id})
        session_id = created.json()["id"]
    async with open_client(help_server, session_id) as client:
        await client.recv()
        events = Events(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.collect)
            await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
            await stream(client, reading, SPEECH_SPEED)
            await stream(client, silence(4000), SILENCE_SPEED)
            await anyio.sleep(1.5)
            tg.cancel_scope.cancel()
    assert events.of("READING_PROGRESS"), "the reading was not followed"
    assert not events.of("RESPONSE_STARTED")
    assert not events.of("ERROR")


async def test_a_spoken_question_mid_reading_is_answered_and_the_reading_resumes(
    help_server: ServerProcess, passage_id: str, first_part: bytes
) -> None:
    question = await anyio.to_thread.run_sync(spoken, "Why was the puppy cold?")
    rest = await anyio.to_thread.run_sync(spoken, " ".join(PASSAGE.split()[STOP + 1 :]))
    async with http_client(help_server) as http:
        created = await http.post("/api/sessions", json={"passageId": passage_id})
        session_id = created.json()["id"]
    async with open_client(help_server, session_id) as client:
        await client.recv()
        events = Events(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.collect)
            await client.send(
                "SESSION_UPDATE", audio=AUDIO_ON, mode="read_aloud", passageId=passage_id
            )
            await stream(client, first_part, SPEECH_SPEED)
            # The student stops to ask: audio becomes a question until read-aloud again.
            await client.send("SESSION_UPDATE", mode="conversation")
            await events.wait_for("READING_RESULT", within=20)  # the first part is over
            stopped_at = events.of("READING_PROGRESS")[-1]["wordIndex"]
            asked_at = len(events.seen)
            await stream(client, question, SILENCE_SPEED / 2)
            answer = await events.wait_for("RESPONSE_DONE", within=30)
            resumed_at = len(events.seen)
            await client.send("SESSION_UPDATE", mode="read_aloud", passageId=passage_id)
            await stream(client, rest, SPEECH_SPEED)
            await events.reached(len(WORDS) - 3, within=20)
            tg.cancel_scope.cancel()

    assert stopped_at >= STOP - 2, stopped_at
    heard = [p["text"] for p in events.of("TRANSCRIPT", final=True)]
    assert any("puppy" in text.lower() for text in heard), heard
    assert answer["status"] == "completed" and "cold" in answer["text"].lower()
    assert not [e for e in events.seen[asked_at:resumed_at] if e["type"] == "READING_PROGRESS"]
    after = [
        e["payload"]["wordIndex"]
        for e in events.seen[resumed_at:]
        if e["type"] == "READING_PROGRESS"
    ]
    assert after, "the resumed reading was not followed"
    # From where it stopped, not from the top, on to the last word.
    assert after[0] > stopped_at, (stopped_at, after)
    assert after == sorted(after)
    assert after[-1] >= len(WORDS) - 3, after
    assert not events.of("ERROR")


async def test_push_to_talk_asks_mid_reading_and_the_reading_goes_on(
    help_server: ServerProcess, passage_id: str, first_part: bytes
) -> None:
    question = await anyio.to_thread.run_sync(spoken, "Why was the puppy cold?")
    cut, more = len(silence(4000)), len(silence(4500))  # a few words in; a few more
    async with http_client(help_server) as http:
        created = await http.post("/api/sessions", json={"passageId": passage_id})
        session_id = created.json()["id"]
    async with open_client(help_server, session_id) as client:
        await client.recv()
        events = Events(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.collect)
            await client.send(
                "SESSION_UPDATE",
                audio=AUDIO_ON,
                turnDetection="manual",
                mode="read_aloud",
                passageId=passage_id,
            )
            await stream(client, first_part[:cut], SPEECH_SPEED)
            await client.send("AUDIO_START")  # pressed: the question, not the reading
            asked_at = len(events.seen)
            await stream(client, question, SILENCE_SPEED)
            await anyio.sleep(0.2)
            await client.send("AUDIO_COMMIT")  # released
            answer = await events.wait_for("RESPONSE_DONE", within=30)
            answered_at = len(events.seen)
            was_at = max(p["wordIndex"] for p in events.of("READING_PROGRESS"))
            await stream(client, first_part[cut : cut + more], SPEECH_SPEED)  # reading on
            await events.reached(was_at + 5, within=20)
            tg.cancel_scope.cancel()

    heard = [p["text"] for p in events.of("TRANSCRIPT", final=True)]
    assert any("puppy" in text.lower() for text in heard), heard
    assert answer["status"] == "completed" and "cold" in answer["text"].lower()
    progress = [e["payload"]["wordIndex"] for e in events.seen if e["type"] == "READING_PROGRESS"]
    before = [
        e["payload"]["wordIndex"] for e in events.seen[:asked_at] if e["type"] == "READING_PROGRESS"
    ]
    after = [
        e["payload"]["wordIndex"]
        for e in events.seen[answered_at:]
        if e["type"] == "READING_PROGRESS"
    ]
    assert before and after, progress
    assert progress == sorted(progress)  # one reading, followed on: never back to the top
    assert after[-1] >= was_at + 5
    assert not events.of("READING_RESULT")  # still the same reading: read-aloud never left
    assert not events.of("ERROR")
