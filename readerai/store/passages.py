"""`PassageStore`: passages, their retrieval index and their recorded narration.

A passage is added `preparing` (or `ready` when nothing is left to do); a job then
fills in its sentences, `terms` and narration, and makes it `ready` or `failed`.
Invariant: the narration of sentence i is the audio of the sentence now at index i;
`update_passage` deletes the audio of any sentence it changes or removes, in the
same transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from readerai.errors import Conflict, NotFound
from readerai.store.base import PASSAGE_STATUSES, PassageRecord
from readerai.store.core import SqlStoreCore, check_choice, check_length, upsert
from readerai.store.models import PASSAGE_ID_LENGTH, NarrationRow, PassageRow, utc_now
from readerai.store.retry import retried_write
from readerai.store.slugs import slugify


class PassageStore(SqlStoreCore):
    """The passage part of `SqlStore`."""

    async def list_passages(self) -> list[PassageRecord]:
        """Every passage, in the order they were added."""
        statement = select(PassageRow).order_by(PassageRow.created_at, PassageRow.id)
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in rows]

    async def get_passage(self, passage_id: str) -> PassageRecord | None:
        """The passage with this id, or None."""
        async with self._db.transaction() as session:
            row = await session.get(PassageRow, passage_id)
            return None if row is None else row.to_record()

    @retried_write
    async def add_passage(
        self,
        *,
        title: str,
        text: str,
        level: str | None,
        sentences: list[str],
        passage_id: str | None = None,
        status: str = "ready",
        terms: list[list[str]] | None = None,
    ) -> PassageRecord:
        """Insert a passage; Conflict if `passage_id` is taken.

        Without an id, the slug of the title is used, or `slug-2`, `slug-3`, … when
        that is taken (at most 64 characters).
        """
        check_choice("passage status", status, PASSAGE_STATUSES)
        fields = {
            "title": title,
            "text": text,
            "level": level,
            "sentences": list(sentences),
            "status": status,
            "terms": None if terms is None else [list(t) for t in terms],
        }
        if passage_id is not None:
            check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
            return await self._insert_passage(PassageRow(id=passage_id, **fields))
        return await self._insert_with_slug(
            slugify(title),
            PassageRow.id,
            lambda candidate: self._insert_passage(PassageRow(id=candidate, **fields)),
        )

    async def _insert_passage(self, row: PassageRow) -> PassageRecord:
        row.created_at = utc_now()
        async with self._db.transaction() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"passage {row.id!r} already exists") from exc
            return row.to_record()

    @retried_write
    async def update_passage(
        self,
        passage_id: str,
        *,
        sentences: list[str] | None = None,
        terms: list[list[str]] | None = None,
        status: str | None = None,
    ) -> None:
        """Replace what is given (None: unchanged); NotFound without the passage.

        The narration of a sentence whose text changes (or that is gone) is deleted.
        """
        if status is not None:
            check_choice("passage status", status, PASSAGE_STATUSES)
        async with self._db.transaction() as session:
            # Locked (PostgreSQL) so that the sentences compared are the ones replaced.
            row = await session.get(PassageRow, passage_id, with_for_update=True)
            if row is None:
                raise NotFound(f"passage {passage_id!r} does not exist")
            if sentences is not None:
                changed = [
                    index
                    for index, (old, new) in enumerate(zip(row.sentences, sentences, strict=False))
                    if old != new
                ]
                await session.execute(
                    delete(NarrationRow).where(
                        NarrationRow.passage_id == passage_id,
                        or_(
                            NarrationRow.sentence_index >= len(sentences),
                            NarrationRow.sentence_index.in_(changed),
                        ),
                    )
                )
                row.sentences = list(sentences)
            if terms is not None:
                row.terms = [list(t) for t in terms]
            if status is not None:
                row.status = status

    @retried_write
    async def save_narration(
        self, passage_id: str, index: int, *, sample_rate: int, pcm: bytes
    ) -> None:
        """Store (or replace) the audio of sentence `index`; NotFound without the passage."""
        if index < 0 or sample_rate <= 0:
            raise ValueError(f"bad narration: sentence {index}, {sample_rate} Hz")
        values = {
            "passage_id": passage_id,
            "sentence_index": index,
            "sample_rate": sample_rate,
            "pcm": pcm,
        }
        statement = upsert(
            self._db,
            NarrationRow,
            values,
            keys=["passage_id", "sentence_index"],
            update=["sample_rate", "pcm"],
        )
        async with self._db.connection() as connection:
            try:
                await connection.execute(statement)
            except IntegrityError as exc:
                raise NotFound(f"passage {passage_id!r} does not exist") from exc

    async def get_narration(self, passage_id: str, index: int) -> tuple[int, bytes] | None:
        """`(sample_rate, pcm)` of sentence `index`, or None."""
        async with self._db.transaction() as session:
            row = await session.get(NarrationRow, (passage_id, index))
            return None if row is None else (row.sample_rate, row.pcm)

    async def narration_count(self, passage_id: str) -> int:
        """How many sentences of the passage have audio."""
        statement = (
            select(func.count())
            .select_from(NarrationRow)
            .where(NarrationRow.passage_id == passage_id)
        )
        async with self._db.connection() as connection:
            return (await connection.execute(statement)).scalar_one()
