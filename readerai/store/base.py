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

    Raises `readerai.errors.StoreUnavailable` when the database cannot be reached,
    `readerai.errors.NotFound` for a missing session where one is required.
    """

    async def start(self) -> None:
        """Connect and apply migrations; raise if the database is unreachable."""

    async def close(self) -> None:
        """Dispose of the connection pool."""

    async def ping(self) -> bool:
        """True when a trivial query succeeds within a short deadline."""

    async def create_session(
        self, *, session_id: str | None = None, passage_id: str | None = None
    ) -> SessionRecord:
        """Create a session (a new UUID4 hex id unless given); Conflict if it exists."""

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

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
        """Replace a message's text, status and citations (a reply being checkpointed)."""

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
