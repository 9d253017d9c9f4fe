"""SQLite connections dropped during a cancellation leave nothing behind.

A task that never ends keeps the event loop from shutting down: this once hung a
whole test run after a store failed to start on a full disk beside others that were
then cancelled (see `readerai.store.sqlite_driver`).
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

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
