"""`SqlStore`: the `Store` on SQLAlchemy 2 async, for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Invariants:
- every public method is one short transaction and returns frozen records, never
  ORM objects, so nothing outside this module can trigger lazy I/O;
- a database that cannot be reached surfaces as `StoreUnavailable` (see
  `readerai.store.database`); constraint violations surface as `Conflict` (taken
  id) or `NotFound` (missing session);
- writes ride out a short outage: each is retried as a whole while the database is
  unavailable, for up to `write_retry_seconds` (see `readerai.store.retry`); reads
  fail at once;
- a reply `in_progress` is leased by the node streaming it: every checkpoint renews
  `messages.updated_at`, and the conditional updates below (checkpoint only while
  `in_progress`, interrupt only when the lease ran out) are single statements, so a
  checkpoint and an interruption racing each other cannot both take effect;
- no blocking call runs on the event loop: SQLite work happens on aiosqlite's
  thread, file-system work and migrations on anyio worker threads.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from readerai.errors import Conflict, NotFound
from readerai.protocol import ReplyStatus
from readerai.store.base import MessageRecord, PassageRecord, ProgressRecord, SessionRecord
from readerai.store.database import Database, is_unavailable
from readerai.store.group_commit import GroupCommit
from readerai.store.migrate import async_url, upgrade_database
from readerai.store.models import (
    CLASS_ID_LENGTH,
    PASSAGE_ID_LENGTH,
    SESSION_ID_LENGTH,
    MessageRow,
    PassageRow,
    ProgressRow,
    SessionRow,
    utc_now,
)
from readerai.store.retry import WriteRetry, retried_write
from readerai.store.slugs import numbered_slugs, slugify

__all__ = ["SqlStore", "slugify"]

#: Times a slug id is retried when another writer takes it between look-up and insert.
SLUG_ATTEMPTS = 5
#: The policy of a store that never connected: retrying could not help.
_NO_RETRY = WriteRetry(budget=0.0)


class SqlStore:
    """The durable store on a SQL database chosen by URL.

    `url` is an SQLAlchemy URL (`sqlite+aiosqlite:///PATH`, `postgresql+asyncpg://…`;
    a bare `sqlite://` or `postgresql://` gets its async driver). `connect_timeout`
    bounds every new connection and the wait for a pooled one. A write that finds
    the database unavailable is retried with backoff for `write_retry_seconds`
    (0: not retried) before `StoreUnavailable` is raised.
    """

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, write_retry_seconds: float = 10.0
    ) -> None:
        if write_retry_seconds < 0:
            raise ValueError("write_retry_seconds must not be negative")
        self._db = Database(async_url(url), connect_timeout=connect_timeout)
        #: The URL as logs and errors show it: the password is never printed.
        self.display_url = self._db.display_url
        self._write_retry = WriteRetry(budget=write_retry_seconds)
        self._started = False
        self._message_writes: GroupCommit[MessageRecord, MessageRecord] = GroupCommit(
            self._insert_messages
        )

    @property
    def write_retry(self) -> WriteRetry:
        """How long writes keep trying through an outage (not at all before `start`)."""
        return self._write_retry if self._started else _NO_RETRY

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect within `connect_timeout`, then migrate to the newest schema."""
        await self._db.connect()
        try:
            await upgrade_database(self._db.url.render_as_string(hide_password=False))
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if not is_unavailable(exc):
                raise
            raise self._db.unavailable(exc) from exc
        self._started = True

    async def close(self) -> None:
        """Close every pooled connection (a later call reconnects)."""
        await self._message_writes.drain()
        await self._db.dispose()

    async def ping(self) -> bool:
        """True when `SELECT 1` answers within two seconds; never raises."""
        return await self._db.ping()

    # ------------------------------------------------------------------ sessions

    @retried_write
    async def create_session(
        self,
        *,
        session_id: str | None = None,
        passage_id: str | None = None,
        class_id: str | None = None,
    ) -> SessionRecord:
        """Create a session (a new UUID4 hex id unless given); Conflict if it exists."""
        session_id = session_id or uuid.uuid4().hex
        _check_length("session id", session_id, SESSION_ID_LENGTH)
        if passage_id is not None:
            _check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
        if class_id is not None:
            _check_length("class id", class_id, CLASS_ID_LENGTH)
        now = utc_now()
        row = SessionRow(
            id=session_id, passage_id=passage_id, class_id=class_id, created_at=now, updated_at=now
        )
        async with self._db.transaction() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"session {session_id!r} already exists") from exc
            return row.to_record()

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session with this id, or None."""
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

    @retried_write
    async def set_session_passage(self, session_id: str, passage_id: str | None) -> None:
        """Point the session at a passage (or none); NotFound if there is no session."""
        if passage_id is not None:
            _check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
        statement = (
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(updated_at=utc_now(), passage_id=passage_id)
            .returning(SessionRow.id)
        )
        async with self._db.transaction() as session:
            if (await session.execute(statement)).scalar_one_or_none() is None:
                raise NotFound(f"session {session_id!r} does not exist")

    # ------------------------------------------------------------------ messages

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
        """Append one message; ids increase with insertion order. NotFound without a session."""
        now = utc_now()  # replaced when the message is written (see `_insert_messages`)
        pending = MessageRecord(
            id=0,
            session_id=session_id,
            turn_id=turn_id,
            role=role,
            text=text,
            status=status,
            citations=list(citations or []),
            created_at=now,
            updated_at=now,
        )
        return await self._message_writes.submit(pending)

    @retried_write
    async def _insert_messages(self, batch: list[MessageRecord]) -> list[MessageRecord | Exception]:
        """Insert a batch of messages in one transaction (see `GroupCommit`).

        Core statements, not the ORM: this is the hot path of every turn. The session
        update is also the existence check; on PostgreSQL the row locks it takes
        serialise a session's inserts, so no reader sees message N+1 committed while
        N is pending. Retried as a whole; meanwhile the group commit's lock makes
        later messages wait, so ids still follow arrival order.

        Messages are stamped when written, not when submitted: a reply `in_progress`
        that waited out an outage must not start with a lease that has run out.
        """
        written_at = utc_now()
        batch = [
            dataclasses.replace(m, created_at=written_at, updated_at=written_at) for m in batch
        ]
        session_ids = sorted({m.session_id for m in batch})
        async with self._db.connection() as connection:
            touched = await connection.execute(
                update(SessionRow)
                .where(SessionRow.id.in_(session_ids))
                .values(updated_at=written_at)
                .returning(SessionRow.id)
            )
            existing = set(touched.scalars())
            rows = [m for m in batch if m.session_id in existing]
            ids: list[int] = []
            if rows:
                inserted = await connection.execute(
                    insert(MessageRow).returning(MessageRow.id, sort_by_parameter_order=True),
                    [_message_values(m) for m in rows],
                )
                ids = list(inserted.scalars())
        new_ids = iter(ids)
        return [
            dataclasses.replace(m, id=next(new_ids))
            if m.session_id in existing
            else NotFound(f"session {m.session_id!r} does not exist")
            for m in batch
        ]

    @retried_write
    async def update_message(
        self,
        message_id: int,
        *,
        text: str,
        status: ReplyStatus,
        citations: list[int] | None = None,
    ) -> None:
        """Replace a message's text, status and citations; NotFound if there is none."""
        statement = (
            update(MessageRow)
            .where(MessageRow.id == message_id)
            .values(
                text=text,
                status=status.value,
                citations=list(citations or []),
                updated_at=utc_now(),
            )
            .returning(MessageRow.id)
        )
        async with self._db.connection() as connection:
            if (await connection.execute(statement)).scalar_one_or_none() is None:
                raise NotFound(f"message {message_id} does not exist")

    async def get_message(self, message_id: int) -> MessageRecord | None:
        """The message with this id, or None."""
        async with self._db.transaction() as session:
            row = await session.get(MessageRow, message_id)
            return None if row is None else row.to_record()

    @retried_write
    async def checkpoint_message(self, message_id: int, *, text: str) -> bool:
        """Save the text of a reply still `in_progress` and renew its lease.

        False (nothing written) once the reply has ended or been interrupted, or if
        there is no such message: the caller's node no longer owns it.
        """
        statement = (
            update(MessageRow)
            .where(MessageRow.id == message_id, MessageRow.status == ReplyStatus.IN_PROGRESS.value)
            .values(text=text, updated_at=utc_now())
            .returning(MessageRow.id)
        )
        async with self._db.connection() as connection:
            return (await connection.execute(statement)).scalar_one_or_none() is not None

    @retried_write
    async def interrupt_stale_replies(self, session_id: str, *, older_than: datetime) -> int:
        """Interrupt the session's `in_progress` replies last written before `older_than`."""
        if older_than.utcoffset() is None:
            raise ValueError("older_than must be timezone-aware")
        return await self._interrupt(
            MessageRow.session_id == session_id, MessageRow.updated_at < older_than
        )

    @retried_write
    async def interrupt_all_in_progress(self) -> int:
        """Mark every `in_progress` reply `interrupted` (single-process start-up only)."""
        return await self._interrupt()

    async def _interrupt(self, *conditions: Any) -> int:
        statement = (
            update(MessageRow)
            .where(MessageRow.status == ReplyStatus.IN_PROGRESS.value, *conditions)
            .values(status=ReplyStatus.INTERRUPTED.value, updated_at=utc_now())
        )
        async with self._db.connection() as connection:
            return (await connection.execute(statement)).rowcount

    async def recent_messages(
        self, session_id: str, *, limit: int, before_id: int | None = None
    ) -> list[MessageRecord]:
        """The `limit` newest messages with id < before_id (all if None), oldest first."""
        if limit <= 0:
            return []
        statement = select(MessageRow).where(MessageRow.session_id == session_id)
        if before_id is not None:
            statement = statement.where(MessageRow.id < before_id)
        statement = statement.order_by(MessageRow.id.desc()).limit(limit)
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in reversed(rows)]

    # ------------------------------------------------------------------ progress

    @retried_write
    async def save_progress(self, session_id: str, passage_id: str, position: int) -> None:
        """Upsert the latest position for (session, passage); NotFound without a session."""
        _check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
        values = {
            "session_id": session_id,
            "passage_id": passage_id,
            "position": position,
            "updated_at": utc_now(),
        }
        keys = [ProgressRow.session_id, ProgressRow.passage_id]
        # One statement, so concurrent writers of the same key cannot both insert.
        if self._db.is_postgresql:
            pg = postgresql.insert(ProgressRow).values(values)
            statement: Insert = pg.on_conflict_do_update(
                index_elements=keys,
                set_={"position": pg.excluded.position, "updated_at": pg.excluded.updated_at},
            )
        else:
            lite = sqlite.insert(ProgressRow).values(values)
            statement = lite.on_conflict_do_update(
                index_elements=keys,
                set_={"position": lite.excluded.position, "updated_at": lite.excluded.updated_at},
            )
        async with self._db.transaction() as session:
            try:
                await session.execute(statement)
            except IntegrityError as exc:
                raise NotFound(f"session {session_id!r} does not exist") from exc

    async def get_progress(self, session_id: str) -> list[ProgressRecord]:
        """The session's latest position in each passage, most recently read first."""
        statement = (
            select(ProgressRow)
            .where(ProgressRow.session_id == session_id)
            .order_by(ProgressRow.updated_at.desc(), ProgressRow.passage_id)
        )
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in rows]

    # ------------------------------------------------------------------ passages

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

    async def add_passage(
        self,
        *,
        title: str,
        text: str,
        level: str | None,
        sentences: list[str],
        passage_id: str | None = None,
    ) -> PassageRecord:
        """Insert a passage; Conflict if `passage_id` is taken.

        Without an id, the slug of the title is used, or `slug-2`, `slug-3`, … when
        that is taken (at most 64 characters).
        """
        fields = {"title": title, "text": text, "level": level, "sentences": list(sentences)}
        if passage_id is not None:
            _check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
            return await self._insert_passage(PassageRow(id=passage_id, **fields))
        base = slugify(title)
        for _ in range(SLUG_ATTEMPTS):
            try:
                candidate = await self._first_free_slug(base)
                return await self._insert_passage(PassageRow(id=candidate, **fields))
            except Conflict:
                continue  # another writer took it between our look-up and insert
        raise Conflict(f"could not find a free passage id for {base!r}")

    async def _first_free_slug(self, base: str) -> str:
        async with self._db.transaction() as session:
            for batch in numbered_slugs(base):
                query = select(PassageRow.id).where(PassageRow.id.in_(batch))
                taken = set(await session.scalars(query))
                free = [candidate for candidate in batch if candidate not in taken]
                if free:
                    return free[0]
        raise AssertionError("numbered_slugs is endless")  # pragma: no cover

    async def _insert_passage(self, row: PassageRow) -> PassageRecord:
        row.created_at = utc_now()
        async with self._db.transaction() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"passage {row.id!r} already exists") from exc
            return row.to_record()


def _message_values(message: MessageRecord) -> dict[str, Any]:
    """The columns of a new message row."""
    return {
        "session_id": message.session_id,
        "turn_id": message.turn_id,
        "role": message.role,
        "text": message.text,
        "status": message.status.value,
        "citations": message.citations,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }


def _check_length(what: str, value: str, limit: int) -> None:
    # Checked here so that SQLite (which ignores VARCHAR lengths) and PostgreSQL agree.
    if not value or len(value) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters, got {len(value)}")
