"""aiosqlite connections that SQLAlchemy can invalidate while a task is being cancelled.

SQLAlchemy (2.1) drops an invalidated aiosqlite connection in two steps: a graceful
`close()` in a shielded task and, if the caller is cancelled meanwhile, a forced
`stop()`. aiosqlite (0.22) `close()` ends with a `stop()` of its own and waits for it.
Both stops queue a "close and stop" for the connection's thread; the thread leaves
after the first, so the second is never answered and the shielded `close()` waits
for ever: a task that no cancellation can finish, so the event loop's shutdown hangs
(seen when a store failing on a disk error was started beside others that were then
cancelled). Here a connection stops once: a second `stop()` gets the first one's
future, which the thread does answer.

`StopOnceConnection` is handed to SQLAlchemy as the `async_creator_fn` connect
argument (see `readerai.store.migrate.connect_args`), so every pooled and migrating
connection is one of these.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import Any

import aiosqlite

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
