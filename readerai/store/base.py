"""The `Store` interface and the plain records it returns (no ORM objects leak out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from readerai.protocol import ReplyStatus

if TYPE_CHECKING:  # defined beside their table (models.py imports this module)
    from readerai.store.models import MissedWord, ReadingHelp, ReadingRecord

#: What a passage is: being prepared (split, indexed, narrated), usable, or not.
PASSAGE_STATUSES = frozenset({"preparing", "ready", "failed"})
#: The states of a job; it goes queued → running → completed or failed.
JOB_STATUSES = frozenset({"queued", "running", "completed", "failed"})
#: How a job that ran may end (`Store.finish_job`).
JobOutcome = Literal["completed", "failed"]
#: How the tutor helps a student stalled on a word while reading aloud (per class).
STALL_HELP_CHOICES = frozenset({"off", "say_word", "ask"})
#: A class's stall settings until its teacher changes them (and with no class at all).
DEFAULT_STALL_SECONDS = 5.0
DEFAULT_STALL_HELP = "say_word"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    passage_id: str | None
    created_at: datetime
    updated_at: datetime
    class_id: str | None = None
    #: The student it belongs to; None for sessions opened before accounts existed.
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: int
    session_id: str
    turn_id: str
    role: str  # "student" | "tutor"
    text: str
    status: ReplyStatus
    citations: list[int] = field(default_factory=list)
    created_at: datetime = field(default_factory=datetime.now)
    #: Last write of text or status: a reply `in_progress` whose `updated_at` is older
    #: than the turn lease has lost its node (see `Store.interrupt_stale_replies`).
    updated_at: datetime = field(default_factory=datetime.now)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append (`Store.add_messages`)."""

    session_id: str
    turn_id: str
    role: str  # "student" | "tutor"
    text: str
    status: ReplyStatus
    citations: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProgressRecord:
    session_id: str
    passage_id: str
    position: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PassageRecord:
    id: str
    title: str
    text: str
    level: str | None
    sentences: list[str]
    created_at: datetime
    status: str = "ready"  # one of PASSAGE_STATUSES
    #: The retrieval index: per sentence, its stemmed terms (None until built).
    terms: list[list[str]] | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    role: str  # "student" | "teacher" | "admin"
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClassRecord:
    id: str
    name: str
    teacher_id: str
    created_at: datetime
    student_count: int = 0
    #: Read-aloud: silence on one word before help is offered, and which help
    #: (one of STALL_HELP_CHOICES).
    stall_seconds: float = DEFAULT_STALL_SECONDS
    stall_help: str = DEFAULT_STALL_HELP


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    id: str
    class_id: str
    sender_id: str
    text: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class LoginCode:
    """What a redeemed one-time sign-in code stood for."""

    user_id: str
    role: str
    class_id: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    kind: str
    status: str  # one of JOB_STATUSES
    progress: float  # 0 to 1
    detail: str | None  # why it failed, or a note
    target: str  # what it works on, e.g. a passage id
    attempts: int  # times it was claimed
    owner: str | None  # the node that claimed it last
    created_at: datetime
    updated_at: datetime


class Store(Protocol):
    """Durable state. Every method is one short unit of work (its own transaction).

    Raises `readerai.errors.StoreUnavailable` when the database cannot be reached
    (writes first retry for a while, reads do not), `readerai.errors.NotFound` for a
    missing row where one is required (a session, passage, class or user), and
    `readerai.errors.Conflict` for an id that is taken. Ids longer than their column
    (64 characters; 32 for sessions) raise `ValueError`.
    """

    async def start(self) -> None:
        """Connect and apply migrations; raise if the database is unreachable."""

    async def close(self) -> None:
        """Dispose of the connection pool."""

    async def ping(self) -> bool:
        """True when a trivial query succeeds within a short deadline."""

    async def create_session(
        self,
        *,
        session_id: str | None = None,
        passage_id: str | None = None,
        class_id: str | None = None,
        user_id: str | None = None,
    ) -> SessionRecord:
        """Create a session (a new UUID4 hex id unless given); Conflict if it exists."""

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def sessions_in_class(self, class_id: str) -> list[SessionRecord]:
        """The sessions of one class, oldest first."""

    async def list_sessions(
        self, *, user_ids: list[str] | None, limit: int = 50
    ) -> list[SessionRecord]:
        """The `limit` sessions last updated of these users (None: of everyone), newest first.

        `user_ids` has no default on purpose: "every session" is a decision.
        """

    async def session_stats(self, session_ids: list[str]) -> dict[str, tuple[int, datetime | None]]:
        """Per session: how many questions the student asked, and when the newest message was.

        Every id given is a key; a session without messages (or none at all) is `(0, None)`.
        """

    async def set_session_passage(self, session_id: str, passage_id: str | None) -> None: ...

    async def add_message(
        self,
        *,
        session_id: str,
        turn_id: str,
        role: str,
        text: str,
        status: ReplyStatus,
        citations: list[int] | None = None,
    ) -> MessageRecord:
        """Append one message; ids increase with insertion order."""

    async def add_messages(self, messages: list[NewMessage]) -> list[MessageRecord]:
        """Append several messages in one transaction, in this order (ids increase)."""

    async def update_message(
        self,
        message_id: int,
        *,
        text: str,
        status: ReplyStatus,
        citations: list[int] | None = None,
    ) -> None:
        """Replace a message's text, status and citations, and set its `updated_at`."""

    async def get_message(self, message_id: int) -> MessageRecord | None: ...

    async def checkpoint_message(self, message_id: int, *, text: str) -> bool:
        """Save the text of a reply still streaming; False once it is no longer `in_progress`.

        One conditional write, so a checkpoint racing `interrupt_stale_replies` either
        lands before it (and renews the lease) or changes nothing.
        """

    async def interrupt_stale_replies(self, session_id: str, *, older_than: datetime) -> int:
        """Interrupt the session's replies whose node died mid-reply; return how many.

        A reply is taken for orphaned when it is still `in_progress` and was last
        written (`updated_at`) before `older_than`; one conditional write, as above.
        """

    async def interrupt_all_in_progress(self) -> int:
        """Mark every `in_progress` reply `interrupted`; return how many.

        Only for a node that knows no other node can be writing a reply: a single
        process at start-up.
        """

    async def recent_messages(
        self, session_id: str, *, limit: int, before_id: int | None = None
    ) -> list[MessageRecord]:
        """The `limit` newest messages with id < before_id (all if None), oldest first."""

    async def restore_reads(
        self, session_id: str, *, limit: int
    ) -> tuple[list[MessageRecord], list[ProgressRecord]]:
        """`recent_messages` and `get_progress` of a session, read together (a
        connection's restore); one transaction where the store has them."""

    async def save_progress(self, session_id: str, passage_id: str, position: int) -> None:
        """Upsert the latest position for (session, passage)."""

    async def save_progress_many(
        self, positions: Sequence[tuple[str, str, int]]
    ) -> list[Exception | None]:
        """Upsert many (session, passage, position) rows; per row, None or its error."""

    async def get_progress(self, session_id: str) -> list[ProgressRecord]: ...

    async def list_passages(self) -> list[PassageRecord]: ...

    async def get_passage(self, passage_id: str) -> PassageRecord | None: ...

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
        """Insert a passage (a slug id from the title unless given); Conflict if taken."""

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

    async def save_narration(
        self, passage_id: str, index: int, *, sample_rate: int, pcm: bytes
    ) -> None:
        """Store (or replace) the audio of sentence `index`; NotFound without the passage."""

    async def get_narration(self, passage_id: str, index: int) -> tuple[int, bytes] | None:
        """`(sample_rate, pcm)` of sentence `index`, or None."""

    async def narration_count(self, passage_id: str) -> int:
        """How many sentences of the passage have audio."""

    # ------------------------------------------------------------------ accounts and classes

    async def upsert_user(self, *, user_id: str, role: str, name: str) -> UserRecord:
        """Create the user, or change the role and name of an existing one."""

    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def create_class(
        self, *, name: str, teacher_id: str, class_id: str | None = None
    ) -> ClassRecord:
        """Create a class (a slug id from the name unless given).

        Conflict if the given id is taken; NotFound if there is no user `teacher_id`.
        """

    async def get_class(self, class_id: str) -> ClassRecord | None:
        """The class with its `student_count`, or None."""

    async def list_classes(
        self, *, teacher_id: str | None = None, student_id: str | None = None
    ) -> list[ClassRecord]:
        """Classes taught by `teacher_id` and/or joined by `student_id` (neither: all), by name."""

    async def add_member(self, class_id: str, user_id: str) -> None:
        """Put the user in the class (already there: nothing changes).

        NotFound if the class or the user does not exist.
        """

    async def remove_member(self, class_id: str, user_id: str) -> bool:
        """Take the user out of the class; False if they were not in it."""

    async def class_students(self, class_id: str) -> list[UserRecord]:
        """The members of the class, by name."""

    async def is_member(self, class_id: str, user_id: str) -> bool: ...

    async def add_broadcast(self, *, class_id: str, sender_id: str, text: str) -> BroadcastRecord:
        """Store a message sent to a whole class."""

    async def recent_broadcasts(self, class_id: str, limit: int = 20) -> list[BroadcastRecord]:
        """The class's `limit` newest broadcasts, oldest first."""

    async def set_class_help(
        self, class_id: str, *, stall_seconds: float | None = None, stall_help: str | None = None
    ) -> ClassRecord:
        """Change the class's stall settings (None: unchanged); NotFound without the class.

        `ValueError` for a `stall_help` not in STALL_HELP_CHOICES or a negative or
        non-finite `stall_seconds`.
        """

    # ------------------------------------------------------------------ readings

    async def reading_help(self, class_id: str | None) -> ReadingHelp:
        """How to help a stalled reader of the class; the defaults (5.0 s, `say_word`)
        for None or a class that does not exist."""

    async def save_reading(self, reading: ReadingRecord) -> None:
        """Store a scored reading; Conflict if its id is taken."""

    async def get_reading(self, reading_id: str) -> ReadingRecord | None:
        """One reading with its miscues and timeline, or None."""

    async def list_readings(
        self,
        *,
        class_id: str | None = None,
        user_id: str | None = None,
        passage_id: str | None = None,
        limit: int = 100,
    ) -> list[ReadingRecord]:
        """The `limit` newest readings matching every filter given, newest first,
        with their miscues but an empty timeline."""

    async def missed_words(
        self,
        *,
        class_id: str | None = None,
        user_id: str | None = None,
        last: int = 20,
        limit: int = 10,
    ) -> list[MissedWord]:
        """The `limit` words most often omitted or substituted over the `last` readings
        matching the filters, most missed first (ties: alphabetical); words are
        compared case-insensitively."""

    # ------------------------------------------------------------------ sign-in codes

    async def create_login_code(
        self, *, user_id: str, role: str, class_id: str | None, ttl_seconds: float
    ) -> tuple[str, datetime]:
        """A new one-time code (8 characters) standing for this user, and when it expires.

        Only a hash of the code is stored.
        """

    async def redeem_login_code(self, code: str) -> LoginCode | None:
        """Use the code up and say whom it stands for; None if unknown, used or expired.

        Case, spaces and dashes do not matter. Of two concurrent redeems, one wins.
        """

    # ------------------------------------------------------------------ jobs

    async def create_job(self, *, kind: str, target: str) -> JobRecord:
        """Queue a job (status `queued`, progress 0, no attempts yet)."""

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def claim_job(
        self, *, owner: str, stale_before: datetime, max_attempts: int
    ) -> JobRecord | None:
        """Take the oldest job that is waiting, or whose node stopped heartbeating.

        A job is handed to one claimer only. A running job whose last heartbeat is
        older than `stale_before` is taken over if it has had fewer than
        `max_attempts` attempts, and marked `failed` otherwise. None: nothing to do.
        """

    async def heartbeat_job(self, job_id: str, *, owner: str, progress: float) -> bool:
        """Record progress and liveness; False if `owner` no longer runs this job."""

    async def finish_job(
        self, job_id: str, *, owner: str, status: JobOutcome, detail: str | None
    ) -> bool:
        """End a job `owner` runs; False (nothing written) if it no longer runs it."""
