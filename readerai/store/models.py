"""SQLAlchemy table models. Only `readerai.store.sql` and the migrations see them.

The schema is created by Alembic (`migrations/versions/`), never by `create_all`; a
test compares these models with the migrated database so the two cannot drift.
Constraint and index names follow `NAMING_CONVENTION` so that later migrations can
refer to them by a predictable name on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, ForeignKey, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from readerai.protocol import ReplyStatus
from readerai.store.base import MessageRecord, PassageRecord, ProgressRecord, SessionRecord

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SESSION_ID_LENGTH = 32
PASSAGE_ID_LENGTH = 64
CLASS_ID_LENGTH = 64


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the offset (`timestamptz`); SQLite has no timezone type, so the
    value is stored as naive UTC and given its `UTC` tzinfo back when read.
    Naive datetimes are refused on the way in: their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is stored")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (the only kind the store writes)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class SessionRow(Base):
    """One tutoring session; `passage_id` is the passage its questions are about."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(SESSION_ID_LENGTH), primary_key=True)
    # Not a foreign key: a session may point at a passage that is added later or
    # removed, and losing the session over it would be worse than a dangling id.
    passage_id: Mapped[str | None] = mapped_column(String(PASSAGE_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    # Indexed for "every session of a class" (a teacher's view).
    class_id: Mapped[str | None] = mapped_column(String(CLASS_ID_LENGTH), index=True)

    def to_record(self) -> SessionRecord:
        """This row as the frozen record the store hands out."""
        return SessionRecord(
            id=self.id,
            passage_id=self.passage_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            class_id=self.class_id,
        )


class MessageRow(Base):
    """A student question or a tutor reply; ids increase with insertion order."""

    __tablename__ = "messages"
    __table_args__ = (
        # Serves both the foreign key and "newest N of a session" (ORDER BY id DESC).
        Index("ix_messages_session_id_id", "session_id", "id"),
        # AUTOINCREMENT stops SQLite from reusing the id of a deleted newest row,
        # which would break "ids increase with insertion order".
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_LENGTH), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    turn_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    citations: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    # Renewed by every checkpoint of a streaming reply: its node's lease on it.
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    def to_record(self) -> MessageRecord:
        """This row as the frozen record the store hands out."""
        return MessageRecord(
            id=self.id,
            session_id=self.session_id,
            turn_id=self.turn_id,
            role=self.role,
            text=self.text,
            status=ReplyStatus(self.status),
            citations=list(self.citations),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class ProgressRow(Base):
    """The latest reading position of one session in one passage."""

    __tablename__ = "reading_progress"

    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_LENGTH),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    )
    passage_id: Mapped[str] = mapped_column(String(PASSAGE_ID_LENGTH), primary_key=True)
    position: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    def to_record(self) -> ProgressRecord:
        """This row as the frozen record the store hands out."""
        return ProgressRecord(
            session_id=self.session_id,
            passage_id=self.passage_id,
            position=self.position,
            updated_at=self.updated_at,
        )


class PassageRow(Base):
    """A text to read, split into the sentences that replies cite by index."""

    __tablename__ = "passages"

    id: Mapped[str] = mapped_column(String(PASSAGE_ID_LENGTH), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(String(64))
    sentences: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    def to_record(self) -> PassageRecord:
        """This row as the frozen record the store hands out."""
        return PassageRecord(
            id=self.id,
            title=self.title,
            text=self.text,
            level=self.level,
            sentences=list(self.sentences),
            created_at=self.created_at,
        )
