"""The store contract runs once per backend: SQLite in a temporary file, and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from readerai.store.models import Base
from readerai.store.sql import SqlStore
from tests.fixtures_db import postgres_url, truncate_tables

__all__ = ["postgres_url"]  # re-exported so pytest finds the fixture here


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL per backend; the SQLite file's directory does not exist yet, on purpose."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'readerai.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """A started store on an empty, migrated database."""
    sql_store = SqlStore(database_url)
    await sql_store.start()
    if database_url.startswith("postgresql"):
        # The PostgreSQL database is shared by the module; each test starts empty.
        await truncate_tables(database_url, [t.name for t in Base.metadata.sorted_tables])
    try:
        yield sql_store
    finally:
        await sql_store.close()


@pytest.fixture
async def nodes(store: SqlStore, database_url: str) -> AsyncIterator[list[SqlStore]]:
    """`store` and three more stores on its database: four nodes, each with its own pool.

    Racing writers must meet in the database, not queue on one store's SQLite
    connection (a single store serialises its SQLite work).
    """
    async with contextlib.AsyncExitStack() as stack:
        others = []
        for _ in range(3):
            node = SqlStore(database_url)
            await node.start()
            stack.push_async_callback(node.close)
            others.append(node)
        yield [store, *others]
