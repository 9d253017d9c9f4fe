"""`ExtractiveEngine`: answers by quoting the passage, with no model at all.

A real engine, not a mock: for deployments without an LLM (it cannot make anything
up, which suits a reading tutor), for tests that need exact, repeatable replies,
and for benchmarks that measure the server rather than a model. The reply is the
one or two context sentences that best match the question (by the same BM25 scorer
that chose the context), streamed word by word at a fixed pace, like a model would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

import anyio

from readerai.engines.base import EngineRequest
from readerai.grounding import score_sentences

NOT_FOUND = "I could not find that in the passage. Can you ask it another way?"
#: A second sentence is quoted only if it scores at least this share of the best.
SECOND_SENTENCE_SHARE = 0.5
_WORD_AND_SPACE = re.compile(r"\S+\s*")


def extractive_answer(request: EngineRequest) -> str:
    """The reply text: the best one or two context sentences, in passage order.

    `NOT_FOUND` when no sentence shares a content word with the question.
    """
    sentences = [sentence for _, sentence in request.context]
    scores = score_sentences(sentences, request.question)
    # Best first; a stable sort keeps ties in passage order.
    ranked = sorted(range(len(sentences)), key=scores.__getitem__, reverse=True)
    if not ranked or scores[ranked[0]] <= 0:
        return NOT_FOUND
    chosen = ranked[:1]
    if len(ranked) > 1 and scores[ranked[1]] >= SECOND_SENTENCE_SHARE * scores[ranked[0]]:
        chosen.append(ranked[1])
    return " ".join(sentences[i] for i in sorted(chosen))


class ExtractiveEngine:
    """Quotes the most relevant passage sentences, one word per delta."""

    name: str = "extractive"

    def __init__(self, token_delay: float = 0.02) -> None:
        if token_delay < 0:
            raise ValueError("token_delay must not be negative")
        self._token_delay = token_delay

    async def start(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        """Nothing to free."""

    async def stream(self, request: EngineRequest) -> AsyncGenerator[str, None]:
        """Yield each word with the whitespace after it; the deltas join to the answer.

        Waits ``token_delay`` seconds between words (a checkpoint even when it is 0,
        so a cancelled consumer stops at the next word).
        """
        words = _WORD_AND_SPACE.findall(extractive_answer(request))
        for position, word in enumerate(words[: request.max_tokens]):
            if position:
                await anyio.sleep(self._token_delay)
            yield word
