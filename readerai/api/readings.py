"""Readings aloud, for teachers: a class's readings, a student's fluency over time,
the words a class misses most, and one reading with its miscues for replay.

A teacher reaches the readings of the classes they teach, a student their own, an
admin every reading (docs/classroom.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query

from readerai.api.classes import REFUSALS, ClassId, UserId
from readerai.api.deps import PrincipalDep, ServicesDep, TeacherDep
from readerai.api.schemas import (
    FluencyPoint,
    HeardWordOut,
    MissedWordOut,
    PassageFluency,
    PassageWordOut,
    ReadingDetail,
    ReadingMiscueOut,
    ReadingSummary,
    StudentFluency,
)
from readerai.auth.principal import Role
from readerai.readaloud.words import tokenize
from readerai.store.models import ReadingRecord

router = APIRouter(prefix="/api", tags=["readings"])

ReadingId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
PassageFilter = Annotated[
    str | None,
    Query(alias="passageId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"),
]
StudentFilter = Annotated[
    str | None,
    Query(alias="userId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$"),
]
#: Readings a student's fluency is drawn from, at most.
FLUENCY_READINGS = 500


def summary(reading: ReadingRecord) -> ReadingSummary:
    """A reading as the lists show it (no timeline)."""
    return ReadingSummary(
        reading_id=reading.id,
        session_id=reading.session_id,
        user_id=reading.user_id,
        class_id=reading.class_id,
        passage_id=reading.passage_id,
        started_at=reading.started_at.isoformat(),
        ended_at=reading.ended_at.isoformat(),
        duration_seconds=reading.duration_seconds,
        words_attempted=reading.words_attempted,
        words_correct=reading.words_correct,
        errors=reading.errors,
        wcpm=reading.wcpm,
        accuracy=reading.accuracy,
        miscues=[
            ReadingMiscueOut(
                kind=m.kind,
                word_index=m.word_index,
                expected=m.expected,
                heard=m.heard,
                time=m.time,
            )
            for m in reading.miscues
        ],
    )


@router.get("/classes/{class_id}/readings", responses=REFUSALS)
async def class_readings(
    class_id: ClassId,
    services: ServicesDep,
    principal: TeacherDep,
    user_id: StudentFilter = None,
    passage_id: PassageFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReadingSummary]:
    """The class's readings aloud, newest first (of one student, of one passage)."""
    await services.access.teaching(principal, class_id)
    found = await services.store.list_readings(
        class_id=class_id, user_id=user_id, passage_id=passage_id, limit=limit
    )
    return [summary(r) for r in found]


@router.get("/classes/{class_id}/missed-words", responses=REFUSALS)
async def missed_words(
    class_id: ClassId,
    services: ServicesDep,
    principal: TeacherDep,
    user_id: StudentFilter = None,
    last: Annotated[int, Query(ge=1, le=500, description="Readings counted.")] = 20,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[MissedWordOut]:
    """The words most often omitted or substituted in the class's (or one student's)
    last readings, most missed first."""
    await services.access.teaching(principal, class_id)
    found = await services.store.missed_words(
        class_id=class_id, user_id=user_id, last=last, limit=limit
    )
    return [MissedWordOut(word=w.word, misses=w.misses, readings=w.readings) for w in found]


@router.get("/classes/{class_id}/students/{user_id}/fluency", responses=REFUSALS)
async def student_fluency(
    class_id: ClassId, user_id: UserId, services: ServicesDep, principal: PrincipalDep
) -> StudentFluency:
    """WCPM and accuracy of each of the student's readings in the class, per passage,
    oldest first (the class's teacher, the student, admins)."""
    if principal.role is Role.STUDENT and principal.user_id == user_id:
        await services.access.in_class(principal, class_id)
    else:
        await services.access.teaching(principal, class_id)
    found = await services.store.list_readings(
        class_id=class_id, user_id=user_id, limit=FLUENCY_READINGS
    )
    by_passage: dict[str, list[FluencyPoint]] = {}
    for reading in reversed(found):  # oldest first
        by_passage.setdefault(reading.passage_id, []).append(
            FluencyPoint(
                reading_id=reading.id,
                ended_at=reading.ended_at.isoformat(),
                wcpm=reading.wcpm,
                accuracy=reading.accuracy,
                words_correct=reading.words_correct,
                words_attempted=reading.words_attempted,
            )
        )
    passages = []
    for passage_id, points in by_passage.items():
        passage = await services.catalog.get(passage_id)
        title = passage.title if passage is not None else None
        passages.append(PassageFluency(passage_id=passage_id, title=title, readings=points))
    return StudentFluency(user_id=user_id, class_id=class_id, passages=passages)


@router.get("/readings/{reading_id}", responses=REFUSALS)
async def get_reading(
    reading_id: ReadingId, services: ServicesDep, principal: PrincipalDep
) -> ReadingDetail:
    """One reading with its passage, miscues and timeline, for replay (its student,
    the teacher of its class, admins)."""
    reading = await services.access.reading(principal, reading_id)
    passage = await services.catalog.get(reading.passage_id)
    words: Sequence[PassageWordOut] = []
    if passage is not None:
        words = await anyio.to_thread.run_sync(_passage_words, passage.text)
    return ReadingDetail(
        **summary(reading).model_dump(),
        passage_title=passage.title if passage else None,
        passage_text=passage.text if passage else None,
        words=list(words),
        timeline=[
            HeardWordOut(
                heard=w.heard, start=w.start, end=w.end, word_index=w.word_index, correct=w.correct
            )
            for w in reading.timeline
        ],
    )


def _passage_words(text: str) -> list[PassageWordOut]:
    """The passage's words as the aligner numbered them (CPU work: in a thread)."""
    return [PassageWordOut(text=w.text, start=w.start, end=w.end) for w in tokenize(text)]
