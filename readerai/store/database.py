"""`Database`: the engine, its pool, and units of work whose failures are mapped.

Invariants:
- a database that cannot be reached (refused, timed out, dropped connection, a
  missing SQLite directory that cannot be made) surfaces as `StoreUnavailable`
  naming the database with its password masked; every other error (a constraint
  violation, a bad statement) passes through unchanged for the caller to map;
- failing to get a connection at all is always `StoreUnavailable`;
- a pooled PostgreSQL connection is checked before it is handed out, so one cut by a
  server restart is replaced rather than failing the next unit of work;
- no blocking call runs on the event loop: the engine is built (SQLite paths are
  resolved) and SQLite directories are made on anyio worker threads;
- a SQLite file that cannot be written (its disk turned read-only, failed or filled
  up) is `StoreUnavailable` too, and every pooled SQLite connection is dropped, so
  the next unit of work opens the file afresh: a disk that an operator remounts or
  replaces serves again without a restart. Until a write succeeds again `ping`
  answers False (reads alone would still succeed), so the node reports not ready;
- a SQLite file is checkpointed by its own connection and thread while connected
  (`readerai.store.wal_checkpoints`): a commit never waits for the disk's flush of
  a checkpoint;
- SQLite has one pooled connection and its units of work take turns on it in arrival
  order (`_turn`). The hot path's units (`in_sqlite_thread`) keep it checked out
  between them: a checkout and check-in through SQLAlchemy's pool cost about 0.1 ms
  of the loop's CPU per unit, more than the trip to the connection's thread itself
  (`bench/sqlite_trip.py`). A unit through SQLAlchemy finds it back in the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Dialect, ExceptionContext
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from readerai.errors import StoreUnavailable
from readerai.store.migrate import connect_args, ensure_sqlite_directory, sqlite_file
from readerai.store.sqlite_driver import primary_code
from readerai.store.wal_checkpoints import WAL_SIZE_LIMIT, WalCheckpointer

T = TypeVar("T")

#: Longest a health check may take before the database is reported down.
PING_DEADLINE_SECONDS = 2.0
#: SQLite primary result codes that mean the file cannot be written, whatever the
#: statement: SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
SQLITE_DISK_ERRORS = frozenset({8, 10, 13, 14})


class Database:
    """One database reached through an async engine (made by `connect`)."""

    def __init__(self, url: URL, *, connect_timeout: float) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        #: The URL as logs and errors show it: the password is never printed.
        self.display_url = url.render_as_string(hide_password=True)
        self.is_postgresql = url.get_backend_name() == "postgresql"
        self.is_sqlite = url.get_backend_name() == "sqlite"
        self._engine: AsyncEngine | None = None
        #: SQLite: units of work take turns (see `_turn`); `in_sqlite_thread` keeps
        #: the pooled connection here between its units.
        self._units = asyncio.Lock()
        self._kept: PoolProxiedConnection | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        #: Set when a SQLite write failed for want of a writable disk; cleared by a
        #: `ping` whose write succeeds.
        self._disk_failing = False
        path = sqlite_file(url)
        self._checkpoints = (
            None if path is None else WalCheckpointer(path, busy_timeout=connect_timeout)
        )

    @property
    def dialect(self) -> Dialect:
        """The engine's SQL dialect (after `connect`)."""
        if self._engine is None:
            raise self._not_connected()
        return self._engine.dialect

    @property
    def connected(self) -> bool:
        """Whether `connect` has succeeded once (the pool may still be empty)."""
        return self._engine is not None

    async def connect(self) -> None:
        """Build the engine if needed and run `SELECT 1` within `connect_timeout`."""
        try:
            with anyio.fail_after(self.connect_timeout):
                if self._engine is None:
                    # Off the loop: SQLAlchemy resolves a SQLite path with `os.path.abspath`.
                    self._engine = await anyio.to_thread.run_sync(self._create_engine)
                    self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
                await anyio.to_thread.run_sync(ensure_sqlite_directory, self.url)
                if self._checkpoints is not None:
                    # Before the first connection: it is made without checkpoints of its own.
                    self._checkpoints.start()
                async with self._turn(), self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:
            # Whatever stops the first connection (refused, timeout, bad credentials,
            # unwritable path) means the same to the caller: no database.
            await self.dispose()
            raise self.unavailable(exc) from exc

    async def dispose(self) -> None:
        """Close every pooled connection and stop checkpointing (a later unit of work
        reconnects; its connections checkpoint for themselves)."""
        if self._checkpoints is not None:
            await self._checkpoints.stop()
        if self._engine is not None:
            with contextlib.suppress(StoreUnavailable):
                # After the unit in flight, if any; a unit that never ends leaves its
                # connection to it.
                async with self._turn():
                    pass
            await self._engine.dispose()

    async def ping(self) -> bool:
        """True when `SELECT 1` answers within two seconds; never raises.

        After a SQLite disk error the check is a write instead (the schema version
        rewritten unchanged), since a read-only disk still answers reads.
        """
        if self._engine is None:
            return False
        probe_write = self._disk_failing
        try:
            with anyio.fail_after(PING_DEADLINE_SECONDS):
                async with self._turn(), self._engine.connect() as connection:
                    if probe_write:
                        version = (await connection.execute(text("PRAGMA user_version"))).scalar()
                        await connection.execute(text(f"PRAGMA user_version = {int(version or 0)}"))
                        await connection.commit()
                    else:
                        await connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - a health check reports failure, it does not raise
            return False
        if probe_write:
            self._disk_failing = False
        return True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """One unit of work on a bare connection (Core statements); commits on success."""
        try:
            async with self._turn():
                connection = await self._connect()
                try:
                    async with connection.begin():
                        yield connection
                finally:
                    await connection.close()
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if not is_unavailable(exc):
                raise
            raise self.unavailable(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work in an ORM session: commits on success, rolls back on error."""
        if self._sessions is None:
            raise self._not_connected()
        try:
            async with self._turn(), self._sessions.begin() as session:
                try:
                    await session.connection()
                except Exception as exc:
                    raise self.unavailable(exc) from exc
                yield session
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if not is_unavailable(exc):
                raise
            raise self.unavailable(exc) from exc

    async def in_sqlite_thread(
        self, work: Callable[[sqlite3.Connection], T], *, write: bool = True
    ) -> T:
        """Run `work` in one transaction on the SQLite connection that writes, on its
        own thread: one trip from the event loop and back for the whole unit of work.

        For the hot path of every turn. Through SQLAlchemy on aiosqlite each statement
        costs about four trips between the loop and the connection's thread (cursor,
        execute, fetch, close), and a unit two more (commit, the pool's reset); each
        trip waits for the loop and for a core, so under load an acknowledgement
        waited on twelve. Here `BEGIN IMMEDIATE`, `work` and `COMMIT` (or `ROLLBACK`
        when it raises) run together on the thread; `work` gets the `sqlite3`
        connection and must not touch the event loop.

        A `sqlite3` error is raised as SQLAlchemy's (`DBAPIError`), mapped like any
        other: a disk error is `StoreUnavailable` and drops the connection, as in
        `_on_sqlite_error`.

        aiosqlite has no public call for "run this on the connection's thread"; its
        `_execute` and `_conn` are used here and only here. With `write=False` the
        transaction is a plain `BEGIN`: reads see one snapshot and take no write lock.
        """
        async with self._turn(pooled=False):
            # The pooled DBAPI connection itself, not a SQLAlchemy `Connection` around
            # it, kept from the last such unit when no unit through SQLAlchemy came
            # between (`bench/sqlite_trip.py`).
            raw, self._kept = self._kept or await self._raw_connection(), None
            result = await self._run_in_sqlite_thread(raw, work, write)
            self._kept = raw
            return result

    async def _run_in_sqlite_thread(
        self, raw: PoolProxiedConnection, work: Callable[[sqlite3.Connection], T], write: bool
    ) -> T:
        """`in_sqlite_thread` on `raw`; a connection that failed is given back to the
        pool (invalidated, after a disk error) and the error raised."""
        try:
            driver: Any = raw.driver_connection
            try:
                result: T = await driver._execute(_in_transaction, work, driver._conn, write)
            except sqlite3.Error as exc:
                disk = _is_disk_error(exc)
                if disk:
                    self._disk_failing = True
                    # Closing an aiosqlite connection awaits its thread: in the greenlet.
                    await greenlet_spawn(raw.invalidate, exc)
                error = DBAPIError.instance(
                    "(in_sqlite_thread)",
                    None,
                    exc,
                    sqlite3.Error,
                    connection_invalidated=disk,
                    dialect=self.dialect,
                )
                if is_unavailable(error):
                    raise self.unavailable(error) from exc
                raise error from exc
            return result
        except BaseException:
            # No statement went through SQLAlchemy, so it holds no transaction to end,
            # and the pool does not reset it on return (see `_create_engine`).
            await greenlet_spawn(raw.close)
            raise

    @asynccontextmanager
    async def _turn(self, *, pooled: bool = True) -> AsyncIterator[None]:
        """On SQLite, wait for this unit of work's turn on the one connection (in
        arrival order, for at most `connect_timeout`, as the pool's own wait was);
        a `pooled` unit (through SQLAlchemy) finds the connection back in the pool.
        Elsewhere, nothing: PostgreSQL's units run side by side."""
        if not self.is_sqlite:
            yield
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._units.acquire()
        except TimeoutError:
            busy = TimeoutError(f"the connection was busy for {self.connect_timeout:g} s")
            raise self.unavailable(busy) from None
        try:
            if pooled and self._kept is not None:
                kept, self._kept = self._kept, None
                await greenlet_spawn(kept.close)
            yield
        finally:
            self._units.release()

    async def _raw_connection(self) -> PoolProxiedConnection:
        """A pooled DBAPI connection; `StoreUnavailable` if there is none to be had."""
        return await self._from_pool(lambda engine: engine.raw_connection())

    async def _connect(self) -> AsyncConnection:
        """A pooled connection; `StoreUnavailable` if there is none to be had."""
        return await self._from_pool(lambda engine: engine.connect())

    async def _from_pool(self, take: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        if self._engine is None:
            raise self._not_connected()
        try:
            return await take(self._engine)
        except Exception as exc:
            raise self.unavailable(exc) from exc

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """`StoreUnavailable` naming this database and, on one line, what went wrong."""
        if isinstance(exc, TimeoutError) and not str(exc):
            cause = f"no answer within {self.connect_timeout:g} s"
        else:
            inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            cause = f"{type(inner).__name__}: {inner}"
        # One line: SQLAlchemy appends a "Background on this error" paragraph.
        cause = " ".join(cause.split("(Background on this error")[0].split())
        return StoreUnavailable(f"database {self.display_url} is unavailable: {cause}")

    def _not_connected(self) -> StoreUnavailable:
        return StoreUnavailable(f"database {self.display_url} is not connected yet")

    def _create_engine(self) -> AsyncEngine:
        """Build the engine and pool (no connection yet); blocking, so run in a thread."""
        sqlite = self.is_sqlite
        engine = create_async_engine(
            self.url,
            connect_args=connect_args(self.url, self.connect_timeout),
            pool_timeout=self.connect_timeout,
            # SQLite has one writer at a time. Concurrent writers on several
            # connections wait in SQLite's busy handler, which sleeps in steps of up
            # to 100 ms; one pooled connection makes them queue on the event loop.
            **({"pool_size": 1, "max_overflow": 0} if sqlite else {}),
            # A pooled PostgreSQL connection may have been cut by a restart or a proxy.
            pool_pre_ping=self.is_postgresql,
            # SQLite's writer: a connection comes back with no transaction open (every
            # unit of work commits or rolls back), so the pool's own rollback would only
            # cost a trip to aiosqlite's thread per unit (see `in_sqlite_thread`).
            **({"pool_reset_on_return": None} if sqlite else {}),
        )
        if sqlite:
            event.listen(engine.sync_engine, "connect", self._configure_sqlite)
            event.listen(engine.sync_engine, "handle_error", self._on_sqlite_error)
        return engine

    def _on_sqlite_error(self, context: ExceptionContext) -> None:
        # A connection that met a disk error keeps its file descriptors on that
        # disk (a remounted or replaced one is a new file system): treating the
        # error as a disconnect makes SQLAlchemy drop it and every pooled sibling.
        if _is_disk_error(context.original_exception):
            self._disk_failing = True
            context.is_disconnect = True

    def _configure_sqlite(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Foreign keys are off by default in SQLite. (WAL mode, which lets readers
        # proceed while a reply is being written, and the busy timeout are set as the
        # connection is made: see `readerai.store.sqlite_driver.connect`.)
        cursor = dbapi_connection.cursor()
        # In WAL mode NORMAL is safe against corruption and against a crash of the
        # process; only an OS crash or power loss can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if self._checkpoints is not None and self._checkpoints.running:
            # The checkpointer's thread copies the WAL back; a commit here only appends.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.close()


def _is_disk_error(exc: BaseException) -> bool:
    """Whether a `sqlite3` error means the file cannot be written (`SQLITE_DISK_ERRORS`)."""
    return primary_code(exc) in SQLITE_DISK_ERRORS


def _in_transaction(
    work: Callable[[sqlite3.Connection], T], connection: sqlite3.Connection, write: bool = True
) -> T:
    """`work(connection)` between `BEGIN IMMEDIATE` (`BEGIN` unless `write`) and
    `COMMIT` (`ROLLBACK` if it raises)."""
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = work(connection)
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
    return result


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (rather than a bad statement)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, PoolTimeoutError | OSError)
