"""`SqlStore`: the `Store` on SQLAlchemy 2 async, for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Invariants (of this module and of every part `SqlStore` inherits):
- every public method is one short transaction and returns frozen records, never
  ORM objects, so nothing outside the store can trigger lazy I/O;
- a database that cannot be reached surfaces as `StoreUnavailable` (see
  `readerai.store.database`); constraint violations surface as `Conflict` (taken
  id) or `NotFound` (a missing session, passage, class or user);
- writes ride out a short outage: each is retried as a whole while the database is
  unavailable, for up to `write_retry_seconds` (see `readerai.store.retry`); reads
  fail at once;
- a reply `in_progress` is leased by the node streaming it: every checkpoint renews
  `messages.updated_at`, and the conditional updates below (checkpoint only while
  `in_progress`, interrupt only when the lease ran out) are single statements, so a
  checkpoint and an interruption racing each other cannot both take effect; jobs
  (`readerai.store.jobs`) and sign-in codes (`readerai.store.login_codes`) rely on
  conditional single statements in the same way;
- no blocking call runs on the event loop: SQLite work happens on aiosqlite's
  thread, file-system work and migrations on anyio worker threads.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from readerai.errors import NotFound
from readerai.protocol import ReplyStatus
from readerai.store.base import MessageRecord, NewMessage, ProgressRecord
from readerai.store.classroom import ClassroomStore
from readerai.store.database import is_unavailable
from readerai.store.group_commit import GroupCommit
from readerai.store.jobs import JobStore
from readerai.store.login_codes import LoginCodeStore
from readerai.store.message_updates import MessageUpdate, apply_message_updates
from readerai.store.migrate import upgrade_database
from readerai.store.models import MessageRow, SessionRow, utc_now
from readerai.store.passages import PassageStore
from readerai.store.readings import ReadingStore
from readerai.store.retry import retried_write
from readerai.store.sessions import SESSION_PROGRESS, SessionStore
from readerai.store.slugs import slugify
from readerai.store.sqlite_messages import SqliteMessages

__all__ = ["SqlStore", "slugify"]

# The hot path's statements, built once: a statement built per call left cyclic
# garbage (bind parameters, labels) whose collection paused the event loop.
_TOUCH_SESSIONS = (
    update(SessionRow)
    .where(SessionRow.id.in_(bindparam("ids", expanding=True)))
    .values(updated_at=bindparam("now"))
    .returning(SessionRow.id)
)
_INSERT_MESSAGES = insert(MessageRow).returning(MessageRow.id, sort_by_parameter_order=True)
#: A session's newest messages, read by every connection's restore; and those
#: before a message id (a page further back).
_RECENT_MESSAGES = (
    select(MessageRow)
    .where(MessageRow.session_id == bindparam("session_id"))
    .order_by(MessageRow.id.desc())
    .limit(bindparam("limit", type_=Integer))
)
_MESSAGES_BEFORE = _RECENT_MESSAGES.where(MessageRow.id < bindparam("before_id"))


class SqlStore(SessionStore, PassageStore, ClassroomStore, LoginCodeStore, JobStore, ReadingStore):
    """The durable store on a SQL database chosen by URL.

    `url` is an SQLAlchemy URL (`sqlite+aiosqlite:///PATH`, `postgresql+asyncpg://…`;
    a bare `sqlite://` or `postgresql://` gets its async driver). `connect_timeout`
    bounds every new connection and the wait for a pooled one. A write that finds
    the database unavailable is retried with backoff for `write_retry_seconds`
    (0: not retried) before `StoreUnavailable` is raised.

    Messages (the hot path of every turn) live here; sessions, passages, the
    classroom, sign-in codes, jobs and readings in the parts it inherits, one module each
    (see `readerai.store.core`).
    """

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, write_retry_seconds: float = 10.0
    ) -> None:
        super().__init__(
            url, connect_timeout=connect_timeout, write_retry_seconds=write_retry_seconds
        )
        self._message_writes: GroupCommit[MessageRecord, MessageRecord] = GroupCommit(
            self._insert_messages
        )
        self._message_updates: GroupCommit[MessageUpdate, bool] = GroupCommit(self._update_messages)
        #: SQLite only: message writes in one trip each to the connection's thread.
        self._sqlite: SqliteMessages | None = None

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
        await self._message_updates.drain()
        await self._db.dispose()

    async def ping(self) -> bool:
        """True when `SELECT 1` answers within two seconds (a write, after a SQLite
        disk error, until one succeeds); never raises."""
        return await self._db.ping()

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

    async def add_messages(self, messages: list[NewMessage]) -> list[MessageRecord]:
        """Append several messages in one transaction, in this order (ids increase)."""
        now = utc_now()
        pending = [
            MessageRecord(
                id=0,
                session_id=m.session_id,
                turn_id=m.turn_id,
                role=m.role,
                text=m.text,
                status=m.status,
                citations=list(m.citations),
                created_at=now,
                updated_at=now,
            )
            for m in messages
        ]
        return await self._message_writes.submit_many(pending)

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
        if self._db.is_sqlite:
            written = await self._db.in_sqlite_thread(
                self._sqlite_messages().inserts(batch, written_at)
            )
            existing, ids = written.existing, written.ids
        else:
            existing, ids = await self._insert_messages_sql(batch, written_at)
        new_ids = iter(ids)
        return [
            dataclasses.replace(m, id=next(new_ids))
            if m.session_id in existing
            else NotFound(f"session {m.session_id!r} does not exist")
            for m in batch
        ]

    async def _insert_messages_sql(
        self, batch: list[MessageRecord], written_at: datetime
    ) -> tuple[set[str], list[int]]:
        """`_insert_messages` through SQLAlchemy: the sessions that exist, the new ids."""
        session_ids = sorted({m.session_id for m in batch})
        async with self._db.connection() as connection:
            touched = await connection.execute(
                _TOUCH_SESSIONS, {"ids": session_ids, "now": written_at}
            )
            existing = set(touched.scalars())
            rows = [m for m in batch if m.session_id in existing]
            ids: list[int] = []
            if rows:
                inserted = await connection.execute(
                    _INSERT_MESSAGES, [_message_values(m) for m in rows]
                )
                ids = list(inserted.scalars())
        return existing, ids

    def _sqlite_messages(self) -> SqliteMessages:
        if self._sqlite is None:
            self._sqlite = SqliteMessages(self._db.dialect)
        return self._sqlite

    async def update_message(
        self,
        message_id: int,
        *,
        text: str,
        status: ReplyStatus,
        citations: list[int] | None = None,
    ) -> None:
        """Replace a message's text, status and citations; NotFound if there is none.

        Group-committed with other updates (see `readerai.store.message_updates`)."""
        update = MessageUpdate(message_id, text, status, tuple(citations or ()))
        if not await self._message_updates.submit(update):
            raise NotFound(f"message {message_id} does not exist")

    async def get_message(self, message_id: int) -> MessageRecord | None:
        """The message with this id, or None."""
        async with self._db.transaction() as session:
            row = await session.get(MessageRow, message_id)
            return None if row is None else row.to_record()

    async def checkpoint_message(self, message_id: int, *, text: str) -> bool:
        """Save the text of a reply still `in_progress` and renew its lease.

        False (nothing written) once the reply has ended or been interrupted, or if
        there is no such message: the caller's node no longer owns it.
        """
        return await self._message_updates.submit(MessageUpdate(message_id, text))

    @retried_write
    async def _update_messages(self, batch: list[MessageUpdate]) -> list[bool | Exception]:
        """Write a batch of message updates in one transaction (see `GroupCommit`)."""
        now = utc_now()
        if self._db.is_sqlite:
            written = await self._db.in_sqlite_thread(self._sqlite_messages().updates(batch, now))
        else:
            async with self._db.connection() as connection:
                written = await apply_message_updates(connection, batch, now)
        return list(written)

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
        stale = (MessageRow.status == ReplyStatus.IN_PROGRESS.value, *conditions)
        async with self._db.connection() as connection:
            # Look before writing: reading a history must not take SQLite's one write
            # lock, nor fail when the disk is read-only, when nothing is stale.
            if (await connection.execute(select(MessageRow.id).where(*stale).limit(1))).first():
                statement = (
                    update(MessageRow)
                    .where(*stale)
                    .values(status=ReplyStatus.INTERRUPTED.value, updated_at=utc_now())
                )
                return (await connection.execute(statement)).rowcount
            return 0

    async def recent_messages(
        self, session_id: str, *, limit: int, before_id: int | None = None
    ) -> list[MessageRecord]:
        """The `limit` newest messages with id < before_id (all if None), oldest first."""
        if limit <= 0:
            return []
        params: dict[str, Any] = {"session_id": session_id, "limit": limit}
        statement = _RECENT_MESSAGES
        if before_id is not None:
            statement, params["before_id"] = _MESSAGES_BEFORE, before_id
        async with self._db.transaction() as session:
            rows = (await session.scalars(statement, params)).all()
        return [row.to_record() for row in reversed(rows)]

    async def restore_reads(
        self, session_id: str, *, limit: int
    ) -> tuple[list[MessageRecord], list[ProgressRecord]]:
        """`recent_messages(session_id, limit=limit)` and `get_progress(session_id)`
        read in one transaction: what every connection's restore reads. On SQLite
        one trip to the connection's thread (`readerai.store.sqlite_statements`)."""
        by_session = {"session_id": session_id}
        # LIMIT 0 reads no message (a negative LIMIT would read them all on SQLite).
        recent = {**by_session, "limit": max(limit, 0)}
        if self._db.is_sqlite:
            messages, positions = await self._select_on_sqlite(
                (_RECENT_MESSAGES, recent), (SESSION_PROGRESS, by_session)
            )
            return (
                [_message_record(m) for m in reversed(messages)],
                [ProgressRecord(**p) for p in positions],
            )
        async with self._db.transaction() as session:
            rows = (await session.scalars(_RECENT_MESSAGES, recent)).all()
            stored = (await session.scalars(SESSION_PROGRESS, by_session)).all()
        return [row.to_record() for row in reversed(rows)], [p.to_record() for p in stored]


def _message_record(columns: dict[str, Any]) -> MessageRecord:
    """A message read by `_select_on_sqlite` as the record `MessageRow.to_record` makes."""
    return MessageRecord(
        **{
            **columns,
            "status": ReplyStatus(columns["status"]),
            "citations": list(columns["citations"]),
        }
    )


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
