"""The baseline servers and the fake upstream, started as the load-test harness starts them."""

from __future__ import annotations

import contextlib
import json
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.fixtures_server import ROOT, free_port

OFFERED = [Subprotocol("readerai.v1"), Subprotocol("bearer.x")]
#: The fake upstream's schedule in these tests.
TTFT = 0.3
RATE = 50.0
TOKENS = 10


@dataclass
class Process:
    """A server module running in a subprocess, ready once it printed `ready`."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if readable else b""
        if line != b"ready\n":
            self.proc.kill()
            raise RuntimeError(f"not ready (got {line!r}):\n{self.log()}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@contextlib.contextmanager
def running(module: str, log_dir: Path, *args: str) -> Iterator[Process]:
    """`python -m module *args --host 127.0.0.1 --port P`; stopped by SIGTERM, status 0."""
    port = free_port()
    log_path = log_dir / f"{module.rsplit('.', 1)[-1]}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    process = Process(proc, port, log_path)
    try:
        process.wait_ready()
        yield process
    finally:
        status = process.stop()
        assert proc.stdout is not None
        proc.stdout.close()
    assert status == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="module", params=["plain", "naive"])
def baseline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    with running("readerai.loadtest.baselines", tmp_path_factory.mktemp("log"), request.param) as p:
        yield p


@pytest.fixture(params=["plain", "naive"])
def fresh_baseline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Process]:
    """A baseline of its own, for tests that stop it or need one kind."""
    with running("readerai.loadtest.baselines", tmp_path, request.param) as process:
        yield process


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    schedule = ["--ttft-ms", str(TTFT * 1000), "--tokens-per-second", str(RATE)]
    args = [*schedule, "--tokens", str(TOKENS)]
    with running("readerai.loadtest.upstream", tmp_path_factory.mktemp("log"), *args) as p:
        yield p


async def send(ws: ClientConnection, type_: str, **payload: Any) -> None:
    await ws.send(json.dumps({"type": type_, "payload": payload}))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    with anyio.fail_after(5):
        event: dict[str, Any] = json.loads(await ws.recv())
    return event


# --- baselines -----------------------------------------------------------------------


async def test_connect_restores_the_session_on_the_first_offered_subprotocol(
    baseline: Process,
) -> None:
    async with connect(f"{baseline.ws_url}/ws/s1", subprotocols=OFFERED) as ws:
        assert ws.subprotocol == "readerai.v1"
        assert await receive(ws) == {"type": "SESSION_RESTORED", "payload": {}}


async def test_question_is_acknowledged_with_a_new_turn(baseline: Process) -> None:
    async with connect(f"{baseline.ws_url}/ws/s2", subprotocols=OFFERED) as ws:
        await receive(ws)
        await send(ws, "STUDENT_INTERRUPTION", questionText="Why did the lion laugh?")
        ack = await receive(ws)
        assert ack["type"] == "INTERRUPTION_ACKNOWLEDGED"
        turn_id = ack["payload"]["turnId"]
        assert uuid.UUID(hex=turn_id).version == 4
        assert turn_id == uuid.UUID(hex=turn_id).hex
        assert datetime.fromisoformat(ack["payload"]["timestamp"]).tzinfo is not None


async def test_progress_and_ping_are_answered_and_other_events_ignored(
    baseline: Process,
) -> None:
    async with connect(f"{baseline.ws_url}/ws/s3", subprotocols=OFFERED) as ws:
        await receive(ws)
        await send(ws, "READING_PROGRESS", wordIndex=12)
        assert await receive(ws) == {"type": "PROGRESS_ACK", "payload": {}}
        await send(ws, "SOMETHING_ELSE")
        await send(ws, "PING")
        assert await receive(ws) == {"type": "PONG", "payload": {}}


@pytest.mark.parametrize("fresh_baseline", ["plain"], indirect=True)
async def test_plain_serves_any_path(fresh_baseline: Process) -> None:
    async with connect(f"{fresh_baseline.ws_url}/any/path", subprotocols=OFFERED) as ws:
        assert (await receive(ws))["type"] == "SESSION_RESTORED"


@pytest.mark.parametrize("fresh_baseline", ["naive"], indirect=True)
async def test_naive_answers_healthz(fresh_baseline: Process) -> None:
    async with httpx.AsyncClient(base_url=fresh_baseline.http_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_stop_signal_exits_cleanly_with_a_client_connected(
    fresh_baseline: Process, signum: int
) -> None:
    async with connect(f"{fresh_baseline.ws_url}/ws/s4", subprotocols=OFFERED) as ws:
        await receive(ws)
        assert await anyio.to_thread.run_sync(fresh_baseline.stop, signum) == 0


# --- upstream ------------------------------------------------------------------------


async def stream_chunks(upstream: Process, **body: Any) -> list[tuple[float, dict[str, Any]]]:
    """(seconds since the request was sent, chunk) for each event of a stream."""
    request = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    chunks = []
    async with httpx.AsyncClient(base_url=upstream.http_url) as http:
        sent = time.perf_counter()
        url = "/v1/chat/completions"
        async with http.stream("POST", url, json={**request, **body}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append((time.perf_counter() - sent, json.loads(line[6:])))
                elif line.startswith("data: "):
                    chunks.append((time.perf_counter() - sent, {}))
    return chunks


def contents(chunks: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
    return [
        (t, c) for t, c in chunks if c and c["choices"] and c["choices"][0]["delta"].get("content")
    ]


async def test_first_token_comes_after_ttft_then_one_per_interval(upstream: Process) -> None:
    chunks = await stream_chunks(upstream)
    assert chunks[0][1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = contents(chunks)
    assert len(tokens) == TOKENS
    first_at = tokens[0][0]
    assert TTFT <= first_at < TTFT + 0.2
    sent_at = [chunk["x_sent_at"] for _, chunk in tokens]
    assert sent_at == sorted(sent_at)
    # The server's own clock shows the schedule without the client's jitter.
    assert (TOKENS - 1) / RATE - 0.02 < sent_at[-1] - sent_at[0] < (TOKENS - 1) / RATE + 0.05
    assert chunks[-2][1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1][1] == {}  # data: [DONE]


async def test_max_tokens_below_the_setting_cuts_the_stream(upstream: Process) -> None:
    chunks = await stream_chunks(upstream, max_tokens=3, stream_options={"include_usage": True})
    assert [c["choices"][0]["delta"]["content"] for _, c in contents(chunks)] == [
        "The ",
        "lion ",
        "woke ",
    ]
    finish, usage = chunks[-3][1], chunks[-2][1]
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 3


async def test_openai_sdk_streams_the_tokens(upstream: Process) -> None:
    client = await anyio.to_thread.run_sync(
        lambda: openai.AsyncOpenAI(base_url=f"{upstream.http_url}/v1", api_key="x", max_retries=0)
    )
    async with client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        tokens = [
            chunk.choices[0].delta.content
            async for chunk in stream
            if chunk.choices[0].delta.content
        ]
        assert len(tokens) == TOKENS
        assert "".join(tokens).startswith("The lion woke ")

        whole = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert whole.choices[0].message.content == "The lion woke and "
        assert whole.choices[0].finish_reason == "length"

        models = await client.models.list()
        assert [model.id async for model in models] == ["readerai-loadtest"]
