"""Voice over a real WebSocket: spoken questions, spoken replies, barge-in by voice."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from readerai.voice.frames import decode_audio_frame
from tests.fixtures_server import (
    Client,
    ServerProcess,
    create_session,
    http_client,
    open_client,
    running_server,
)
from tests.speech_samples import chunks, silence, spoken

pytestmark = pytest.mark.slow

AUDIO_ON = {"audio": {"inputFormat": "pcm16", "inputSampleRate": 16000, "output": True}}
QUESTION = "Why did the lion let the little mouse go?"


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.05",
        "READERAI_VAD_MAX_UTTERANCE_MS": "6000",
        # Tests send audio faster than real time.
        "READERAI_AUDIO_BYTES_PER_SECOND": "1000000",
    }
    with running_server(tmp_path_factory.mktemp("voice"), **env) as server:
        yield server


async def stream(client: Client, pcm: bytes, speed: float = 1.0) -> None:
    """Send `pcm` in 40 ms frames, `speed` times faster than real time."""
    for chunk in chunks(pcm):
        await client.ws.send(chunk)
        await anyio.sleep(0.04 / speed)


async def collect(client: Client, until: str, within: float = 30, **match: Any) -> list[Any]:
    """Text events (dicts) and binary frames (decoded) up to the first matching event."""
    import json

    seen: list[Any] = []
    with anyio.fail_after(within):
        while True:
            frame = await client.ws.recv()
            if isinstance(frame, bytes):
                seen.append(decode_audio_frame(frame))
                continue
            event = json.loads(frame)
            seen.append(event)
            payload = event["payload"]
            if event["type"] == until and all(payload.get(k) == v for k, v in match.items()):
                return seen


def rms(pcm: bytes) -> float:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


def events_of(seen: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in seen if isinstance(e, dict) and e["type"] == kind]


async def test_spoken_question_is_transcribed_answered_and_spoken(
    voice_server: ServerProcess,
) -> None:
    question = await anyio.to_thread.run_sync(spoken, QUESTION)
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", **AUDIO_ON)
        await stream(client, question)
        seen = await collect(client, "RESPONSE_DONE")

    transcripts = events_of(seen, "TRANSCRIPT")
    assert transcripts[0] == {"text": "", "final": False}
    final = next(t["text"] for t in transcripts if t["final"]).lower()
    assert "lion" in final and "mouse" in final
    ack = events_of(seen, "INTERRUPTION_ACKNOWLEDGED")[0]
    done = events_of(seen, "RESPONSE_DONE")[0]
    assert done["status"] == "completed" and done["text"]
    audio = [f for f in seen if not isinstance(f, dict)]
    assert audio, "the reply is spoken"
    assert {f.turn_id for f in audio} == {ack["turnId"]}
    assert [f.seq for f in audio] == list(range(1, len(audio) + 1))
    assert audio[0].sample_rate == 22050
    assert max(rms(f.pcm) for f in audio) > 500, "the audio is not silence"
    first_audio = next(i for i, f in enumerate(seen) if not isinstance(f, dict))
    first_delta = next(
        i for i, e in enumerate(seen) if isinstance(e, dict) and e["type"] == "RESPONSE_DELTA"
    )
    assert first_delta < first_audio, "a sentence's text comes before its audio"
    async with http_client(voice_server) as http:
        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
    assert messages[0]["text"].lower() == final


async def test_speaking_during_the_reply_cancels_it_and_stores_what_was_heard(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # A slow reply, so that it is still streaming when the student speaks.
    voice_server = await anyio.to_thread.run_sync(
        lambda: server_factory(READERAI_EXTRACTIVE_TOKEN_DELAY="0.3")
    )
    interruption = await anyio.to_thread.run_sync(spoken, "Who caught the lion in a net?", 0)
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", **AUDIO_ON)
        await client.ask("Tell me everything the lion and the mouse did.")
        seen: list[Any] = []
        with anyio.fail_after(30):
            while not any(not isinstance(f, dict) for f in seen):
                seen += await collect_one(client)
        old_turn = events_of(seen, "INTERRUPTION_ACKNOWLEDGED")[0]["turnId"]
        await stream(client, interruption)
        seen += await collect(client, "RESPONSE_DONE", turnId=old_turn)
        done_index = len(seen) - 1
        audio_ms = sum(
            len(f.pcm) / 2 / f.sample_rate * 1000 for f in seen if not isinstance(f, dict)
        )
        played_ms = audio_ms / 2
        await client.send("PLAYBACK_POSITION", turnId=old_turn, ms=int(played_ms))
        seen += await collect(client, "RESPONSE_DONE", status="completed")

    done = seen[done_index]["payload"]
    assert done["status"] == "cancelled"
    after = seen[done_index + 1 :]
    assert not [f for f in after if not isinstance(f, dict) and f.turn_id == old_turn]
    assert not [e for e in events_of(after, "RESPONSE_DELTA") if e["turnId"] == old_turn]
    received = "".join(
        e["text"] for e in events_of(seen[:done_index], "RESPONSE_DELTA") if e["turnId"] == old_turn
    )
    async with http_client(voice_server) as http:
        messages = (await http.get(f"/api/sessions/{session_id}")).json()["messages"]
    stored = next(m for m in messages if m["turnId"] == old_turn and m["role"] == "tutor")
    assert stored["status"] == "cancelled"
    assert received.startswith(stored["text"]) and len(stored["text"]) < len(received)
    assert "net" in messages[-2]["text"].lower(), "the interruption became the next question"


async def collect_one(client: Client) -> list[Any]:
    import json

    frame = await client.ws.recv()
    return [decode_audio_frame(frame)] if isinstance(frame, bytes) else [json.loads(frame)]


async def test_push_to_talk_answers_only_after_commit(voice_server: ServerProcess) -> None:
    question = await anyio.to_thread.run_sync(spoken, QUESTION)
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", turnDetection="manual", **AUDIO_ON)
        await stream(client, question, speed=8)
        with anyio.move_on_after(2.5):
            early = await collect(client, "TRANSCRIPT", final=True)
            pytest.fail(f"answered before AUDIO_COMMIT: {early}")
        await client.send("AUDIO_COMMIT")
        seen = await collect(client, "RESPONSE_DONE")
    final = next(t["text"] for t in events_of(seen, "TRANSCRIPT") if t["final"]).lower()
    assert "lion" in final
    assert events_of(seen, "RESPONSE_DONE")[0]["status"] == "completed"


@pytest.mark.parametrize(
    ("update", "code", "says"),
    [
        ({"audio": {"inputFormat": "opus", "inputSampleRate": 16000}}, "unsupported", "pcm16"),
        ({"audio": {"inputFormat": "pcm16", "inputSampleRate": 44100}}, "unsupported", "16000"),
        ({"voice": "no-such-voice"}, "unsupported", "en_US-joe-medium"),
        ({"turnDetection": "telepathy"}, "invalid_payload", "turnDetection"),
    ],
)
async def test_bad_audio_settings_get_errors_naming_what_is_supported(
    voice_server: ServerProcess, update: dict[str, Any], code: str, says: str
) -> None:
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", **update)
        error = (await client.recv())["payload"]
    assert error["code"] == code and says in error["message"]


async def test_bad_audio_frames_get_errors_and_the_session_lives_on(
    voice_server: ServerProcess,
) -> None:
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.ws.send(b"\x00\x00" * 100)
        assert (await client.recv())["payload"]["code"] == "unsupported"  # no SESSION_UPDATE yet
        await client.send("SESSION_UPDATE", **AUDIO_ON)
        await client.ws.send(b"\x00" * 101)
        assert (await client.recv())["payload"]["code"] == "invalid_payload"
        await client.send("AUDIO_COMMIT")
        assert (await client.recv())["payload"]["code"] == "unsupported"  # not push-to-talk
        await client.send("PING", id="alive")
        assert (await client.recv())["type"] == "PONG"


async def test_endless_silence_costs_nothing_and_endless_speech_is_cut(
    voice_server: ServerProcess,
) -> None:
    talk = await anyio.to_thread.run_sync(spoken, QUESTION, 0, 0)
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", **AUDIO_ON)
        await stream(client, silence(20_000), speed=8)
        await client.send("PING", id="after-silence")
        assert (await client.recv(within=30))["type"] == "PONG"
        # Speech with no pause, longer than the 6 s limit of this server.
        await stream(client, talk * 4, speed=8)
        seen = await collect(client, "ERROR", code="utterance_truncated")
    assert events_of(seen, "TRANSCRIPT")[0]["final"] is False
