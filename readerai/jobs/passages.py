"""The `prepare_passage` job: split a passage, index it, narrate each sentence.

The passage row holds the text people see (Markdown was turned into plain text
when it was added, see `readerai.jobs.markdown`); the job fills in its sentences,
their retrieval terms and one recording per sentence, then makes it `ready`, or
`failed` when it cannot.

Safe to run again after a crash: every step overwrites what a previous attempt
wrote, and a sentence whose narration is already stored is not synthesised again
(the store deletes the narration of any sentence whose text changed).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import structlog

from readerai.grounding import split_sentences, tokens
from readerai.jobs.worker import JobFailed, ProgressReporter
from readerai.store import JobRecord, Store
from readerai.store.jobs import PREPARE_PASSAGE

__all__ = ["PREPARE_PASSAGE", "PassagePreparer"]
from readerai.voice.base import TextToSpeech

log = structlog.get_logger(__name__)

#: Progress once the text is split and indexed; narration takes the rest.
SPLIT_PROGRESS = 0.1


class PassagePreparer:
    """The handler of `prepare_passage` jobs (the job's `target` is the passage id)."""

    def __init__(
        self,
        store: Store,
        tts: TextToSpeech,
        *,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        """`on_change(passage_id)` is called after each change to the passage row
        (a cache such as `PassageCatalog.forget`)."""
        self._store = store
        self._tts = tts
        self._on_change = on_change

    async def __call__(self, job: JobRecord, report: ProgressReporter) -> None:
        passage_id = job.target
        try:
            await self._prepare(passage_id, report)
        except Exception:
            await self._mark_failed(passage_id)
            raise

    async def _prepare(self, passage_id: str, report: ProgressReporter) -> None:
        passage = await self._store.get_passage(passage_id)
        if passage is None:
            raise JobFailed(f"passage {passage_id!r} does not exist")
        # Pure CPU, but a passage may be 100 000 characters: off the event loop.
        sentences, terms = await anyio.to_thread.run_sync(_index, passage.text)
        if not sentences:
            raise JobFailed("no sentences in the text")
        await self._store.update_passage(passage_id, sentences=sentences, terms=terms)
        self._changed(passage_id)
        report(SPLIT_PROGRESS)
        for index, sentence in enumerate(sentences):
            if await self._store.get_narration(passage_id, index) is None:
                speech = await self._tts.synthesize(sentence)
                await self._store.save_narration(
                    passage_id, index, sample_rate=speech.sample_rate, pcm=speech.pcm
                )
            report(SPLIT_PROGRESS + (1 - SPLIT_PROGRESS) * (index + 1) / len(sentences))
        await self._store.update_passage(passage_id, status="ready")
        self._changed(passage_id)
        log.info("passage.prepared", passage_id=passage_id, sentences=len(sentences))

    async def _mark_failed(self, passage_id: str) -> None:
        try:
            await self._store.update_passage(passage_id, status="failed")
        except Exception as exc:  # noqa: BLE001 - the job's own failure is what matters
            log.warning("passage.mark_failed_failed", passage_id=passage_id, error=repr(exc))
        self._changed(passage_id)

    def _changed(self, passage_id: str) -> None:
        if self._on_change is not None:
            self._on_change(passage_id)


def _index(text: str) -> tuple[list[str], list[list[str]]]:
    """The sentences of `text` and, per sentence, its stemmed content words."""
    sentences = split_sentences(text)
    return sentences, [tokens(sentence) for sentence in sentences]
