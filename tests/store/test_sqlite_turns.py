"""SQLite's one connection: units of work take turns on it, in arrival order.

The hot path's units (`Database.in_sqlite_thread`) keep the connection checked out
between them; a unit through SQLAlchemy finds it back in the pool. Mixed freely,
every unit runs, none waits out the pool, and the connection is closed with the
store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from readerai.errors import StoreUnavailable
from readerai.store.sql import SqlStore

#: Short, so that a unit left waiting for the connection fails the test quickly.
CONNECT_TIMEOUT = 2.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    sql_store = SqlStore(
        f"sqlite+aiosqlite:///{tmp_path / 'readerai.db'}", connect_timeout=CONNECT_TIMEOUT
    )
    await sql_store.start()
    await sql_store._db.in_sqlite_thread(
        lambda c: c.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, unit INTEGER)")
    )
    try:
        yield sql_store
    finally:
        await sql_store.close()


def checked_out(store: SqlStore) -> int:
    """Connections the pool has handed out and not had back."""
    engine = store._db._engine
    assert engine is not None
    count: int = engine.pool.checkedout()  # type: ignore[attr-defined]
    return count


async def test_hot_units_keep_the_connection_and_sqlalchemy_units_get_it_back(
    store: SqlStore,
) -> None:
    db = store._db
    await db.in_sqlite_thread(lambda c: c.execute("INSERT INTO turns (unit) VALUES (0)"))
    assert checked_out(store) == 1, "the hot path gave its connection back to the pool"
    async with db.connection() as connection:
        await connection.execute(text("INSERT INTO turns (unit) VALUES (1)"))
    assert checked_out(store) == 0
    await db.in_sqlite_thread(lambda c: c.execute("INSERT INTO turns (unit) VALUES (2)"))
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO turns (unit) VALUES (3)"))
    assert await db.ping()
    units = await db.in_sqlite_thread(
        lambda c: [row[0] for row in c.execute("SELECT unit FROM turns ORDER BY id")],
        write=False,
    )
    assert units == [0, 1, 2, 3]


async def test_mixed_units_all_run_in_arrival_order(store: SqlStore) -> None:
    db = store._db

    async def hot(unit: int) -> None:
        await db.in_sqlite_thread(
            lambda c: c.execute("INSERT INTO turns (unit) VALUES (?)", (unit,))
        )

    async def through_sqlalchemy(unit: int) -> None:
        async with db.connection() as connection:
            await connection.execute(text("INSERT INTO turns (unit) VALUES (:u)"), {"u": unit})

    async def orm(unit: int) -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO turns (unit) VALUES (:u)"), {"u": unit})

    kinds = (hot, through_sqlalchemy, hot, hot, orm)
    await asyncio.gather(*(kinds[i % len(kinds)](i) for i in range(200)))
    stored = await db.in_sqlite_thread(
        lambda c: [row[0] for row in c.execute("SELECT unit FROM turns ORDER BY id")]
    )
    assert stored == list(range(200))
    assert checked_out(store) <= 1


async def test_a_unit_that_cannot_get_its_turn_is_store_unavailable(store: SqlStore) -> None:
    db = store._db
    async with db.connection():
        with pytest.raises(StoreUnavailable, match="is unavailable: TimeoutError"):
            await db.in_sqlite_thread(lambda c: c.execute("SELECT 1"))
    # The turn came back: the next unit runs.
    assert await db.in_sqlite_thread(lambda c: c.execute("SELECT 7").fetchone()[0]) == 7


async def test_a_failed_hot_unit_rolls_back_and_the_next_one_runs(store: SqlStore) -> None:
    db = store._db

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO turns (unit) VALUES (1)")
        connection.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(Exception, match="no such table"):
        await db.in_sqlite_thread(broken)
    await db.in_sqlite_thread(lambda c: c.execute("INSERT INTO turns (unit) VALUES (2)"))
    units = await db.in_sqlite_thread(
        lambda c: [row[0] for row in c.execute("SELECT unit FROM turns")], write=False
    )
    assert units == [2]


async def test_closing_the_store_closes_the_kept_connection(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'readerai.db'}")
    await store.start()
    await store._db.in_sqlite_thread(lambda c: c.execute("SELECT 1"))
    assert checked_out(store) == 1
    await store.close()
    assert checked_out(store) == 0
