"""Writes ride out a short database outage; constraint errors and reads are not retried.

The outage tests stop and restart a private PostgreSQL server (`tests.fixtures_pg`),
never the shared one; `pg_ctl` blocks, so it runs in a worker thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import anyio.to_thread
import pytest
import structlog

from readerai.errors import Conflict, StoreUnavailable
from readerai.protocol import ReplyStatus
from readerai.store.base import MessageRecord
from readerai.store.models import utc_now
from readerai.store.retry import WriteRetry, backoff_delays
from readerai.store.sql import SqlStore
from tests.fixtures_pg import PostgresServer, private_postgres

__all__ = ["private_postgres"]  # re-exported so pytest finds the fixture here


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def _retries(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "store.write_retry"]


# ---------------------------------------------------------------- the policy


def test_backoff_starts_at_50_ms_and_doubles_up_to_1_s() -> None:
    delays = list(itertools.islice(backoff_delays(), 8))
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


async def test_unavailable_write_is_retried_until_it_succeeds(
    logs: list[MutableMapping[str, Any]],
) -> None:
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise StoreUnavailable("database down")
        return "written"

    assert await WriteRetry(budget=5.0).run(write, operation="save") == "written"
    assert calls == 3
    assert [(e["attempt"], e["code"], e["log_level"]) for e in _retries(logs)] == [
        (1, "store_unavailable", "warning"),
        (2, "store_unavailable", "warning"),
    ]
    assert {e["operation"] for e in _retries(logs)} == {"save"}


async def test_write_still_unavailable_after_the_budget_raises_the_last_error() -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise StoreUnavailable(f"down, attempt {calls}")

    started = anyio.current_time()
    with pytest.raises(StoreUnavailable) as caught:
        await WriteRetry(budget=0.3).run(write, operation="save")
    elapsed = anyio.current_time() - started
    assert 0.3 <= elapsed < 1.0
    assert caught.value.message == f"down, attempt {calls}"
    assert calls >= 3  # 0, 50 ms, 150 ms, then 300 ms (the budget's end)


async def test_constraint_errors_are_never_retried(logs: list[MutableMapping[str, Any]]) -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("taken")

    with pytest.raises(Conflict):
        await WriteRetry(budget=5.0).run(write, operation="save")
    assert calls == 1
    assert _retries(logs) == []


async def test_zero_budget_tries_once() -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise StoreUnavailable("down")

    with pytest.raises(StoreUnavailable):
        await WriteRetry(budget=0.0).run(write, operation="save")
    assert calls == 1


async def test_store_that_never_started_does_not_retry(unused_tcp_port: int) -> None:
    store = SqlStore(f"postgresql+asyncpg://postgres@127.0.0.1:{unused_tcp_port}/db")
    with anyio.fail_after(2), pytest.raises(StoreUnavailable, match="not connected"):
        await store.create_session()
    await store.close()


# ---------------------------------------------------------------- a real outage


async def _add(store: SqlStore, session_id: str, text: str) -> MessageRecord:
    return await store.add_message(
        session_id=session_id,
        turn_id=f"turn-{text}",
        role="student",
        text=text,
        status=ReplyStatus.COMPLETED,
    )


@pytest.mark.postgres
async def test_write_during_a_postgres_restart_completes(
    private_postgres: PostgresServer, logs: list[MutableMapping[str, Any]]
) -> None:
    store = SqlStore(private_postgres.url, write_retry_seconds=10.0)
    await store.start()
    try:
        session = await store.create_session()
        first = await _add(store, session.id, "before")
        await anyio.to_thread.run_sync(private_postgres.stop)
        written: list[MessageRecord] = []

        async def write() -> None:
            written.append(await _add(store, session.id, "during"))

        with anyio.fail_after(15):
            async with anyio.create_task_group() as group:
                group.start_soon(write)
                await anyio.sleep(1.0)
                assert written == [], "the write finished while the server was down"
                restarting_at = utc_now()
                await anyio.to_thread.run_sync(private_postgres.start)

        assert _retries(logs), "the write never met the outage"
        assert [m.text for m in await store.recent_messages(session.id, limit=10)] == [
            "before",
            "during",
        ]
        assert written[0].id > first.id
        # Stamped when written: a reply's lease does not run out while it waits.
        assert written[0].updated_at == written[0].created_at >= restarting_at
    finally:
        await store.close()


@pytest.mark.postgres
async def test_pooled_connections_cut_by_a_restart_are_replaced(
    private_postgres: PostgresServer,
) -> None:
    # No retries: every write below must succeed on its first attempt.
    store = SqlStore(private_postgres.url, write_retry_seconds=0)
    await store.start()
    try:
        session = await store.create_session()
        async with anyio.create_task_group() as group:  # fill the pool with connections
            for n in range(5):
                group.start_soon(store.save_progress, session.id, f"passage-{n}", n)
        await anyio.to_thread.run_sync(private_postgres.restart)
        message = await _add(store, session.id, "after")
        await store.update_message(message.id, text="after!", status=ReplyStatus.COMPLETED)
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(store.save_progress, session.id, f"passage-{n}", n + 10)
        assert sorted(p.position for p in await store.get_progress(session.id)) == [
            10,
            11,
            12,
            13,
            14,
        ]
    finally:
        await store.close()


@pytest.mark.postgres
async def test_write_during_an_outage_longer_than_the_budget_is_unavailable(
    private_postgres: PostgresServer, logs: list[MutableMapping[str, Any]]
) -> None:
    store = SqlStore(private_postgres.url, write_retry_seconds=1.0)
    await store.start()
    try:
        session = await store.create_session()
        await anyio.to_thread.run_sync(private_postgres.stop)
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(StoreUnavailable, match=str(private_postgres.port)):
            await store.set_session_passage(session.id, "the-fox")
        assert 1.0 <= anyio.current_time() - started < 3.0
        assert len(_retries(logs)) >= 4  # 50, 100, 200, 400 ms, then the rest of the second
        with pytest.raises(StoreUnavailable):  # reads are not retried
            await store.get_session(session.id)
    finally:
        await store.close()
