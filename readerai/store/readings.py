"""`ReadingStore`: scored readings aloud, and each class's help for a stalled reader.

A reading is written once, when it ends (`readerai.session.read_aloud`), and never
changed. Its miscues and its timeline (every heard word, for replay) are JSON
columns: they are read whole, with the reading, never queried inside. Lists leave
the timeline out (it is most of a row's size); `get_reading` brings it.

"Most missed words" are counted here, in Python, over the miscues of the last N
readings: N is small (a dashboard's window), and JSON is not queried the same way on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

from readerai.errors import Conflict
from readerai.store.base import DEFAULT_STALL_HELP, DEFAULT_STALL_SECONDS
from readerai.store.core import SqlStoreCore, check_length
from readerai.store.models import (
    CLASS_ID_LENGTH,
    PASSAGE_ID_LENGTH,
    READING_ID_LENGTH,
    SESSION_ID_LENGTH,
    USER_ID_LENGTH,
    ClassRow,
    MissedWord,
    ReadingHelp,
    ReadingRecord,
    ReadingRow,
)
from readerai.store.retry import retried_write

#: Miscue kinds that count as errors (CBM-R): the ones "most missed" counts.
ERROR_KINDS = frozenset({"omission", "substitution"})
#: Most readings one list returns.
MAX_READINGS = 1000


class ReadingStore(SqlStoreCore):
    """The read-aloud part of `SqlStore`."""

    # ------------------------------------------------------------------ class help

    async def reading_help(self, class_id: str | None) -> ReadingHelp:
        """How to help a stalled reader of the class; the defaults without one."""
        if class_id is None:
            return ReadingHelp(DEFAULT_STALL_SECONDS, DEFAULT_STALL_HELP)
        statement = select(ClassRow.stall_seconds, ClassRow.stall_help).where(
            ClassRow.id == class_id
        )
        async with self._db.connection() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            return ReadingHelp(DEFAULT_STALL_SECONDS, DEFAULT_STALL_HELP)
        return ReadingHelp(float(row.stall_seconds), str(row.stall_help))

    # ------------------------------------------------------------------ readings

    @retried_write
    async def save_reading(self, reading: ReadingRecord) -> None:
        """Store a scored reading; Conflict if its id is taken."""
        check_length("reading id", reading.id, READING_ID_LENGTH)
        check_length("session id", reading.session_id, SESSION_ID_LENGTH)
        check_length("passage id", reading.passage_id, PASSAGE_ID_LENGTH)
        if reading.user_id is not None:
            check_length("user id", reading.user_id, USER_ID_LENGTH)
        if reading.class_id is not None:
            check_length("class id", reading.class_id, CLASS_ID_LENGTH)
        row = ReadingRow(
            id=reading.id,
            session_id=reading.session_id,
            user_id=reading.user_id,
            class_id=reading.class_id,
            passage_id=reading.passage_id,
            started_at=reading.started_at,
            ended_at=reading.ended_at,
            duration_seconds=reading.duration_seconds,
            words_attempted=reading.words_attempted,
            words_correct=reading.words_correct,
            errors=reading.errors,
            wcpm=reading.wcpm,
            accuracy=reading.accuracy,
            miscues=[dataclasses.asdict(m) for m in reading.miscues],
            timeline=[dataclasses.asdict(w) for w in reading.timeline],
        )
        async with self._db.transaction() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"reading {reading.id!r} already exists") from exc

    async def get_reading(self, reading_id: str) -> ReadingRecord | None:
        """One reading with its miscues and timeline, or None."""
        async with self._db.transaction() as session:
            row = await session.get(ReadingRow, reading_id)
            return None if row is None else row.to_record()

    async def list_readings(
        self,
        *,
        class_id: str | None = None,
        user_id: str | None = None,
        passage_id: str | None = None,
        limit: int = 100,
    ) -> list[ReadingRecord]:
        """The `limit` newest readings matching every filter given, newest first
        (without their timeline)."""
        if limit <= 0:
            return []
        statement = (
            _matching(class_id, user_id, passage_id)
            .options(defer(ReadingRow.timeline))
            .order_by(ReadingRow.ended_at.desc(), ReadingRow.id.desc())
            .limit(min(limit, MAX_READINGS))
        )
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
            return [row.to_record(timeline=False) for row in rows]

    async def missed_words(
        self,
        *,
        class_id: str | None = None,
        user_id: str | None = None,
        last: int = 20,
        limit: int = 10,
    ) -> list[MissedWord]:
        """The words most often omitted or substituted over the `last` readings."""
        if last <= 0 or limit <= 0:
            return []
        statement = (
            select(ReadingRow.id, ReadingRow.miscues)
            .where(*_conditions(class_id, user_id, None))
            .order_by(ReadingRow.ended_at.desc(), ReadingRow.id.desc())
            .limit(min(last, MAX_READINGS))
        )
        async with self._db.connection() as connection:
            rows = (await connection.execute(statement)).all()
        misses: Counter[str] = Counter()
        readings: Counter[str] = Counter()
        for _, miscues in rows:
            words = [
                str(m["expected"]).casefold()
                for m in miscues
                if m.get("kind") in ERROR_KINDS and m.get("expected")
            ]
            misses.update(words)
            readings.update(set(words))
        ranked = sorted(misses.items(), key=lambda item: (-item[1], item[0]))
        return [MissedWord(word, count, readings[word]) for word, count in ranked[:limit]]


def _conditions(class_id: str | None, user_id: str | None, passage_id: str | None) -> list[Any]:
    conditions = []
    if class_id is not None:
        conditions.append(ReadingRow.class_id == class_id)
    if user_id is not None:
        conditions.append(ReadingRow.user_id == user_id)
    if passage_id is not None:
        conditions.append(ReadingRow.passage_id == passage_id)
    return conditions


def _matching(
    class_id: str | None, user_id: str | None, passage_id: str | None
) -> Select[ReadingRow]:
    return select(ReadingRow).where(*_conditions(class_id, user_id, passage_id))
