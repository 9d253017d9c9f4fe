"""`SessionStore`: tutoring sessions, who they belong to, and where their readers are.

A session may name a passage, a class and a user (its student); none of these is a
foreign key: a session may predate accounts, or outlive what it points at.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from readerai.errors import Conflict, NotFound
from readerai.store.base import ProgressRecord, SessionRecord
from readerai.store.core import SqlStoreCore, check_length, upsert
from readerai.store.models import (
    CLASS_ID_LENGTH,
    PASSAGE_ID_LENGTH,
    SESSION_ID_LENGTH,
    USER_ID_LENGTH,
    MessageRow,
    ProgressRow,
    SessionRow,
    utc_now,
)
from readerai.store.retry import retried_write

#: The role of a student's message (the other is "tutor").
STUDENT_ROLE = "student"
#: Rows per transaction when many sessions' positions are written at once.
PROGRESS_CHUNK = 500
#: A session's positions, read by every connection's restore: built once (building
#: it per call was a quarter of a restore's CPU, py-spy).
SESSION_PROGRESS = (
    select(ProgressRow)
    .where(ProgressRow.session_id == bindparam("session_id"))
    .order_by(ProgressRow.updated_at.desc(), ProgressRow.passage_id)
)


#: One session by id, for the SQLite path of `get_session` (the ORM's `get` elsewhere).
_SESSION = select(SessionRow).where(SessionRow.id == bindparam("session_id"))
#: A new session, for the SQLite path of `create_session` (the ORM's `add` elsewhere).
_NEW_SESSION = insert(SessionRow).values(
    {column.key: bindparam(column.key) for column in SessionRow.__table__.columns}
)


class SessionStore(SqlStoreCore):
    """The sessions-and-progress part of `SqlStore`."""

    # ------------------------------------------------------------------ sessions

    @retried_write
    async def create_session(
        self,
        *,
        session_id: str | None = None,
        passage_id: str | None = None,
        class_id: str | None = None,
        user_id: str | None = None,
    ) -> SessionRecord:
        """Create a session (a new UUID4 hex id unless given); Conflict if it exists."""
        session_id = session_id or uuid.uuid4().hex
        check_length("session id", session_id, SESSION_ID_LENGTH)
        for what, value, limit in (
            ("passage id", passage_id, PASSAGE_ID_LENGTH),
            ("class id", class_id, CLASS_ID_LENGTH),
            ("user id", user_id, USER_ID_LENGTH),
        ):
            if value is not None:
                check_length(what, value, limit)
        now = utc_now()
        record = SessionRecord(
            id=session_id,
            passage_id=passage_id,
            created_at=now,
            updated_at=now,
            class_id=class_id,
            user_id=user_id,
        )
        # The record's fields are the table's columns, for both paths.
        columns = dataclasses.asdict(record)
        try:
            if self._db.is_sqlite:
                await self._insert_on_sqlite(_NEW_SESSION, columns)
            else:
                async with self._db.transaction() as session:
                    session.add(SessionRow(**columns))
                    await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"session {session_id!r} already exists") from exc
        return record

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session with this id, or None (every connection's access check)."""
        if self._db.is_sqlite:
            [rows] = await self._select_on_sqlite((_SESSION, {"session_id": session_id}))
            return SessionRecord(**rows[0]) if rows else None
        async with self._db.transaction() as session:
            row = await session.get(SessionRow, session_id)
            return None if row is None else row.to_record()

    async def sessions_in_class(self, class_id: str) -> list[SessionRecord]:
        """The sessions of one class, oldest first."""
        statement = (
            select(SessionRow)
            .where(SessionRow.class_id == class_id)
            .order_by(SessionRow.created_at, SessionRow.id)
        )
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in rows]

    async def list_sessions(
        self, *, user_ids: list[str] | None, limit: int = 50
    ) -> list[SessionRecord]:
        """The `limit` sessions last updated of these users (None: of everyone), newest first."""
        if limit <= 0 or user_ids == []:
            return []
        statement = select(SessionRow)
        if user_ids is not None:
            statement = statement.where(SessionRow.user_id.in_(sorted(set(user_ids))))
        statement = statement.order_by(SessionRow.updated_at.desc(), SessionRow.id.desc())
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement.limit(limit))).all()
        return [row.to_record() for row in rows]

    async def session_stats(self, session_ids: list[str]) -> dict[str, tuple[int, datetime | None]]:
        """Per session: how many questions the student asked, and when the newest message was.

        One grouped query over `messages` (served by its (session_id, id) index).
        Every id given is a key; a session without messages is `(0, None)`.
        """
        stats: dict[str, tuple[int, datetime | None]] = dict.fromkeys(session_ids, (0, None))
        if not stats:
            return stats
        statement = (
            select(
                MessageRow.session_id,
                func.count(case((MessageRow.role == STUDENT_ROLE, 1))),
                func.max(MessageRow.created_at),
            )
            .where(MessageRow.session_id.in_(sorted(stats)))
            .group_by(MessageRow.session_id)
        )
        async with self._db.connection() as connection:
            for session_id, questions, newest in await connection.execute(statement):
                stats[session_id] = (questions, newest)
        return stats

    @retried_write
    async def set_session_passage(self, session_id: str, passage_id: str | None) -> None:
        """Point the session at a passage (or none); NotFound if there is no session."""
        if passage_id is not None:
            check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
        statement = (
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(updated_at=utc_now(), passage_id=passage_id)
            .returning(SessionRow.id)
        )
        async with self._db.transaction() as session:
            if (await session.execute(statement)).scalar_one_or_none() is None:
                raise NotFound(f"session {session_id!r} does not exist")

    # ------------------------------------------------------------------ progress

    _progress_statement: Insert | None = None

    async def save_progress(self, session_id: str, passage_id: str, position: int) -> None:
        """Upsert the latest position for (session, passage); NotFound without a session.

        The node batches positions itself (`ProgressWriter` calls `save_progress_many`
        once a second); this is the one-row form of the same write.
        """
        (outcome,) = await self.save_progress_many([(session_id, passage_id, position)])
        if outcome is not None:
            raise outcome

    async def save_progress_many(
        self, positions: Sequence[tuple[str, str, int]]
    ) -> list[Exception | None]:
        """Upsert many (session, passage, position) rows; per row, None or its error.

        For a node writing every session's coalesced positions at once: chunks of
        `PROGRESS_CHUNK` rows, one transaction each, so no batch holds the database
        (or, on SQLite, the driver's thread) for long.
        """
        outcomes: list[Exception | None] = []
        for start in range(0, len(positions), PROGRESS_CHUNK):
            chunk = list(positions[start : start + PROGRESS_CHUNK])
            for _, passage_id, _ in chunk:
                check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
            outcomes += await self._upsert_progress(chunk)
        return outcomes

    @retried_write
    async def _upsert_progress(self, batch: list[tuple[str, str, int]]) -> list[Exception | None]:
        """Write a batch of positions in one transaction; if a
        session of it is gone, each is written alone so only that one fails."""
        now = utc_now()
        rows = [
            {"session_id": s, "passage_id": p, "position": pos, "updated_at": now}
            for s, p, pos in batch
        ]
        statement = self._progress_upsert()
        try:
            async with self._db.connection() as connection:
                await connection.execute(statement, rows)
            return [None] * len(batch)
        except IntegrityError:
            pass
        outcomes: list[Exception | None] = []
        for row in rows:
            try:
                async with self._db.transaction() as session:
                    await session.execute(statement, [row])
                outcomes.append(None)
            except IntegrityError:
                outcomes.append(NotFound(f"session {row['session_id']!r} does not exist"))
        return outcomes

    def _progress_upsert(self) -> Insert:
        """The positions' upsert, built once per store (see `_upsert_progress`)."""
        if self._progress_statement is None:
            self._progress_statement = upsert(
                self._db,
                ProgressRow,
                None,
                keys=["session_id", "passage_id"],
                update=["position", "updated_at"],
            )
        return self._progress_statement

    async def get_progress(self, session_id: str) -> list[ProgressRecord]:
        """The session's latest position in each passage, most recently read first."""
        async with self._db.transaction() as session:
            found = await session.scalars(SESSION_PROGRESS, {"session_id": session_id})
            rows = found.all()
        return [row.to_record() for row in rows]
