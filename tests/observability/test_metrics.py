"""`/metrics` of one process after a real spoken turn: the engine's queue wait, speech
to text and text to speech timed, errors counted by code, bus and store up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.fixtures_server import (
    Client,
    ServerProcess,
    create_session,
    http_client,
    open_client,
    running_server,
)
from tests.observability.scrape import scrape, value
from tests.speech_samples import chunks, spoken

pytestmark = pytest.mark.slow

AUDIO_ON = {"audio": {"inputFormat": "pcm16", "inputSampleRate": 16000, "output": True}}
QUESTION = "Why did the lion let the little mouse go?"


@pytest.fixture
def voice_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "READERAI_EXTRACTIVE_TOKEN_DELAY": "0.01",
        "READERAI_VAD_MAX_UTTERANCE_MS": "6000",
        "READERAI_AUDIO_BYTES_PER_SECOND": "1000000",  # audio sent faster than real time
    }
    with running_server(tmp_path, **env) as server:
        yield server


async def spoken_turn(client: Client, pcm: bytes) -> dict[str, object]:
    """Say `pcm` (4x real time); the reply's `RESPONSE_DONE`, its audio skipped."""
    for chunk in chunks(pcm):
        await client.ws.send(chunk)
        await anyio.sleep(0.01)
    with anyio.fail_after(30):
        while True:
            frame = await client.ws.recv()
            if isinstance(frame, str) and (event := json.loads(frame))["type"] == "RESPONSE_DONE":
                payload: dict[str, object] = event["payload"]
                return payload


async def test_a_spoken_turn_shows_in_the_new_series(voice_server: ServerProcess) -> None:
    before = await scrape(voice_server.base_url)
    assert value(before, "readerai_bus_up") == 1
    assert value(before, "readerai_store_up") == 1
    for name in ("engine_wait", "stt", "tts"):
        assert value(before, f"readerai_{name}_seconds_count") == 0

    question = await anyio.to_thread.run_sync(spoken, QUESTION)
    session_id = await create_session(voice_server)
    async with open_client(voice_server, session_id) as client:
        await client.recv()
        await client.send("SESSION_UPDATE", **AUDIO_ON)
        done = await spoken_turn(client, question)
        assert done["status"] == "completed"
        await client.send("NO_SUCH_EVENT")
        await client.recv_until("ERROR")
        async with http_client(voice_server) as http:
            assert (await http.get("/api/sessions/no-such-session")).status_code == 404
        during = await scrape(voice_server.base_url)
    after = await scrape(voice_server.base_url)

    assert value(during, "readerai_connections") == 1
    assert value(during, "readerai_stt_seconds_count") == 1
    assert value(during, "readerai_tts_seconds_count") >= 1, "each sentence spoken is timed"
    assert value(during, "readerai_engine_wait_seconds_count") == 1
    assert value(during, "readerai_turns_total", status="completed") == 1
    assert value(during, "readerai_client_errors_total", code="unknown_type") == 1
    assert value(during, "readerai_http_errors_total", code="not_found") == 1
    assert value(during, "readerai_outbound_queued") >= 0
    # The spoken reply's sentences took some time; a queue wait with a free engine, none.
    assert value(during, "readerai_tts_seconds_sum") > 0
    assert value(during, "readerai_engine_wait_seconds_bucket", le="0.005") == 1
    assert value(after, "readerai_connections") == 0
    assert value(after, "readerai_outbound_queued") == 0
    assert value(after, "readerai_outbound_queue_max") == 0
