"""The `Store` interface and the plain records it returns (no ORM objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from readerai.protocol import ReplyStatus


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    passage_id: str | None
    created_at: datetime
    updated_at: datetime
    class_id: str | None = None


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


class Store(Protocol):
    """Durable state. Every method is one short unit of work (its own transaction).

    Raises `readerai.errors.StoreUnavailable` when the database cannot be reached
    (writes first retry for a while, reads do not), `readerai.errors.NotFound` for a
    missing session where one is required.
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
    ) -> SessionRecord:
        """Create a session (a new UUID4 hex id unless given); Conflict if it exists."""

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def sessions_in_class(self, class_id: str) -> list[SessionRecord]:
        """The sessions of one class, oldest first."""

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

    async def save_progress(self, session_id: str, passage_id: str, position: int) -> None:
        """Upsert the latest position for (session, passage)."""

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
    ) -> PassageRecord:
        """Insert a passage (a slug id from the title unless given); Conflict if taken."""
