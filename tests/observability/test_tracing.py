"""OpenTelemetry: a turn is one trace, received by a real OTLP/HTTP endpoint; off by
default, and then nothing of the SDK is even imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.fixtures_server import (
    ROOT,
    Client,
    ServerProcess,
    create_session,
    open_client,
    running_server,
)
from tests.observability.env import NO_LISTENING_MODELS
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

pytestmark = pytest.mark.slow

MARKER = "Quibbleflux"
QUESTION = f"{MARKER} wants to know: what were the lion's paws as large as?"
AUDIO_ON = {"audio": {"inputFormat": "pcm16", "inputSampleRate": 16000, "output": True}}
TEXT_TURN = {"turn", "store.question", "engine.stream", "store.reply"}


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[ServerProcess, OtlpReceiver]]:
    """A server whose traces go to a receiver of our own (the standard variables only)."""
    with (
        otlp_receiver() as receiver,
        running_server(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",  # ms: export soon after a span ends
            READERAI_EXTRACTIVE_TOKEN_DELAY="0.01",
            **NO_LISTENING_MODELS,
        ) as server,
    ):
        yield server, receiver


async def done_skipping_audio(client: Client) -> dict[str, Any]:
    """The next `RESPONSE_DONE`'s payload; the reply's audio frames are skipped."""
    with anyio.fail_after(30):
        while True:
            frame = await client.ws.recv()
            if isinstance(frame, str) and (event := json.loads(frame))["type"] == "RESPONSE_DONE":
                payload: dict[str, Any] = event["payload"]
                return payload


def trace_of(spans: list[ReceivedSpan], turn_id: str) -> list[ReceivedSpan]:
    """The spans of the trace whose root is the turn `turn_id`."""
    roots = [s for s in spans if s.name == "turn" and s.attributes.get("turn.id") == turn_id]
    if len(roots) != 1:
        return []
    return [s for s in spans if s.trace_id == roots[0].trace_id]


async def turn_spans(receiver: OtlpReceiver, turn_id: str, names: set[str]) -> list[ReceivedSpan]:
    """The trace of `turn_id`, once spans of every name in `names` arrived."""
    spans = await anyio.to_thread.run_sync(
        lambda: receiver.wait_for(lambda s: names <= {x.name for x in trace_of(s, turn_id)})
    )
    return trace_of(spans, turn_id)


async def test_a_turn_is_one_trace_of_its_store_writes_engine_call_and_speech(
    traced: tuple[ServerProcess, OtlpReceiver],
) -> None:
    server, receiver = traced
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(QUESTION)
        text_turn = (await client.recv_until("RESPONSE_DONE"))[-1]["payload"]
        await client.send("SESSION_UPDATE", **AUDIO_ON)
        await client.ask(QUESTION)
        spoken_turn = await done_skipping_audio(client)
    assert text_turn["status"] == spoken_turn["status"] == "completed"

    spans = await turn_spans(receiver, text_turn["turnId"], TEXT_TURN)
    assert sorted(s.name for s in spans) == sorted(TEXT_TURN), "one span each, no speech"
    (root,) = (s for s in spans if s.name == "turn")
    assert root.parent_span_id == "", "the turn is the root of its own trace"
    assert all(s.parent_span_id == root.span_id for s in spans if s is not root)
    assert root.attributes["session.id"] == session_id
    assert root.attributes["turn.status"] == "completed"
    assert root.attributes["question.chars"] == len(QUESTION)
    assert root.service == "readerai"
    (engine,) = (s for s in spans if s.name == "engine.stream")
    assert engine.events == ["first_token"]
    assert engine.attributes["engine.name"] == "extractive"

    spoken = await turn_spans(receiver, spoken_turn["turnId"], TEXT_TURN | {"tts.synthesize"})
    (spoken_root,) = (s for s in spoken if s.name == "turn")
    speech = [s for s in spoken if s.name == "tts.synthesize"]
    assert speech and all(s.parent_span_id == spoken_root.span_id for s in speech)
    assert all(s.attributes["audio.ms"] > 0 for s in speech)

    every_span = await anyio.to_thread.run_sync(lambda: receiver.wait_for(lambda _: True, 0))
    assert {s.trace_id for s in every_span} == {root.trace_id, spoken_root.trace_id}, (
        "nothing but turns is traced"
    )
    said = " ".join(str(v) for s in every_span for v in s.attributes.values())
    assert MARKER not in said and text_turn["text"] not in said, "no question or reply text"


#: Builds a node's app and services, and makes a turn's spans, first with tracing off
#: then in `auto` (an OTLP endpoint is set); prints the modules of OpenTelemetry's SDK,
#: exporter and protobuf imported after each.
TRACE_A_TURN = """
import asyncio, sys
from readerai.app import create_app
from readerai.services import NodeServices
from readerai.settings import Settings

HEAVY = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto", "google.protobuf")

async def turn(tracing):
    await tracing.start()
    root = tracing.turn("session", "turn", 12)
    with root.active():
        with tracing.span("store.question"):
            pass
    root.end("completed")
    await tracing.close()

for mode in ("off", "auto"):
    settings = Settings(tracing=mode, engine="extractive", database_url=sys.argv[1])
    create_app(settings)
    asyncio.run(turn(NodeServices.build(settings).tracing))
    print(sorted(m for m in sys.modules if m.startswith(HEAVY)))
"""


def test_tracing_off_imports_nothing_of_the_sdk_or_the_exporter(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        result = subprocess.run(
            [sys.executable, "-c", TRACE_A_TURN, f"sqlite+aiosqlite:///{tmp_path}/r.db"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        off, on = result.stdout.splitlines()
        # FastAPI imports the OpenTelemetry *API* itself (for its own telemetry); the
        # SDK, the exporter and protobuf are what tracing adds.
        assert off == "[]"
        assert "opentelemetry.sdk.trace" in on and "opentelemetry.exporter.otlp.proto.http" in on
        assert sorted(s.name for s in receiver.spans) == ["store.question", "turn"]
