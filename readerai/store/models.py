"""SQLAlchemy table models. Only `readerai.store.sql` and the migrations see them.

The schema is created by Alembic (`migrations/versions/`), never by `create_all`; a
test compares these models with the migrated database so the two cannot drift.
Constraint and index names follow `NAMING_CONVENTION` so that later migrations can
refer to them by a predictable name on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from readerai.protocol import ReplyStatus
from readerai.store.base import (
    DEFAULT_STALL_HELP,
    DEFAULT_STALL_SECONDS,
    BroadcastRecord,
    ClassRecord,
    JobRecord,
    MessageRecord,
    PassageRecord,
    ProgressRecord,
    SessionRecord,
    UserRecord,
)

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
USER_ID_LENGTH = 64
ROLE_LENGTH = 16
NAME_LENGTH = 200
JOB_ID_LENGTH = 32
JOB_KIND_LENGTH = 32
JOB_TARGET_LENGTH = 64
NODE_ID_LENGTH = 64
BROADCAST_ID_LENGTH = 32
STATUS_LENGTH = 16
READING_ID_LENGTH = 32
MISCUE_KIND_LENGTH = 16


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


# ---------------------------------------------------------------- read-aloud records
# Defined here, beside the table they are stored in (the interface agreed for issue 8);
# `readerai.store.base` names them for the `Store` protocol.


@dataclass(frozen=True, slots=True)
class ReadingHelp:
    """How the tutor helps a student stalled on a word, for one class.

    `stall_seconds`: silence on one word before help is offered; `offer`: `off`,
    `say_word` (the tutor says the word) or `ask` (the tutor asks a question).
    """

    stall_seconds: float
    offer: str


@dataclass(frozen=True, slots=True)
class ReadingMiscue:
    """One miscue of a stored reading (see `readerai.readaloud.miscues`).

    `kind`: omission, substitution, insertion, repetition or self_correction;
    `word_index` the passage word (None for an insertion), `expected` its text,
    `heard` what was said ("" for an omission), `time` seconds into the reading.
    """

    kind: str
    word_index: int | None
    expected: str
    heard: str
    time: float


@dataclass(frozen=True, slots=True)
class HeardWordRecord:
    """One heard word of a stored reading, for replay: what was said, when (seconds
    into the reading), the passage word it was aligned to (None: an inserted word),
    and whether it matched that word."""

    heard: str
    start: float
    end: float
    word_index: int | None
    correct: bool


@dataclass(frozen=True, slots=True)
class ReadingRecord:
    """One reading aloud of one passage, scored (see `readerai.readaloud.fluency`).

    `duration_seconds` runs from the first word read to the last; `errors` are the
    omissions and substitutions; `accuracy` is in [0, 1]. Lists of a class or a
    student (`Store.list_readings`) leave `timeline` empty; `Store.get_reading` fills it.
    """

    id: str
    session_id: str
    user_id: str | None
    class_id: str | None
    passage_id: str
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    words_attempted: int
    words_correct: int
    errors: int
    wcpm: float
    accuracy: float
    miscues: tuple[ReadingMiscue, ...] = ()
    timeline: tuple[HeardWordRecord, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class MissedWord:
    """A passage word often missed: `misses` omissions and substitutions of it, in
    `readings` different readings."""

    word: str
    misses: int
    readings: int


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
    # Not a foreign key either: sessions may predate accounts. Indexed for "the
    # sessions of these students".
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH), index=True)

    def to_record(self) -> SessionRecord:
        """This row as the frozen record the store hands out."""
        return SessionRecord(
            id=self.id,
            passage_id=self.passage_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            class_id=self.class_id,
            user_id=self.user_id,
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
    # A server default too, so that a node still on the previous release (which does
    # not know the column) adds passages that are usable.
    status: Mapped[str] = mapped_column(
        String(STATUS_LENGTH), default="ready", server_default="ready"
    )
    terms: Mapped[list[list[str]] | None] = mapped_column(JSON)

    def to_record(self) -> PassageRecord:
        """This row as the frozen record the store hands out."""
        return PassageRecord(
            id=self.id,
            title=self.title,
            text=self.text,
            level=self.level,
            sentences=list(self.sentences),
            created_at=self.created_at,
            status=self.status,
            terms=None if self.terms is None else [list(terms) for terms in self.terms],
        )


class NarrationRow(Base):
    """The recorded audio of one sentence of a passage (16-bit mono PCM)."""

    __tablename__ = "passage_audio"

    passage_id: Mapped[str] = mapped_column(
        String(PASSAGE_ID_LENGTH),
        ForeignKey("passages.id", ondelete="CASCADE"),
        primary_key=True,
    )
    sentence_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sample_rate: Mapped[int]
    pcm: Mapped[bytes] = mapped_column(LargeBinary)


class UserRow(Base):
    """A student, teacher or admin; the id is the `sub` of their tokens."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(ROLE_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    def to_record(self) -> UserRecord:
        """This row as the frozen record the store hands out."""
        return UserRecord(id=self.id, role=self.role, name=self.name, created_at=self.created_at)


class ClassRow(Base):
    """A class: one teacher, and students through `ClassMemberRow`."""

    __tablename__ = "classes"

    id: Mapped[str] = mapped_column(String(CLASS_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    teacher_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    # Read-aloud help for a student stalled on a word (`Store.reading_help`).
    stall_seconds: Mapped[float] = mapped_column(
        Float, default=DEFAULT_STALL_SECONDS, server_default=str(DEFAULT_STALL_SECONDS)
    )
    stall_help: Mapped[str] = mapped_column(
        String(STATUS_LENGTH), default=DEFAULT_STALL_HELP, server_default=DEFAULT_STALL_HELP
    )

    def to_record(self, student_count: int = 0) -> ClassRecord:
        """This row as the frozen record the store hands out."""
        return ClassRecord(
            id=self.id,
            name=self.name,
            teacher_id=self.teacher_id,
            created_at=self.created_at,
            student_count=student_count,
            stall_seconds=self.stall_seconds,
            stall_help=self.stall_help,
        )


class ClassMemberRow(Base):
    """A student's membership of a class."""

    __tablename__ = "class_members"

    class_id: Mapped[str] = mapped_column(
        String(CLASS_ID_LENGTH), ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed for "the classes of this student"; the primary key serves the other way.
    user_id: Mapped[str] = mapped_column(
        String(USER_ID_LENGTH),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
    joined_at: Mapped[datetime] = mapped_column(default=utc_now)


class BroadcastRow(Base):
    """A message a teacher sent to a whole class."""

    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(BROADCAST_ID_LENGTH), primary_key=True)
    # Not a foreign key: what was said stays on record, whatever becomes of the class.
    class_id: Mapped[str] = mapped_column(String(CLASS_ID_LENGTH), index=True)
    sender_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(default=utc_now)

    def to_record(self) -> BroadcastRecord:
        """This row as the frozen record the store hands out."""
        return BroadcastRecord(
            id=self.id,
            class_id=self.class_id,
            sender_id=self.sender_id,
            text=self.text,
            sent_at=self.sent_at,
        )


class LoginCodeRow(Base):
    """A one-time sign-in code, known only by the SHA-256 of its text."""

    __tablename__ = "login_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256, hex
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH))
    role: Mapped[str] = mapped_column(String(ROLE_LENGTH))
    class_id: Mapped[str | None] = mapped_column(String(CLASS_ID_LENGTH))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class JobRow(Base):
    """Background work (preparing a passage), claimed by one node at a time.

    `heartbeat_at` is the claiming node's lease: a `running` job whose heartbeat is
    too old belongs to a node that died, and may be claimed again.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(JOB_KIND_LENGTH))
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), index=True)
    progress: Mapped[float] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str] = mapped_column(String(JOB_TARGET_LENGTH))
    attempts: Mapped[int]
    owner: Mapped[str | None] = mapped_column(String(NODE_ID_LENGTH))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    def to_record(self) -> JobRecord:
        """This row as the frozen record the store hands out."""
        return JobRecord(
            id=self.id,
            kind=self.kind,
            status=self.status,
            progress=self.progress,
            detail=self.detail,
            target=self.target,
            attempts=self.attempts,
            owner=self.owner,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class ReadingRow(Base):
    """One scored reading aloud (`ReadingRecord`); miscues and timeline as JSON."""

    __tablename__ = "readings"
    __table_args__ = (
        # "The readings of a class / of a student, newest first".
        Index("ix_readings_class_id_ended_at", "class_id", "ended_at"),
        Index("ix_readings_user_id_ended_at", "user_id", "ended_at"),
    )

    id: Mapped[str] = mapped_column(String(READING_ID_LENGTH), primary_key=True)
    # Not foreign keys, like `sessions`: what a student read stays on record.
    session_id: Mapped[str] = mapped_column(String(SESSION_ID_LENGTH), index=True)
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))
    class_id: Mapped[str | None] = mapped_column(String(CLASS_ID_LENGTH))
    passage_id: Mapped[str] = mapped_column(String(PASSAGE_ID_LENGTH))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_seconds: Mapped[float] = mapped_column(Float)
    words_attempted: Mapped[int]
    words_correct: Mapped[int]
    errors: Mapped[int]
    wcpm: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float] = mapped_column(Float)
    miscues: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON)

    def to_record(self, *, timeline: bool = True) -> ReadingRecord:
        """This row as the frozen record the store hands out (`timeline` False: empty)."""
        return ReadingRecord(
            id=self.id,
            session_id=self.session_id,
            user_id=self.user_id,
            class_id=self.class_id,
            passage_id=self.passage_id,
            started_at=self.started_at,
            ended_at=self.ended_at,
            duration_seconds=self.duration_seconds,
            words_attempted=self.words_attempted,
            words_correct=self.words_correct,
            errors=self.errors,
            wcpm=self.wcpm,
            accuracy=self.accuracy,
            miscues=tuple(ReadingMiscue(**m) for m in self.miscues),
            timeline=tuple(HeardWordRecord(**w) for w in self.timeline) if timeline else (),
        )
