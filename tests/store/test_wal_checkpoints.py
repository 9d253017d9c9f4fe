"""SQLite's WAL is checkpointed by a connection of its own: commits only append.

A checkpoint flushes the disk; left to SQLite, it runs inside the commit that takes
the WAL past 1,000 pages, and every question of that group commit waits for the
disk (the acknowledgement tail in docs/performance.md). These tests read the WAL's
shared index (the `-shm` file) to see who copied what.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import time
from pathlib import Path

from structlog.testing import capture_logs

from readerai.protocol import ReplyStatus
from readerai.store import NewMessage
from readerai.store.sql import SqlStore
from readerai.store.wal_checkpoints import WalCheckpointer

#: Offsets in the `-shm` file (SQLite's wal.c): the header's last frame, and how
#: far the WAL has been copied into the database file.
MX_FRAME_OFFSET = 16
N_BACKFILL_OFFSET = 96


def wal_index(path: Path) -> tuple[int, int]:
    """(pages in the WAL, pages of it already copied into the database) (blocking)."""
    head = Path(f"{path}-shm").read_bytes()[:100]
    (frames,) = struct.unpack_from("=I", head, MX_FRAME_OFFSET)
    (backfilled,) = struct.unpack_from("=I", head, N_BACKFILL_OFFSET)
    return frames, backfilled


async def test_a_store_commits_without_checkpointing_and_its_checkpointer_copies_the_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "readerai.db"
    store = SqlStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        autocheckpoint = await store._db.in_sqlite_thread(
            lambda connection: connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert autocheckpoint == 0
        session = await store.create_session(user_id="u1", passage_id=None)
        # About 1,500 pages: past the 1,000 at which a commit would checkpoint.
        text = "x" * 16_000
        for turn in range(100):
            await store.add_messages(
                [NewMessage(session.id, f"t{turn}", "student", text, ReplyStatus.COMPLETED)] * 4
            )
        frames, _ = await asyncio.to_thread(wal_index, path)
        assert frames > 1000
        deadline = time.monotonic() + 10
        while (index := await asyncio.to_thread(wal_index, path))[1] < index[0]:
            assert time.monotonic() < deadline, f"the WAL was not copied back: {index}"
            await asyncio.sleep(0.1)
    finally:
        await store.close()
    assert not store._db._checkpoints or not store._db._checkpoints.running


def write_for(path: Path, seconds: float) -> tuple[int, int]:
    """Commit a page at a time for `seconds`, as the store's writer does (no checkpoints
    of its own); (commits, most pages the WAL held at once). Blocking."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    commits = most = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO pages VALUES (randomblob(3000))")
        connection.execute("COMMIT")
        commits += 1
        if commits % 20 == 0:
            most = max(most, wal_index(path)[0])
            time.sleep(0.01)
    connection.close()
    return commits, most


def make_database(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE pages (data BLOB)")
    connection.close()


async def test_the_wal_stays_short_under_steady_writes(tmp_path: Path) -> None:
    """SQLite rewinds the WAL only when a commit finds it wholly copied back, which a
    steady stream of commits may never allow: the checkpointer rewinds it itself."""
    path = tmp_path / "busy.db"
    await asyncio.to_thread(make_database, path)
    checkpoints = WalCheckpointer(path, busy_timeout=5.0, every=0.05, restart_after=200)
    checkpoints.start()
    try:
        commits, most = await asyncio.to_thread(write_for, path, 3.0)
    finally:
        await checkpoints.stop()
    assert checkpoints.completed > 5
    assert most < commits / 4, (commits, most)


async def test_a_checkpoint_that_fails_is_logged_once_and_tried_again(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    await asyncio.to_thread(path.mkdir)  # not a database: checkpoints fail until it is one
    checkpoints = WalCheckpointer(path, busy_timeout=1.0, every=0.05)
    with capture_logs() as logs:
        checkpoints.start()
        try:
            await asyncio.sleep(0.5)
            assert checkpoints.running
            assert checkpoints.completed == 0
            await asyncio.to_thread(path.rmdir)
            await asyncio.to_thread(make_database, path)
            deadline = time.monotonic() + 5
            while checkpoints.completed == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await checkpoints.stop()
    events = [entry["event"] for entry in logs]
    assert events.count("store.checkpoint_failed") == 1
    assert "store.checkpoint_recovered" in events
    assert not checkpoints.running
