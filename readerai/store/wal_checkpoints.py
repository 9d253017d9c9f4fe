"""`WalCheckpointer`: SQLite's WAL copied back into the database file off the write path.

In WAL mode a commit appends pages to the `-wal` file; with `synchronous=NORMAL` it
does not wait for the disk. Now and then the pages must be copied into the database
file and both files flushed to disk (a checkpoint). Left to SQLite, the connection
whose commit takes the WAL past 1,000 pages does that inside its commit, and its
`fsync` calls wait for the disk: every question acknowledged in that group commit
waited too. On this project's machines that was the whole latency tail of a turn
(`readerai bench questions --sessions 200 --rate 200`: acknowledgement p99 70 ms and
max 275 ms with SQLite's own checkpoints, 6.4 ms and 18 ms without; see
docs/performance.md).

So the writing connections turn automatic checkpoints off while a checkpointer runs
(`Database` does that), and this class checkpoints from a connection of its own, on
its own thread, once a second:

- `PASSIVE` first: it copies what is committed without taking any lock that writers
  or readers wait for, so commits go on meanwhile;
- under sustained writes the WAL can never be rewound (a commit always lands during
  the checkpoint), so once it holds more than `RESTART_AFTER_FRAMES` pages a
  `RESTART` follows: it waits for the current writer, holds new ones back while it
  copies the few pages the passive pass left, and makes the next commit start the
  WAL from its beginning. Writers wait for that short pass only, and only then.

A failing checkpoint (a read-only or full disk) is logged once per run of failures
and tried again on the next tick with a fresh connection; the store's own writes
report the disk error to their callers. Nothing is lost by a checkpoint that does
not happen: committed pages stay in the WAL, which SQLite reads and recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import structlog

from readerai.store.sqlite_driver import StopOnceConnection, connect

log = structlog.get_logger(__name__)

#: Seconds between checkpoints.
CHECKPOINT_EVERY_SECONDS = 1.0
#: WAL pages (4 KiB each by default) past which a checkpoint also rewinds the WAL.
RESTART_AFTER_FRAMES = 4096
#: Bytes the WAL file is cut back to when it is rewound (SQLite's `journal_size_limit`).
WAL_SIZE_LIMIT = 16 * 1024 * 1024


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite file at `path` every `every` seconds, and
    rewinds it past `restart_after` pages.

    Owns one task, started by `start` and cancelled and awaited by `stop`; the
    task never ends on an error (each is logged), only when stopped.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        every: float = CHECKPOINT_EVERY_SECONDS,
        restart_after: int = RESTART_AFTER_FRAMES,
    ) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._every = every
        self._restart_after = restart_after
        self._task: asyncio.Task[None] | None = None
        self._connection: StopOnceConnection | None = None
        self._failing = False
        #: Checkpoints that ran to the end (tests wait on it).
        self.completed = 0

    @property
    def running(self) -> bool:
        """Whether the checkpoint task is running."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start checkpointing (no-op if already running)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"store.wal_checkpoints.{self._path.name}"
            )

    async def stop(self) -> None:
        """Stop checkpointing and close the connection; SQLite checkpoints when the
        last connection to the file closes."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        await self._close()

    async def checkpoint(self) -> None:
        """One checkpoint now: passive, and a rewind of the WAL if it has grown long."""
        connection = await self._open()
        busy, frames = await self._pragma(connection, "PASSIVE")
        if not busy and frames > self._restart_after:
            await self._pragma(connection, "RESTART")
        self.completed += 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.checkpoint()
            except (sqlite3.Error, OSError) as exc:
                if not self._failing:
                    log.warning("store.checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
                self._failing = True
                await self._close()  # a disk that comes back is opened afresh
            else:
                if self._failing:
                    log.info("store.checkpoint_recovered")
                self._failing = False

    async def _open(self) -> StopOnceConnection:
        if self._connection is None:
            self._connection = await connect(str(self._path), timeout=self._busy_timeout)
        return self._connection

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                await connection.close()

    @staticmethod
    async def _pragma(connection: StopOnceConnection, mode: str) -> tuple[int, int]:
        """`PRAGMA wal_checkpoint(mode)`: (busy, pages in the WAL)."""
        async with connection.execute(f"PRAGMA wal_checkpoint({mode})") as cursor:
            row = await cursor.fetchone()
        if row is None:  # pragma: no cover - the pragma always answers one row
            return (0, 0)
        return int(row[0]), int(row[1])
