"""The extractive engine quotes the passage, word by word, with no model."""

from __future__ import annotations

import time

import anyio
import pytest

from readerai.engines.base import Engine, EngineRequest
from readerai.engines.extractive import NOT_FOUND, ExtractiveEngine, extractive_answer
from readerai.engines.factory import build_engine
from readerai.grounding import cite
from readerai.settings import Settings

KITE = [
    "Mia had a small red kite.",
    "Every Saturday she flew it at the park with her grandfather.",
    "One windy day the string snapped and the kite floated away over the trees.",
    "Mia was sad, but her grandfather helped her build a new kite from paper and sticks.",
    "The new kite was blue and flew even higher.",
]
CONTEXT = list(enumerate(KITE))


async def collect(engine: Engine, request: EngineRequest) -> list[str]:
    return [delta async for delta in engine.stream(request)]


async def test_answer_quotes_the_best_sentence() -> None:
    engine = ExtractiveEngine(token_delay=0)
    deltas = await collect(engine, EngineRequest("Why did the string snap?", CONTEXT))
    assert "".join(deltas) == KITE[2]


async def test_each_delta_is_a_word_with_its_following_space() -> None:
    deltas = await collect(ExtractiveEngine(0), EngineRequest("Where was the park?", CONTEXT))
    assert deltas[0] == "Every "
    assert all(delta.endswith(" ") for delta in deltas[:-1])
    assert deltas[-1] == "grandfather."
    assert all(len(delta.split()) == 1 for delta in deltas)


def test_a_close_second_sentence_is_quoted_too_in_passage_order() -> None:
    request = EngineRequest("Who is the grandfather?", CONTEXT)
    assert extractive_answer(request) == f"{KITE[1]} {KITE[3]}"


def test_only_one_sentence_when_the_second_scores_far_lower() -> None:
    # Sentence 4 matches "new", "kite", "flew" and "higher"; the runner-up only "flew".
    answer = extractive_answer(EngineRequest("How high the new kite flew!", CONTEXT))
    assert answer == KITE[4]


def test_answer_cites_exactly_the_quoted_sentences() -> None:
    request = EngineRequest("Who is the grandfather?", CONTEXT)
    assert cite(extractive_answer(request), CONTEXT) == [1, 3]


@pytest.mark.parametrize("context", [CONTEXT, []])
async def test_says_so_when_the_passage_has_no_answer(context: list[tuple[int, str]]) -> None:
    deltas = await collect(ExtractiveEngine(0), EngineRequest("Do dragons sing?", context))
    assert "".join(deltas) == NOT_FOUND


async def test_reply_is_cut_at_max_tokens_words() -> None:
    request = EngineRequest("Why did the string snap?", CONTEXT, max_tokens=3)
    assert await collect(ExtractiveEngine(0), request) == ["One ", "windy ", "day "]


async def test_words_are_paced_by_token_delay() -> None:
    request = EngineRequest("How high the new kite flew!", CONTEXT)
    started = time.perf_counter()
    deltas = await collect(ExtractiveEngine(token_delay=0.01), request)
    elapsed = time.perf_counter() - started
    assert len(deltas) == 9
    assert elapsed >= 8 * 0.01


async def test_cancelling_the_consumer_stops_at_the_next_word() -> None:
    engine = ExtractiveEngine(token_delay=10)
    seen: list[str] = []
    with anyio.move_on_after(0.2) as scope:
        async for delta in engine.stream(EngineRequest("Why did the string snap?", CONTEXT)):
            seen.append(delta)
    assert scope.cancelled_caught
    assert seen == ["One "]


async def test_start_and_close_need_nothing() -> None:
    engine = ExtractiveEngine()
    await engine.start()
    await engine.close()
    assert engine.name == "extractive"


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        ExtractiveEngine(token_delay=-1)


def test_factory_builds_the_engine_named_in_settings() -> None:
    engine = build_engine(Settings(engine="extractive", extractive_token_delay=0.5))
    assert isinstance(engine, ExtractiveEngine)
    assert engine.name == "extractive"
