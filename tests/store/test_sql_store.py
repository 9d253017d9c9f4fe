"""The `Store` contract, run against every backend (SQLite and PostgreSQL).

Tests taking the `store` fixture run once per backend; the rest pin down behaviour
that does not need a live database (unreachable servers, URL handling, slugs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from readerai.errors import Conflict, NotFound, StoreUnavailable
from readerai.protocol import ReplyStatus
from readerai.store.migrate import async_url, connect_args, upgrade_database_sync
from readerai.store.models import Base
from readerai.store.sql import SqlStore, slugify
from tests.fixtures_db import drop_database, fresh_postgres_database

STUDENT = "student"
TUTOR = "tutor"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port


async def _add_question(store: SqlStore, session_id: str, text: str) -> int:
    message = await store.add_message(
        session_id=session_id,
        turn_id=f"turn-{text}",
        role=STUDENT,
        text=text,
        status=ReplyStatus.COMPLETED,
    )
    return message.id


# ---------------------------------------------------------------- lifecycle


async def test_started_store_answers_ping(store: SqlStore) -> None:
    assert await store.ping() is True


async def test_migrations_are_idempotent(store: SqlStore, database_url: str) -> None:
    session = await store.create_session()
    again = SqlStore(database_url)
    await again.start()  # the schema is already at head: nothing to do, nothing lost
    try:
        assert await again.get_session(session.id) == session
    finally:
        await again.close()


async def test_migrations_match_models(store: SqlStore, database_url: str) -> None:
    def differences(connection: Connection) -> list[Any]:
        found: list[Any] = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        return found

    url = async_url(database_url)
    # Built in a thread: SQLAlchemy resolves a SQLite path on disk, asyncpg's
    # arguments are settled from files.
    engine = await anyio.to_thread.run_sync(
        lambda: create_async_engine(url, connect_args=connect_args(url, 5.0))
    )
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert tables == {
        "alembic_version",
        "sessions",
        "messages",
        "reading_progress",
        "passages",
        "passage_audio",
        "users",
        "classes",
        "class_members",
        "broadcasts",
        "login_codes",
        "jobs",
        "readings",
    }


def test_sync_upgrade_creates_the_schema_for_the_cli(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli' / 'readerai.db'}"
    upgrade_database_sync(url)
    upgrade_database_sync(url)
    assert (tmp_path / "cli" / "readerai.db").is_file()


async def test_stores_starting_together_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    stores = [SqlStore(url) for _ in range(3)]
    try:
        async with anyio.create_task_group() as group:
            for each in stores:
                group.start_soon(each.start)
        session = await stores[0].create_session()
        assert await stores[2].get_session(session.id) == session
    finally:
        for each in stores:
            await each.close()


@pytest.mark.postgres
async def test_nodes_migrating_one_postgres_database_at_once_all_succeed(
    postgres_url: str,
) -> None:
    # Separate processes, as separate nodes would be: only the database can serialise them.
    migrate = (
        "import sys; from readerai.store.migrate import upgrade_database_sync; "
        "upgrade_database_sync(sys.argv[1])"
    )
    results: list[subprocess.CompletedProcess[str]] = []

    async def node(url: str) -> None:
        run = functools.partial(
            subprocess.run, [sys.executable, "-c", migrate, url], capture_output=True, text=True
        )
        results.append(await anyio.to_thread.run_sync(run))

    async with fresh_postgres_database() as url:
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(node, url)
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
        store = SqlStore(url)
        await store.start()
        assert await store.ping()
        await store.close()


# ---------------------------------------------------------------- unavailability


async def test_unreachable_database_raises_store_unavailable_naming_it(closed_port: int) -> None:
    store = SqlStore(f"postgresql+asyncpg://reader:s3cret@127.0.0.1:{closed_port}/readerai")
    with pytest.raises(StoreUnavailable) as caught:
        await store.start()
    message = caught.value.message
    assert f"127.0.0.1:{closed_port}/readerai" in message
    assert "s3cret" not in message
    assert "***" in message
    assert "\n" not in message
    assert "refused" in message.lower() or "connect call failed" in message.lower()
    await store.close()


async def test_unopenable_sqlite_path_raises_store_unavailable(tmp_path: Path) -> None:
    blocker = anyio.Path(tmp_path / "a-file")
    await blocker.write_text("not a directory")
    store = SqlStore(f"sqlite+aiosqlite:///{blocker}/readerai.db")
    with pytest.raises(StoreUnavailable, match=r"a-file/readerai\.db"):
        await store.start()
    await store.close()


async def test_store_used_before_start_is_unavailable(closed_port: int) -> None:
    store = SqlStore(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/readerai")
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{closed_port}"):
        await store.get_session("abc")
    assert await store.ping() is False
    await store.close()


async def test_ping_is_false_when_database_unreachable(closed_port: int) -> None:
    store = SqlStore(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/readerai")
    with pytest.raises(StoreUnavailable):
        await store.start()
    assert await store.ping() is False
    await store.close()


@pytest.mark.postgres
async def test_database_that_goes_away_makes_operations_unavailable(postgres_url: str) -> None:
    async with fresh_postgres_database() as url:
        # No write retries: they would only delay the same answer (see test_retry.py).
        store = SqlStore(url, write_retry_seconds=0)
        await store.start()
        session = await store.create_session()
        await drop_database(url)
        with pytest.raises(StoreUnavailable, match=url.rsplit("/", 1)[1]):
            await store.get_session(session.id)
        with pytest.raises(StoreUnavailable):
            await store.save_progress(session.id, "the-fox", 3)
        assert await store.ping() is False
        await store.close()


async def test_silent_database_times_out_as_store_unavailable() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection open until the client gives up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = SqlStore(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/db", connect_timeout=0.5)
    try:
        with anyio.fail_after(5):
            with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}/db"):
                await store.start()
            assert await store.ping() is False
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------- sessions


async def test_create_session_generates_a_uuid_hex_id(store: SqlStore) -> None:
    session = await store.create_session()
    assert len(session.id) == 32
    int(session.id, 16)
    assert session.passage_id is None


async def test_create_session_keeps_given_id_and_passage(store: SqlStore) -> None:
    session = await store.create_session(session_id="s1", passage_id="the-fox")
    assert (session.id, session.passage_id) == ("s1", "the-fox")
    assert await store.get_session("s1") == session


async def test_a_created_session_reads_back_the_same_through_every_read(
    store: SqlStore, database_url: str
) -> None:
    # On SQLite creating and reading a session skip the ORM (one trip to SQLite's
    # thread each); the ORM's reads must see the very same row.
    session = await store.create_session(passage_id="the-fox", class_id="room-9", user_id="s-ed")
    assert session.created_at.utcoffset() == timedelta(0)
    assert await store.get_session(session.id) == session
    assert await store.sessions_in_class("room-9") == [session]
    assert await store.list_sessions(user_ids=["s-ed"]) == [session]
    with pytest.raises(Conflict):
        await store.create_session(session_id=session.id)
    if database_url.startswith("sqlite"):
        # Stored as the ORM stores it (naive UTC text), so SQL compares it right.
        path = database_url.split(":///", 1)[1]
        stored = await anyio.to_thread.run_sync(_stored_created_at, path, session.id)
        assert stored == session.created_at.replace(tzinfo=None).isoformat(" ")


def _stored_created_at(path: str, session_id: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        [(text,)] = connection.execute("SELECT created_at FROM sessions WHERE id = ?", [session_id])
    return str(text)


async def test_session_class_round_trips(store: SqlStore) -> None:
    session = await store.create_session(class_id="room-4b")
    assert session.class_id == "room-4b"
    assert await store.get_session(session.id) == session
    assert (await store.create_session()).class_id is None


async def test_sessions_in_class_are_that_class_oldest_first(store: SqlStore) -> None:
    first = await store.create_session(class_id="room-4b")
    await store.create_session(class_id="room-5a")
    await store.create_session()
    second = await store.create_session(class_id="room-4b")
    assert await store.sessions_in_class("room-4b") == [first, second]
    assert await store.sessions_in_class("nobody") == []


@pytest.mark.parametrize("class_id", ["", "x" * 65])
async def test_class_id_must_be_1_to_64_characters(store: SqlStore, class_id: str) -> None:
    with pytest.raises(ValueError, match="class id"):
        await store.create_session(class_id=class_id)


async def test_duplicate_session_id_conflicts(store: SqlStore) -> None:
    await store.create_session(session_id="s1")
    with pytest.raises(Conflict):
        await store.create_session(session_id="s1")


async def test_unknown_session_is_none(store: SqlStore) -> None:
    assert await store.get_session("nobody") is None


async def test_timestamps_are_timezone_aware_utc(store: SqlStore) -> None:
    session = await store.create_session()
    stored = await store.get_session(session.id)
    assert stored is not None
    for moment in (stored.created_at, stored.updated_at):
        assert moment.utcoffset() == timedelta(0)


async def test_set_session_passage_changes_passage_and_updated_at(store: SqlStore) -> None:
    session = await store.create_session()
    await store.set_session_passage(session.id, "the-fox")
    changed = await store.get_session(session.id)
    assert changed is not None
    assert changed.passage_id == "the-fox"
    assert changed.updated_at >= session.updated_at
    await store.set_session_passage(session.id, None)
    cleared = await store.get_session(session.id)
    assert cleared is not None
    assert cleared.passage_id is None


async def test_set_passage_of_unknown_session_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.set_session_passage("nobody", "the-fox")


# ---------------------------------------------------------------- messages


async def test_add_message_returns_the_stored_record(store: SqlStore) -> None:
    session = await store.create_session()
    message = await store.add_message(
        session_id=session.id,
        turn_id="t1",
        role=TUTOR,
        text="The fox ran.",
        status=ReplyStatus.COMPLETED,
        citations=[0, 2],
    )
    assert (message.session_id, message.turn_id, message.role) == (session.id, "t1", TUTOR)
    assert (message.text, message.status, message.citations) == (
        "The fox ran.",
        ReplyStatus.COMPLETED,
        [0, 2],
    )
    assert message.created_at.utcoffset() == timedelta(0)
    assert await store.recent_messages(session.id, limit=10) == [message]


async def test_message_ids_increase_with_insertion_order(store: SqlStore) -> None:
    session = await store.create_session()
    ids = [await _add_question(store, session.id, f"q{n}") for n in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


async def test_add_message_to_unknown_session_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await _add_question(store, "nobody", "hello?")


async def test_message_update_replaces_text_and_status(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await store.add_message(
        session_id=session.id,
        turn_id="t1",
        role=TUTOR,
        text="The fox",
        status=ReplyStatus.IN_PROGRESS,
    )
    await store.update_message(
        reply.id, text="The fox ran away.", status=ReplyStatus.CANCELLED, citations=[1]
    )
    [stored] = await store.recent_messages(session.id, limit=1)
    assert (stored.id, stored.text, stored.status, stored.citations) == (
        reply.id,
        "The fox ran away.",
        ReplyStatus.CANCELLED,
        [1],
    )
    assert stored.created_at == reply.created_at


async def test_update_of_unknown_message_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.update_message(987654, text="x", status=ReplyStatus.FAILED)


async def test_recent_messages_returns_newest_oldest_first(store: SqlStore) -> None:
    session = await store.create_session()
    for n in range(5):
        await _add_question(store, session.id, f"q{n}")
    recent = await store.recent_messages(session.id, limit=3)
    assert [m.text for m in recent] == ["q2", "q3", "q4"]


async def test_recent_messages_before_id_pages_backwards(store: SqlStore) -> None:
    session = await store.create_session()
    ids = [await _add_question(store, session.id, f"q{n}") for n in range(5)]
    page = await store.recent_messages(session.id, limit=2, before_id=ids[3])
    assert [m.text for m in page] == ["q1", "q2"]
    assert await store.recent_messages(session.id, limit=2, before_id=ids[0]) == []
    assert await store.recent_messages(session.id, limit=0) == []


async def test_recent_messages_are_only_of_that_session(store: SqlStore) -> None:
    mine, theirs = await store.create_session(), await store.create_session()
    await _add_question(store, mine.id, "mine")
    await _add_question(store, theirs.id, "theirs")
    assert [m.text for m in await store.recent_messages(mine.id, limit=10)] == ["mine"]
    assert await store.recent_messages("nobody", limit=10) == []


async def test_restore_reads_are_the_recent_messages_and_the_progress_read_apart(
    store: SqlStore,
) -> None:
    session, other = await store.create_session(), await store.create_session()
    for n in range(4):
        await _add_question(store, session.id, f"q{n}")
    reply = await store.add_message(
        session_id=session.id,
        turn_id="t-reply",
        role="tutor",
        text="The fox ran.",
        status=ReplyStatus.COMPLETED,
        citations=[0, 2],
    )
    await _add_question(store, other.id, "theirs")
    await store.save_progress(session.id, "first", 1)
    await store.save_progress(session.id, "second", 5)
    await store.save_progress(other.id, "first", 9)

    messages, progress = await store.restore_reads(session.id, limit=3)

    assert messages == await store.recent_messages(session.id, limit=3)
    assert [m.text for m in messages] == ["q2", "q3", "The fox ran."]
    assert messages[-1] == reply
    assert progress == await store.get_progress(session.id)
    assert [(p.passage_id, p.position) for p in progress] == [("second", 5), ("first", 1)]
    assert all(p.updated_at.utcoffset() == timedelta(0) for p in progress)
    assert await store.restore_reads(session.id, limit=0) == ([], progress)
    assert await store.restore_reads("nobody", limit=10) == ([], [])


# ---------------------------------------------------------------- reading progress


async def test_progress_upsert_keeps_latest(store: SqlStore) -> None:
    session = await store.create_session()
    await store.save_progress(session.id, "the-fox", 3)
    [first] = await store.get_progress(session.id)
    await store.save_progress(session.id, "the-fox", 7)
    [latest] = await store.get_progress(session.id)
    assert (latest.session_id, latest.passage_id, latest.position) == (session.id, "the-fox", 7)
    assert latest.updated_at >= first.updated_at
    assert latest.updated_at.utcoffset() == timedelta(0)


async def test_progress_is_kept_per_passage_most_recent_first(store: SqlStore) -> None:
    session = await store.create_session()
    await store.save_progress(session.id, "first", 1)
    await store.save_progress(session.id, "second", 2)
    progress = await store.get_progress(session.id)
    assert [(p.passage_id, p.position) for p in progress] == [("second", 2), ("first", 1)]


async def test_concurrent_progress_writes_leave_one_row(store: SqlStore) -> None:
    session = await store.create_session()
    async with anyio.create_task_group() as group:
        for position in range(10):
            group.start_soon(store.save_progress, session.id, "the-fox", position)
    [progress] = await store.get_progress(session.id)
    assert 0 <= progress.position < 10


async def test_progress_of_unknown_session_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.save_progress("nobody", "the-fox", 1)
    assert await store.get_progress("nobody") == []


# ---------------------------------------------------------------- passages


async def test_add_passage_round_trips(store: SqlStore) -> None:
    passage = await store.add_passage(
        title="The Fox",
        text="The fox ran. It hid.",
        level="Grade 1",
        sentences=["The fox ran.", "It hid."],
        passage_id="fox",
    )
    assert (passage.id, passage.title, passage.level) == ("fox", "The Fox", "Grade 1")
    assert passage.sentences == ["The fox ran.", "It hid."]
    assert passage.created_at.utcoffset() == timedelta(0)
    assert await store.get_passage("fox") == passage


async def test_passage_id_defaults_to_slug_of_title(store: SqlStore) -> None:
    passage = await store.add_passage(
        title="The Lion & the Mouse!", text="t", level=None, sentences=["t"]
    )
    assert passage.id == "the-lion-the-mouse"
    assert passage.level is None


async def test_taken_slug_gets_a_numbered_suffix(store: SqlStore) -> None:
    ids = [
        (await store.add_passage(title="The Fox", text="t", level=None, sentences=[])).id
        for _ in range(3)
    ]
    assert ids == ["the-fox", "the-fox-2", "the-fox-3"]


async def test_long_title_slug_fits_64_characters(store: SqlStore) -> None:
    title = "A very long title " * 10
    first = await store.add_passage(title=title, text="t", level=None, sentences=[])
    second = await store.add_passage(title=title, text="t", level=None, sentences=[])
    assert len(first.id) <= 64
    assert len(second.id) <= 64
    assert second.id.endswith("-2")
    assert first.id != second.id


async def test_duplicate_passage_id_conflicts(store: SqlStore) -> None:
    await store.add_passage(title="A", text="t", level=None, sentences=[], passage_id="fox")
    with pytest.raises(Conflict):
        await store.add_passage(title="B", text="t", level=None, sentences=[], passage_id="fox")


async def test_list_passages_in_the_order_added(store: SqlStore) -> None:
    assert await store.list_passages() == []
    for title in ("Zebra", "Ant", "Mole"):
        await store.add_passage(title=title, text="t", level=None, sentences=[])
    assert [p.id for p in await store.list_passages()] == ["zebra", "ant", "mole"]


async def test_unknown_passage_is_none(store: SqlStore) -> None:
    assert await store.get_passage("nothing") is None


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("The Tortoise and the Hare", "the-tortoise-and-the-hare"),
        ("  Crème brûlée: a story  ", "creme-brulee-a-story"),
        ("!!!", "passage"),
        ("x" * 100, "x" * 64),
    ],
)
def test_slug_is_lowercase_ascii_words_joined_by_dashes(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_url_without_driver_gets_the_async_one() -> None:
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgres://u@h/db").drivername == "postgresql+asyncpg"


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        SqlStore("mysql+aiomysql://u@127.0.0.1/db")


async def test_concurrent_progress_writes_succeed_and_a_missing_session_fails_alone(
    store: SqlStore,
) -> None:
    sessions = [await store.create_session() for _ in range(20)]
    results = await asyncio.gather(
        *(store.save_progress(s.id, "the-lion", i) for i, s in enumerate(sessions)),
        store.save_progress("no-such-session", "the-lion", 1),
        return_exceptions=True,
    )
    assert results[:-1] == [None] * 20
    assert isinstance(results[-1], NotFound)
    for i, session in enumerate(sessions):
        assert [p.position for p in await store.get_progress(session.id)] == [i]
