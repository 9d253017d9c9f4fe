"""SQLite connections: opened together they all reach WAL mode, and dropped during a
cancellation they leave nothing behind.

A task that never ends keeps the event loop from shutting down: this once hung a
whole test run after a store failed to start on a full disk beside others that were
then cancelled (see `readerai.store.sqlite_driver`).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from readerai.store import sqlite_driver
from readerai.store.migrate import async_url, connect_args
from readerai.store.sqlite_driver import StopOnceConnection


def _other_tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


@pytest.mark.parametrize("turns_before_cancel", [0, 1, 2, 5])
async def test_a_connection_invalidated_while_cancelled_leaves_no_task_behind(
    tmp_path: Path, turns_before_cancel: int
) -> None:
    url = async_url(f"sqlite:///{tmp_path / 'cancelled.db'}")
    # Off the loop: SQLAlchemy resolves the file's path when it builds the engine.
    engine = await asyncio.to_thread(
        functools.partial(
            create_async_engine,
            url,
            pool_size=1,
            max_overflow=0,
            connect_args=connect_args(url, 5.0),
        )
    )
    try:
        connection = await engine.connect()
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, StopOnceConnection)
        await connection.execute(text("SELECT 1"))
        before = _other_tasks()

        invalidating = asyncio.create_task(connection.invalidate())
        for _ in range(turns_before_cancel):
            await asyncio.sleep(0)
        invalidating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await invalidating

        # Whatever closing went on in the background ends.
        leftover = _other_tasks() - before
        if leftover:
            _, pending = await asyncio.wait(leftover, timeout=5)
            assert not pending, f"tasks that never end: {pending}"
        await connection.close()

        # The pool gives out a working connection in its place.
        async with engine.connect() as fresh:
            assert (await fresh.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await engine.dispose()


async def _open_together(path: Path, count: int, busy_timeout: float) -> list[str]:
    """Open `count` connections on `path` at once; each one's journal mode."""
    connections = await asyncio.gather(
        *(sqlite_driver.connect(str(path), timeout=busy_timeout) for _ in range(count)),
        return_exceptions=True,
    )
    modes: list[str] = []
    for each in connections:
        if isinstance(each, BaseException):
            modes.append(f"{type(each).__name__}: {each}")
            continue
        async with each.execute("PRAGMA journal_mode") as cursor:
            row = await cursor.fetchone()
        modes.append(str(row[0]) if row else "?")
        await each.close()
    return modes


async def test_connections_opened_together_on_a_new_file_all_enter_wal_mode(
    tmp_path: Path,
) -> None:
    # Turning a file into WAL mode meets "database is locked" at once, busy timeout or
    # not, when another connection does the same: without retries, several of these
    # files would see a failed connection.
    for attempt in range(40):
        modes = await _open_together(tmp_path / f"new-{attempt}.db", count=6, busy_timeout=5.0)
        assert modes == ["wal"] * 6, f"file {attempt}: {modes}"


async def test_a_file_locked_past_the_busy_timeout_fails_the_connection_cleanly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    holder = await aiosqlite.connect(path, isolation_level=None)
    try:
        await holder.execute("BEGIN EXCLUSIVE")
        threads_before = threading.active_count()
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await sqlite_driver.connect(str(path), timeout=0.3)
        waited = time.monotonic() - started
        assert 0.25 <= waited < 3, f"gave up after {waited:.2f} s with a 0.3 s busy timeout"
        # The failed connection's thread has gone.
        for _ in range(100):
            if threading.active_count() <= threads_before:
                break
            await asyncio.sleep(0.01)
        assert threading.active_count() <= threads_before
    finally:
        await holder.close()
    # Once the lock is released the file opens, in WAL mode.
    assert await _open_together(path, count=1, busy_timeout=1.0) == ["wal"]
