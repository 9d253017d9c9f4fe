"""Migrations applied to databases that already hold rows, on every backend.

`test_sql_store.py` checks that the newest schema matches the models; these check
that getting there from an older revision keeps what was stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from readerai.protocol import ReplyStatus
from readerai.store.migrate import alembic_config, async_url, connect_args
from readerai.store.models import UtcDateTime
from readerai.store.sql import SqlStore
from tests.fixtures_db import fresh_postgres_database

CREATED = [datetime(2025, 1, 1, 8, 0, second, 250_000, tzinfo=UTC) for second in range(3)]

# The tables as revision 0001 made them: only the columns written here.
SESSIONS_0001 = sa.table(
    "sessions",
    sa.column("id", sa.String()),
    sa.column("created_at", UtcDateTime()),
    sa.column("updated_at", UtcDateTime()),
)
MESSAGES_0001 = sa.table(
    "messages",
    sa.column("id", sa.Integer()),
    sa.column("session_id", sa.String()),
    sa.column("turn_id", sa.String()),
    sa.column("role", sa.String()),
    sa.column("text", sa.Text()),
    sa.column("status", sa.String()),
    sa.column("citations", sa.JSON()),
    sa.column("created_at", UtcDateTime()),
)
# The passages table as revisions 0001 and 0002 left it.
PASSAGES_0002 = sa.table(
    "passages",
    sa.column("id", sa.String()),
    sa.column("title", sa.Text()),
    sa.column("text", sa.Text()),
    sa.column("level", sa.String()),
    sa.column("sentences", sa.JSON()),
    sa.column("created_at", UtcDateTime()),
)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all, per backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'readerai.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


async def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    # In a thread: the configuration reads ~/.pgpass, Alembic its scripts.
    await anyio.to_thread.run_sync(lambda: step(alembic_config(url), revision))


async def _engine(url: str) -> AsyncEngine:
    parsed = async_url(url)
    # Built in a thread: SQLAlchemy resolves a SQLite path on disk.
    return await anyio.to_thread.run_sync(
        lambda: create_async_engine(parsed, connect_args=connect_args(parsed, 5.0))
    )


async def _store_0001_rows(url: str) -> None:
    """A session with three messages, the newest then deleted (its id must stay used)."""
    engine = await _engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.insert(SESSIONS_0001),
                [{"id": "s1", "created_at": CREATED[0], "updated_at": CREATED[-1]}],
            )
            await connection.execute(
                sa.insert(MESSAGES_0001),
                [
                    {
                        "session_id": "s1",
                        "turn_id": f"t{n}",
                        "role": "student",
                        "text": f"q{n}",
                        "status": "completed",
                        "citations": [],
                        "created_at": created,
                    }
                    for n, created in enumerate(CREATED)
                ],
            )
            await connection.execute(sa.delete(MESSAGES_0001).where(MESSAGES_0001.c.id == 3))
    finally:
        await engine.dispose()


async def test_upgrade_from_0001_backfills_message_updated_at(empty_url: str) -> None:
    await _migrate(empty_url, "0001")
    await _store_0001_rows(empty_url)
    store = SqlStore(empty_url)
    await store.start()  # migrates to head
    try:
        old = await store.recent_messages("s1", limit=10)
        assert [(m.id, m.text, m.updated_at) for m in old] == [
            (1, "q0", CREATED[0]),
            (2, "q1", CREATED[1]),
        ]
        session = await store.get_session("s1")
        assert session is not None
        assert session.class_id is None
        new = await store.add_message(
            session_id="s1", turn_id="t3", role="student", text="q3", status=ReplyStatus.COMPLETED
        )
        assert new.id > 3, "the id of the deleted newest message was handed out again"
    finally:
        await store.close()


async def test_downgrade_to_0001_and_back_keeps_messages(empty_url: str) -> None:
    await _migrate(empty_url, "0001")
    await _store_0001_rows(empty_url)
    await _migrate(empty_url, "head")
    await _migrate(empty_url, "0001", down=True)
    await _migrate(empty_url, "head")
    store = SqlStore(empty_url)
    await store.start()
    try:
        old = await store.recent_messages("s1", limit=10)
        assert [(m.id, m.updated_at) for m in old] == [(1, CREATED[0]), (2, CREATED[1])]
        assert (await store.create_session(class_id="room-4b")).class_id == "room-4b"
    finally:
        await store.close()


async def _store_0002_passages(url: str) -> None:
    engine = await _engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.insert(PASSAGES_0002),
                [
                    {
                        "id": f"p{n}",
                        "title": f"P{n}",
                        "text": "The fox ran.",
                        "level": None,
                        "sentences": ["The fox ran."],
                        "created_at": created,
                    }
                    for n, created in enumerate(CREATED)
                ],
            )
    finally:
        await engine.dispose()


async def test_upgrade_from_0002_makes_existing_passages_ready(empty_url: str) -> None:
    await _migrate(empty_url, "0001")
    await _store_0001_rows(empty_url)
    await _migrate(empty_url, "0002")
    await _store_0002_passages(empty_url)
    store = SqlStore(empty_url)
    await store.start()  # migrates to head
    try:
        passages = await store.list_passages()
        assert [(p.id, p.status, p.terms, p.created_at) for p in passages] == [
            (f"p{n}", "ready", None, created) for n, created in enumerate(CREATED)
        ]
        assert await store.narration_count("p0") == 0
        session = await store.get_session("s1")
        assert session is not None
        assert session.user_id is None
        assert await store.list_sessions(user_ids=None) == [session]
    finally:
        await store.close()


async def test_downgrade_to_0002_and_back_keeps_passages_and_sessions(empty_url: str) -> None:
    await _migrate(empty_url, "0001")
    await _store_0001_rows(empty_url)
    await _migrate(empty_url, "0002")
    await _store_0002_passages(empty_url)
    await _migrate(empty_url, "head")
    await _migrate(empty_url, "0002", down=True)
    await _migrate(empty_url, "head")
    store = SqlStore(empty_url)
    await store.start()
    try:
        assert [p.status for p in await store.list_passages()] == ["ready"] * len(CREATED)
        assert [m.id for m in await store.recent_messages("s1", limit=10)] == [1, 2]
        teacher = await store.upsert_user(user_id="t-ada", role="teacher", name="Ada")
        room = await store.create_class(name="Room 4B", teacher_id=teacher.id)
        assert room.id == "room-4b"
    finally:
        await store.close()
