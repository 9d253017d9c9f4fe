"""The end of a reading aloud: score it, store it, show it to the teacher.

When a `ReadAloudFollower` ends (the student goes back to conversation, starts
another passage, or the connection closes), its aligner holds the whole reading.
`ReadingRecorder.record` scores it off the event loop (`find_miscues`,
`measure_fluency`), stores it as a `ReadingRecord` and pushes a `reading` report to
the class's dashboards; the follower then tells the student (`READING_RESULT`).

Durability: the work runs as a shielded task of the node's supervisor, not of the
connection, so a reading ended by the connection closing is still stored, and a
node shutting down waits for it (the supervisor never cancels shielded tasks). The
store retries the write through a short outage. Only what was heard is scored: a
connection that closes mid-reading loses the audio not yet recognised (the last
second or two), never what was already aligned.

Skipped: a reading with fewer than `MIN_WORDS_READ` passage words read correctly
(the mode switched on and off, a microphone test) is neither stored nor reported.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
import structlog

from readerai.protocol import ReadingMiscueView, ReadingResult
from readerai.readaloud.align import Aligner, Op
from readerai.readaloud.fluency import measure_fluency
from readerai.readaloud.miscues import find_miscues
from readerai.session.feed import ClassFeed
from readerai.store import Store
from readerai.store.models import HeardWordRecord, ReadingMiscue, ReadingRecord
from readerai.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

#: A reading with fewer passage words read correctly than this is not stored.
MIN_WORDS_READ = 3
_READS = (Op.READ, Op.REREAD)


class ReadingRecorder:
    """Node-wide: scores ended readings, stores them and reports them to dashboards."""

    def __init__(self, store: Store, supervisor: TaskSupervisor, feed: ClassFeed) -> None:
        self._store = store
        self._supervisor = supervisor
        self._feed = feed

    def record(
        self,
        aligner: Aligner,
        started_at: datetime,
        *,
        session_id: str,
        user_id: str | None,
        class_id: str | None,
        passage_id: str,
    ) -> asyncio.Task[ReadingRecord | None]:
        """Score, store and report the reading `aligner` followed, in a supervised task.

        The caller must not use `aligner` any more. The task's result is the stored
        record, or None for a reading too short to keep. It never needs awaiting: a
        caller that awaits it should shield it (it outlives the caller by design).
        """
        owner = _Owner(session_id, user_id, class_id, passage_id, started_at)
        task: asyncio.Task[ReadingRecord | None] = self._supervisor.start(
            self._record(aligner, owner),
            name="reading.record",
            shielded=True,
            session_id=session_id,
            passage_id=passage_id,
        )
        return task

    async def _record(self, aligner: Aligner, owner: _Owner) -> ReadingRecord | None:
        ended_at = datetime.now(UTC)
        reading = await anyio.to_thread.run_sync(score_reading, aligner, owner, ended_at)
        if reading is None:
            log.info("reading.too_short", session_id=owner.session_id)
            return None
        await self._store.save_reading(reading)
        log.info(
            "reading.stored",
            session_id=reading.session_id,
            reading_id=reading.id,
            wcpm=round(reading.wcpm, 1),
            errors=reading.errors,
        )
        self._feed.reading(
            reading.class_id,
            reading.user_id,
            reading.session_id,
            readingId=reading.id,
            passageId=reading.passage_id,
            wcpm=reading.wcpm,
            accuracy=reading.accuracy,
            wordsCorrect=reading.words_correct,
            wordsAttempted=reading.words_attempted,
            endedAt=reading.ended_at.isoformat(),
        )
        return reading


@dataclass(frozen=True, slots=True)
class _Owner:
    """Whose reading it is, and of what."""

    session_id: str
    user_id: str | None
    class_id: str | None
    passage_id: str
    started_at: datetime


def score_reading(aligner: Aligner, owner: _Owner, ended_at: datetime) -> ReadingRecord | None:
    """The scored record of the reading (CPU work: call it in a worker thread).

    Times (miscues, timeline) are seconds of the reading's audio stream.
    """
    alignment = aligner.alignment()
    read = sum(p.op in _READS and p.correct for p in alignment.pairs)
    if read < MIN_WORDS_READ:
        return None
    miscues = find_miscues(alignment)
    fluency = measure_fluency(alignment, miscues)
    timeline = tuple(
        HeardWordRecord(
            heard=alignment.heard[p.heard_index].text,
            start=round(alignment.heard[p.heard_index].start, 3),
            end=round(alignment.heard[p.heard_index].end, 3),
            word_index=p.word_index,
            correct=p.correct,
        )
        for p in alignment.pairs
        if p.heard_index is not None
    )
    return ReadingRecord(
        id=uuid.uuid4().hex,
        session_id=owner.session_id,
        user_id=owner.user_id,
        class_id=owner.class_id,
        passage_id=owner.passage_id,
        started_at=owner.started_at,
        ended_at=ended_at,
        duration_seconds=round(fluency.seconds, 3),
        words_attempted=fluency.words_attempted,
        words_correct=fluency.words_correct,
        errors=fluency.errors,
        wcpm=fluency.wcpm,
        accuracy=fluency.accuracy,
        miscues=tuple(
            ReadingMiscue(m.kind.value, m.word_index, m.expected, m.heard, round(m.time, 3))
            for m in miscues
        ),
        timeline=timeline,
    )


def reading_result(reading: ReadingRecord) -> ReadingResult:
    """The `READING_RESULT` event telling the student how the reading went."""
    return ReadingResult(
        passage_id=reading.passage_id,
        reading_id=reading.id,
        wcpm=round(reading.wcpm, 1),
        accuracy=round(reading.accuracy, 3),
        words_correct=reading.words_correct,
        words_attempted=reading.words_attempted,
        miscues=[
            ReadingMiscueView(
                kind=m.kind, word_index=m.word_index, expected=m.expected, heard=m.heard
            )
            for m in reading.miscues
        ],
    )
