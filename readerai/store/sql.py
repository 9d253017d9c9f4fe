"""`SqlStore`: the `Store` on SQLAlchemy 2 async, for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Invariants:
- every public method is one short transaction and returns frozen records, never
  ORM objects, so nothing outside this module can trigger lazy I/O;
- a database that cannot be reached (refused, timed out, dropped connection, a
  missing SQLite directory that cannot be made) surfaces as `StoreUnavailable`
  naming the database with its password masked; constraint violations surface as
  `Conflict` (taken id) or `NotFound` (missing session);
- no blocking call runs on the event loop: SQLite work happens on aiosqlite's
  thread, file-system work and migrations on anyio worker threads.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import Insert, event, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from readerai.errors import Conflict, NotFound, StoreUnavailable
from readerai.protocol import ReplyStatus
from readerai.store.base import MessageRecord, PassageRecord, ProgressRecord, SessionRecord
from readerai.store.group_commit import GroupCommit
from readerai.store.migrate import (
    async_url,
    connect_args,
    ensure_sqlite_directory,
    upgrade_database,
)
from readerai.store.models import (
    PASSAGE_ID_LENGTH,
    SESSION_ID_LENGTH,
    MessageRow,
    PassageRow,
    ProgressRow,
    SessionRow,
    utc_now,
)

#: Longest a health check may take before the store is reported down.
PING_DEADLINE_SECONDS = 2.0
#: Times a slug id is retried when another writer takes it between look-up and insert.
SLUG_ATTEMPTS = 5
#: Numbered slugs looked up per query when the plain one is taken.
SLUG_BATCH = 20


class SqlStore:
    """The durable store on a SQL database chosen by URL.

    `url` is an SQLAlchemy URL (`sqlite+aiosqlite:///PATH`, `postgresql+asyncpg://…`;
    a bare `sqlite://` or `postgresql://` gets its async driver). `connect_timeout`
    bounds every new connection and the wait for a pooled one.
    """

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._url: URL = async_url(url)
        self._connect_timeout = connect_timeout
        #: The URL as logs and errors show it: the password is never printed.
        self.display_url = self._url.render_as_string(hide_password=True)
        # Made by `start()`, off the event loop: SQLAlchemy resolves a SQLite path
        # with `os.path.abspath`, a file-system call.
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._message_writes: GroupCommit[MessageRecord, MessageRecord] = GroupCommit(
            self._insert_messages
        )

    def _create_engine(self) -> AsyncEngine:
        """Build the engine and pool (no connection yet); blocking, so run in a thread."""
        sqlite = self._url.get_backend_name() == "sqlite"
        engine = create_async_engine(
            self._url,
            connect_args=connect_args(self._url, self._connect_timeout),
            pool_timeout=self._connect_timeout,
            # SQLite has one writer at a time. Concurrent writers on several
            # connections wait in SQLite's busy handler, which sleeps in steps of up
            # to 100 ms; one pooled connection makes them queue on the event loop.
            **({"pool_size": 1, "max_overflow": 0} if sqlite else {}),
            # A pooled PostgreSQL connection may have been cut by a restart or a proxy.
            pool_pre_ping=self._url.get_backend_name() == "postgresql",
        )
        if self._url.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", self._configure_sqlite)
        return engine

    def _configure_sqlite(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # WAL lets readers proceed while a reply is being written; foreign keys are
        # off by default in SQLite; busy_timeout waits for a writer instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is safe against corruption and against a crash of the
        # process; only an OS crash or power loss can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(self._connect_timeout * 1000)}")
        cursor.close()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect within `connect_timeout`, then migrate to the newest schema."""
        try:
            with anyio.fail_after(self._connect_timeout):
                if self._engine is None:
                    self._engine = await anyio.to_thread.run_sync(self._create_engine)
                    self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
                await anyio.to_thread.run_sync(ensure_sqlite_directory, self._url)
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:
            # Whatever stops the first connection (refused, timeout, bad credentials,
            # unwritable path) means the same to the caller: no database.
            raise self._unavailable(exc) from exc
        try:
            await upgrade_database(self._url.render_as_string(hide_password=False))
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if not _is_unavailable(exc):
                raise
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        """Close every pooled connection (a later call reconnects)."""
        await self._message_writes.drain()
        if self._engine is not None:
            await self._engine.dispose()

    async def ping(self) -> bool:
        """True when `SELECT 1` answers within two seconds; never raises."""
        if self._engine is None:
            return False
        try:
            with anyio.fail_after(PING_DEADLINE_SECONDS):
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - a health check reports failure, it does not raise
            return False
        return True

    # ------------------------------------------------------------------ sessions

    async def create_session(
        self, *, session_id: str | None = None, passage_id: str | None = None
    ) -> SessionRecord:
        """Create a session (a new UUID4 hex id unless given); Conflict if it exists."""
        session_id = session_id or uuid.uuid4().hex
        _check_length("session id", session_id, SESSION_ID_LENGTH)
        if passage_id is not None:
            _check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
        now = utc_now()
        row = SessionRow(id=session_id, passage_id=passage_id, created_at=now, updated_at=now)
        async with self._transaction() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"session {session_id!r} already exists") from exc
            return row.to_record()

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session with this id, or None."""
        async with self._transaction() as session:
            row = await session.get(SessionRow, session_id)
            return None if row is None else row.to_record()

    async def set_session_passage(self, session_id: str, passage_id: str | None) -> None:
        """Point the session at a passage (or none); NotFound if there is no session."""
        if passage_id is not None:
            _check_length("passage id", passage_id, PASSAGE_ID_LENGTH)
        async with self._transaction() as session:
            await self._touch_session(session, session_id, passage_id=passage_id)

    async def _touch_session(self, session: AsyncSession, session_id: str, **values: Any) -> None:
        statement = (
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(updated_at=utc_now(), **values)
            .returning(SessionRow.id)
        )
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
        pending = MessageRecord(
            id=0,
            session_id=session_id,
            turn_id=turn_id,
            role=role,
            text=text,
            status=status,
            citations=list(citations or []),
            created_at=utc_now(),
        )
        return await self._message_writes.submit(pending)

    async def _insert_messages(self, batch: list[MessageRecord]) -> list[MessageRecord | Exception]:
        """Insert a batch of messages in one transaction (see `GroupCommit`).

        Core statements, not the ORM: this is the hot path of every turn. The session
        update is also the existence check; on PostgreSQL the row locks it takes
        serialise a session's inserts, so no reader sees message N+1 committed while
        N is pending.
        """
        session_ids = sorted({m.session_id for m in batch})
        async with self._connection() as connection:
            touched = await connection.execute(
                update(SessionRow)
                .where(SessionRow.id.in_(session_ids))
                .values(updated_at=batch[-1].created_at)
                .returning(SessionRow.id)
            )
            existing = set(touched.scalars())
            rows = [m for m in batch if m.session_id in existing]
            ids: list[int] = []
            if rows:
                inserted = await connection.execute(
                    insert(MessageRow).returning(MessageRow.id, sort_by_parameter_order=True),
                    [
                        {
                            "session_id": m.session_id,
                            "turn_id": m.turn_id,
                            "role": m.role,
                            "text": m.text,
                            "status": m.status.value,
                            "citations": m.citations,
                            "created_at": m.created_at,
                        }
                        for m in rows
                    ],
                )
                ids = list(inserted.scalars())
        new_ids = iter(ids)
        return [
            dataclasses.replace(m, id=next(new_ids))
            if m.session_id in existing
            else NotFound(f"session {m.session_id!r} does not exist")
            for m in batch
        ]

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
            .values(text=text, status=status.value, citations=list(citations or []))
            .returning(MessageRow.id)
        )
        async with self._transaction() as session:
            if (await session.execute(statement)).scalar_one_or_none() is None:
                raise NotFound(f"message {message_id} does not exist")

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
        async with self._transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in reversed(rows)]

    # ------------------------------------------------------------------ progress

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
        async with self._transaction() as session:
            # One statement, so concurrent writers of the same key cannot both insert.
            if self._url.get_backend_name() == "postgresql":
                pg = postgresql.insert(ProgressRow).values(values)
                statement: Insert = pg.on_conflict_do_update(
                    index_elements=keys,
                    set_={"position": pg.excluded.position, "updated_at": pg.excluded.updated_at},
                )
            else:
                lite = sqlite.insert(ProgressRow).values(values)
                statement = lite.on_conflict_do_update(
                    index_elements=keys,
                    set_={
                        "position": lite.excluded.position,
                        "updated_at": lite.excluded.updated_at,
                    },
                )
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
        async with self._transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in rows]

    # ------------------------------------------------------------------ passages

    async def list_passages(self) -> list[PassageRecord]:
        """Every passage, in the order they were added."""
        statement = select(PassageRow).order_by(PassageRow.created_at, PassageRow.id)
        async with self._transaction() as session:
            rows = (await session.scalars(statement)).all()
        return [row.to_record() for row in rows]

    async def get_passage(self, passage_id: str) -> PassageRecord | None:
        """The passage with this id, or None."""
        async with self._transaction() as session:
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
        async with self._transaction() as session:
            for batch in _numbered_slugs(base):
                query = select(PassageRow.id).where(PassageRow.id.in_(batch))
                taken = set(await session.scalars(query))
                free = [candidate for candidate in batch if candidate not in taken]
                if free:
                    return free[0]
        raise AssertionError("_numbered_slugs is endless")  # pragma: no cover

    async def _insert_passage(self, row: PassageRow) -> PassageRecord:
        row.created_at = utc_now()
        async with self._transaction() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise Conflict(f"passage {row.id!r} already exists") from exc
            return row.to_record()

    # ------------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """One unit of work on a bare connection (Core statements), mapped like below."""
        if self._engine is None:
            raise StoreUnavailable(f"database {self.display_url} is not connected yet")
        try:
            async with self._engine.begin() as connection:
                yield connection
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if not _is_unavailable(exc):
                raise
            raise self._unavailable(exc) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error.

        Failing to get a connection at all is always `StoreUnavailable`; afterwards
        only errors that mean the database went away are, so that constraint
        violations can still be told apart by the caller.
        """
        if self._sessions is None:
            raise StoreUnavailable(f"database {self.display_url} is not connected yet")
        try:
            async with self._sessions.begin() as session:
                try:
                    await session.connection()
                except Exception as exc:
                    raise self._unavailable(exc) from exc
                yield session
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if not _is_unavailable(exc):
                raise
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        if isinstance(exc, TimeoutError) and not str(exc):
            cause = f"no answer within {self._connect_timeout:g} s"
        else:
            inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            cause = f"{type(inner).__name__}: {inner}"
        # One line: SQLAlchemy appends a "Background on this error" paragraph.
        cause = " ".join(cause.split("(Background on this error")[0].split())
        return StoreUnavailable(f"database {self.display_url} is unavailable: {cause}")


def _is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (rather than a bad statement)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, PoolTimeoutError | OSError)


def slugify(title: str) -> str:
    """A passage id from a title: lowercase a-z, 0-9 and '-', at most 64 characters."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:PASSAGE_ID_LENGTH].rstrip("-") or "passage"


def _numbered_slugs(base: str) -> Iterator[list[str]]:
    """`base`, `base-2`, `base-3`, … in batches, each cut to fit the id length."""
    numbers = itertools.count(1)
    while True:
        batch = []
        for number in itertools.islice(numbers, SLUG_BATCH):
            suffix = "" if number == 1 else f"-{number}"
            batch.append(base[: PASSAGE_ID_LENGTH - len(suffix)].rstrip("-") + suffix)
        yield batch


def _check_length(what: str, value: str, limit: int) -> None:
    # Checked here so that SQLite (which ignores VARCHAR lengths) and PostgreSQL agree.
    if not value or len(value) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters, got {len(value)}")
