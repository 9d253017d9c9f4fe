"""`ClassroomStore`: users, classes, who is in which class, and what was broadcast to it.

A class has one teacher (`classes.teacher_id`, a user that must exist) and any number
of members (`class_members`), who are its students. Removing a user or a class
removes their memberships (ON DELETE CASCADE). Broadcasts name their class without a
foreign key: what was said stays on record.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from readerai.errors import Conflict, NotFound
from readerai.store.base import STALL_HELP_CHOICES, BroadcastRecord, ClassRecord, UserRecord
from readerai.store.core import SqlStoreCore, check_choice, check_length, upsert
from readerai.store.models import (
    CLASS_ID_LENGTH,
    NAME_LENGTH,
    ROLE_LENGTH,
    USER_ID_LENGTH,
    BroadcastRow,
    ClassMemberRow,
    ClassRow,
    UserRow,
    utc_now,
)
from readerai.store.retry import retried_write
from readerai.store.slugs import slugify


class ClassroomStore(SqlStoreCore):
    """The accounts-and-classes part of `SqlStore`."""

    # ------------------------------------------------------------------ users

    @retried_write
    async def upsert_user(self, *, user_id: str, role: str, name: str) -> UserRecord:
        """Create the user, or change the role and name of an existing one."""
        check_length("user id", user_id, USER_ID_LENGTH)
        check_length("role", role, ROLE_LENGTH)
        check_length("name", name, NAME_LENGTH)
        values = {"id": user_id, "role": role, "name": name, "created_at": utc_now()}
        statement = upsert(self._db, UserRow, values, keys=["id"], update=["role", "name"])
        async with self._db.transaction() as session:
            row = (await session.scalars(statement.returning(UserRow))).one()
            return row.to_record()

    async def get_user(self, user_id: str) -> UserRecord | None:
        """The user with this id, or None."""
        async with self._db.transaction() as session:
            row = await session.get(UserRow, user_id)
            return None if row is None else row.to_record()

    # ------------------------------------------------------------------ classes

    @retried_write
    async def create_class(
        self, *, name: str, teacher_id: str, class_id: str | None = None
    ) -> ClassRecord:
        """Create a class; Conflict if `class_id` is taken, NotFound without the teacher.

        Without an id, the slug of the name is used, or `slug-2`, `slug-3`, … when
        that is taken (at most 64 characters).
        """
        check_length("class name", name, NAME_LENGTH)
        if class_id is not None:
            check_length("class id", class_id, CLASS_ID_LENGTH)
            return await self._insert_class(class_id, name, teacher_id)
        return await self._insert_with_slug(
            slugify(name, fallback="class"),
            ClassRow.id,
            lambda candidate: self._insert_class(candidate, name, teacher_id),
        )

    async def _insert_class(self, class_id: str, name: str, teacher_id: str) -> ClassRecord:
        row = ClassRow(id=class_id, name=name, teacher_id=teacher_id, created_at=utc_now())
        async with self._db.transaction() as session:
            # Looked up first so that a missing teacher is told apart from a taken id
            # (users are never deleted, so the answer still holds at the insert).
            if await session.get(UserRow, teacher_id) is None:
                raise NotFound(f"user {teacher_id!r} does not exist")
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"class {class_id!r} already exists") from exc
            return row.to_record()

    async def get_class(self, class_id: str) -> ClassRecord | None:
        """The class with its `student_count`, or None."""
        found = await self._classes(_with_counts().where(ClassRow.id == class_id))
        return found[0] if found else None

    async def list_classes(
        self, *, teacher_id: str | None = None, student_id: str | None = None
    ) -> list[ClassRecord]:
        """Classes taught by `teacher_id` and/or joined by `student_id` (neither: all), by name."""
        statement = _with_counts()
        if teacher_id is not None:
            statement = statement.where(ClassRow.teacher_id == teacher_id)
        if student_id is not None:
            joined = select(ClassMemberRow.class_id).where(ClassMemberRow.user_id == student_id)
            statement = statement.where(ClassRow.id.in_(joined))
        return await self._classes(statement.order_by(ClassRow.name, ClassRow.id))

    async def _classes(self, statement: Select[ClassRow, int]) -> list[ClassRecord]:
        async with self._db.transaction() as session:
            rows = (await session.execute(statement)).all()
        return [row.to_record(student_count=count) for row, count in rows]

    @retried_write
    async def set_class_help(
        self, class_id: str, *, stall_seconds: float | None = None, stall_help: str | None = None
    ) -> ClassRecord:
        """Change the class's read-aloud help for a stalled reader (None: unchanged).

        NotFound without the class; ValueError for a `stall_help` not in
        STALL_HELP_CHOICES or a `stall_seconds` below 0 or not finite.
        """
        values: dict[str, Any] = {}
        if stall_seconds is not None:
            if not math.isfinite(stall_seconds) or stall_seconds < 0:
                raise ValueError(f"stall_seconds must be a finite number >= 0, got {stall_seconds}")
            values["stall_seconds"] = float(stall_seconds)
        if stall_help is not None:
            check_choice("stall help", stall_help, STALL_HELP_CHOICES)
            values["stall_help"] = stall_help
        async with self._db.transaction() as session:
            if values:
                changed = await session.execute(
                    update(ClassRow).where(ClassRow.id == class_id).values(**values)
                )
                found = changed.rowcount > 0  # type: ignore[attr-defined]
            else:
                found = await session.get(ClassRow, class_id) is not None
        if not found:
            raise NotFound(f"class {class_id!r} does not exist")
        record = await self.get_class(class_id)
        if record is None:  # removed between the two statements
            raise NotFound(f"class {class_id!r} does not exist")
        return record

    # ------------------------------------------------------------------ members

    @retried_write
    async def add_member(self, class_id: str, user_id: str) -> None:
        """Put the user in the class (already there: nothing changes).

        NotFound if the class or the user does not exist.
        """
        values = {"class_id": class_id, "user_id": user_id, "joined_at": utc_now()}
        statement = upsert(
            self._db, ClassMemberRow, values, keys=["class_id", "user_id"], update=[]
        )
        async with self._db.connection() as connection:
            try:
                await connection.execute(statement)
            except IntegrityError as exc:
                raise NotFound(f"class {class_id!r} or user {user_id!r} does not exist") from exc

    @retried_write
    async def remove_member(self, class_id: str, user_id: str) -> bool:
        """Take the user out of the class; False if they were not in it."""
        statement = delete(ClassMemberRow).where(
            ClassMemberRow.class_id == class_id, ClassMemberRow.user_id == user_id
        )
        async with self._db.connection() as connection:
            return (await connection.execute(statement)).rowcount > 0

    async def class_students(self, class_id: str) -> list[UserRecord]:
        """The members of the class, by name."""
        statement = (
            select(UserRow)
            .join(ClassMemberRow, ClassMemberRow.user_id == UserRow.id)
            .where(ClassMemberRow.class_id == class_id)
            .order_by(UserRow.name, UserRow.id)
        )
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in rows]

    async def is_member(self, class_id: str, user_id: str) -> bool:
        """Whether the user is in the class."""
        statement = select(ClassMemberRow.user_id).where(
            ClassMemberRow.class_id == class_id, ClassMemberRow.user_id == user_id
        )
        async with self._db.connection() as connection:
            return (await connection.execute(statement)).first() is not None

    # ------------------------------------------------------------------ broadcasts

    @retried_write
    async def add_broadcast(self, *, class_id: str, sender_id: str, text: str) -> BroadcastRecord:
        """Store a message sent to a whole class (a new UUID4 hex id)."""
        check_length("class id", class_id, CLASS_ID_LENGTH)
        check_length("sender id", sender_id, USER_ID_LENGTH)
        row = BroadcastRow(
            id=uuid.uuid4().hex,
            class_id=class_id,
            sender_id=sender_id,
            text=text,
            sent_at=utc_now(),
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
            return row.to_record()

    async def recent_broadcasts(self, class_id: str, limit: int = 20) -> list[BroadcastRecord]:
        """The class's `limit` newest broadcasts, oldest first."""
        if limit <= 0:
            return []
        statement = (
            select(BroadcastRow)
            .where(BroadcastRow.class_id == class_id)
            .order_by(BroadcastRow.sent_at.desc(), BroadcastRow.id.desc())
            .limit(limit)
        )
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in reversed(rows)]


def _with_counts() -> Select[ClassRow, int]:
    """Classes, each with how many members it has (a correlated count)."""
    members = (
        select(func.count())
        .where(ClassMemberRow.class_id == ClassRow.id)
        .correlate(ClassRow)
        .scalar_subquery()
    )
    return select(ClassRow, members)
