"""aiosqlite connections for the store: in WAL mode, and safe to drop during a cancellation.

Every pooled and migrating SQLite connection is made by `connect`, handed to
SQLAlchemy as the `async_creator_fn` connect argument (see
`readerai.store.migrate.connect_args`).

WAL mode. Turning a database into WAL mode takes its write lock from inside a read
transaction, and SQLite answers "database is locked" at once there, without waiting
out the busy timeout (waiting could deadlock two connections that both read). So
connections opened together on a new file (nodes or stores starting at once, or one
opened while another migrates) fail now and then: 15 of 200 tries with three threads
on this machine. `connect` retries, with short growing pauses, until the busy
timeout has passed. The mode is stored in the file, so later connections find it set.

Dropping a connection. SQLAlchemy (2.1) drops an invalidated aiosqlite connection in
two steps: a graceful `close()` in a shielded task and, if the caller is cancelled
meanwhile, a forced `stop()`. aiosqlite (0.22) `close()` ends with a `stop()` of its
own and waits for it. Both stops queue a "close and stop" for the connection's thread;
the thread leaves after the first, so the second is never answered and the shielded
`close()` waits for ever: a task that no cancellation can finish, so the event loop's
shutdown hangs (seen when a store failing on a disk error was started beside others
that were then cancelled). Here a connection stops once: a second `stop()` gets the
first one's future, which the thread does answer.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import Any

import aiosqlite

#: SQLite's primary result code for "database is locked" (extended codes add high bits).
SQLITE_BUSY = 5
#: First and longest pause (seconds) between attempts to turn on WAL mode.
WAL_RETRY_FIRST_PAUSE = 0.001
WAL_RETRY_LONGEST_PAUSE = 0.05
#: aiosqlite's default number of rows fetched per trip when iterating a cursor.
ITER_CHUNK_SIZE = 64
#: `StopOnceConnection._stopping` before the first `stop()`.
_NOT_STOPPED: Any = object()


class StopOnceConnection(aiosqlite.Connection):
    """An aiosqlite connection whose background thread is stopped at most once.

    Called as `aiosqlite.connect` is, with SQLAlchemy's arguments for `sqlite3.connect`.
    """

    def __init__(self, database: str, **kwargs: Any) -> None:
        super().__init__(functools.partial(sqlite3.connect, database, **kwargs), ITER_CHUNK_SIZE)
        self._stopping: asyncio.Future[Any] | None = _NOT_STOPPED
        # As SQLAlchemy does for the connections it makes itself: a connection left
        # open must not keep the process from exiting.
        self._thread.daemon = True

    def stop(self) -> asyncio.Future[Any] | None:
        """Queue the thread's stop once; later calls return the same future."""
        if self._stopping is _NOT_STOPPED:
            self._stopping = super().stop()
        return self._stopping


async def connect(database: str, **kwargs: Any) -> StopOnceConnection:
    """A connection to `database` in WAL mode (`sqlite3.connect`'s arguments).

    Its `timeout` (SQLite's busy timeout, 5 s unless given) is also how long to keep
    trying to turn on WAL mode while other connections hold the file's locks.
    """
    busy_timeout = float(kwargs.setdefault("timeout", 5.0))
    connection = StopOnceConnection(database, **kwargs)
    await connection  # starts its thread and opens the file
    try:
        await _enter_wal_mode(connection, busy_timeout)
    except BaseException:
        await connection.close()
        raise
    return connection


async def _enter_wal_mode(connection: aiosqlite.Connection, give_up_after: float) -> None:
    """`PRAGMA journal_mode=WAL`, again after a pause while the file is locked."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    pause = WAL_RETRY_FIRST_PAUSE
    while True:
        try:
            async with connection.execute("PRAGMA journal_mode=WAL"):
                return
        except sqlite3.OperationalError as exc:
            if primary_code(exc) != SQLITE_BUSY or loop.time() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, WAL_RETRY_LONGEST_PAUSE)


def primary_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of a `sqlite3` error (extended codes add high
    bits), or None for anything else."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF
