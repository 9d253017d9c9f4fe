"""The job worker on a real SQLite store: jobs run once, report progress, fail with a
reason, and survive the death of the node running them."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from readerai.jobs.worker import Handler, JobFailed, JobWorker, ProgressReporter
from readerai.store import JobRecord
from readerai.store.models import utc_now
from readerai.store.sql import SqlStore
from readerai.supervisor import TaskSupervisor

KIND = "test_job"
FAST = {"poll_seconds": 0.05, "heartbeat_seconds": 0.05, "stale_seconds": 0.5}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'readerai.db'}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    sql_store = SqlStore(database_url)
    await sql_store.start()
    try:
        yield sql_store
    finally:
        await sql_store.close()


@asynccontextmanager
async def running_worker(
    store: SqlStore, handler: Handler, owner: str = "node-a", **options: Any
) -> AsyncIterator[JobWorker]:
    worker = JobWorker(
        store, TaskSupervisor(), owner=owner, handlers={KIND: handler}, **{**FAST, **options}
    )
    worker.start()
    try:
        yield worker
    finally:
        await worker.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until `check()` is true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def ended(store: SqlStore, job_id: str) -> JobRecord:
    """The job once it is `completed` or `failed`."""

    async def done() -> bool:
        job = await store.get_job(job_id)
        return job is not None and job.status in ("completed", "failed")

    await eventually(done)
    job = await store.get_job(job_id)
    assert job is not None
    return job


async def test_job_completes_and_its_progress_is_recorded_while_it_runs(store: SqlStore) -> None:
    halfway = asyncio.Event()
    seen: list[float] = []

    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        report(0.5)
        await halfway.wait()

    async def progress_recorded() -> bool:
        current = await store.get_job(job.id)
        assert current is not None
        seen.append(current.progress)
        return current.status == "running" and current.progress == 0.5

    job = await store.create_job(kind=KIND, target="t")
    async with running_worker(store, handler):
        await eventually(progress_recorded)
        halfway.set()
        done = await ended(store, job.id)
    assert (done.status, done.progress, done.detail, done.attempts) == ("completed", 1.0, None, 1)
    assert done.owner == "node-a"


async def test_job_failed_ends_the_job_with_its_reason(store: SqlStore) -> None:
    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        raise JobFailed("no sentences in the text")

    job = await store.create_job(kind=KIND, target="t")
    async with running_worker(store, handler):
        done = await ended(store, job.id)
    assert (done.status, done.detail) == ("failed", "no sentences in the text")


@pytest.mark.parametrize(
    ("error", "detail"), [(RuntimeError("voice broke"), "voice broke"), (KeyError(), "KeyError")]
)
async def test_a_crashing_handler_fails_its_job_and_the_worker_goes_on(
    store: SqlStore, error: Exception, detail: str
) -> None:
    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        if job.target == "bad":
            raise error

    bad = await store.create_job(kind=KIND, target="bad")
    good = await store.create_job(kind=KIND, target="good")
    with structlog.testing.capture_logs() as logs:
        async with running_worker(store, handler):
            failed, completed = await ended(store, bad.id), await ended(store, good.id)
    assert (failed.status, failed.detail) == ("failed", detail)
    assert completed.status == "completed"
    crashes = [e for e in logs if e["event"] == "job.crashed"]
    assert [(e["job_id"], e["log_level"]) for e in crashes] == [(bad.id, "error")]


async def test_a_job_of_an_unknown_kind_fails_saying_so(store: SqlStore) -> None:
    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        pass

    job = await store.create_job(kind="mystery", target="t")
    async with running_worker(store, handler):
        done = await ended(store, job.id)
    assert done.status == "failed"
    assert done.detail is not None and "mystery" in done.detail


async def test_kick_starts_a_queued_job_without_waiting_for_the_poll(store: SqlStore) -> None:
    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        pass

    async with running_worker(store, handler, poll_seconds=60) as worker:
        await asyncio.sleep(0.1)  # the worker is now asleep until its next poll
        job = await store.create_job(kind=KIND, target="t")
        worker.kick()
        started = time.monotonic()
        done = await ended(store, job.id)
    assert done.status == "completed"
    assert time.monotonic() - started < 5


async def test_two_nodes_never_run_one_job_twice(database_url: str, store: SqlStore) -> None:
    runs: list[tuple[str, str]] = []
    other = SqlStore(database_url)  # a second node: its own connection pool
    await other.start()

    def handler_of(owner: str) -> Handler:
        async def handler(job: JobRecord, report: ProgressReporter) -> None:
            runs.append((owner, job.id))
            await asyncio.sleep(0.02)

        return handler

    jobs = [await store.create_job(kind=KIND, target=f"t{n}") for n in range(12)]
    try:
        async with (
            running_worker(store, handler_of("node-a"), owner="node-a"),
            running_worker(other, handler_of("node-b"), owner="node-b"),
        ):
            done = [await ended(store, job.id) for job in jobs]
    finally:
        await other.close()
    assert [job.status for job in done] == ["completed"] * len(jobs)
    assert sorted(job_id for _, job_id in runs) == sorted(job.id for job in jobs)
    assert {job.attempts for job in done} == {1}


async def test_a_job_whose_node_died_is_resumed_by_another(store: SqlStore) -> None:
    attempts: list[tuple[str, int]] = []
    first_started = asyncio.Event()

    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        attempts.append((job.owner or "", job.attempts))
        if job.attempts == 1:
            report(0.3)
            first_started.set()
            await asyncio.Event().wait()  # the node dies before this ends

    job = await store.create_job(kind=KIND, target="t")
    async with running_worker(store, handler, owner="node-a"):
        await first_started.wait()
    orphan = await store.get_job(job.id)
    assert orphan is not None and orphan.status == "running", "a dead node ends nothing"

    async with running_worker(store, handler, owner="node-b"):
        done = await ended(store, job.id)
    assert (done.status, done.owner, done.attempts) == ("completed", "node-b", 2)
    assert attempts == [("node-a", 1), ("node-b", 2)]


async def test_a_job_abandoned_max_attempts_times_fails_and_is_never_left_running(
    store: SqlStore,
) -> None:
    calls = 0

    async def hangs(job: JobRecord, report: ProgressReporter) -> None:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    async def calls_reach(n: int) -> bool:
        return calls >= n

    job = await store.create_job(kind=KIND, target="t")
    for node in (1, 2):  # each node dies while it runs the job
        async with running_worker(store, hangs, owner=f"node-{node}", max_attempts=2):
            await eventually(functools.partial(calls_reach, node))
    async with running_worker(store, hangs, owner="node-3", max_attempts=2):
        done = await ended(store, job.id)
    assert (done.status, done.detail, calls) == ("failed", "abandoned after 2 attempts", 2)


async def test_a_node_that_lost_its_job_stops_it_and_writes_nothing(store: SqlStore) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def handler(job: JobRecord, report: ProgressReporter) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    job = await store.create_job(kind=KIND, target="t")
    async with running_worker(store, handler, owner="node-a"):
        await started.wait()
        # Another node decided node-a's lease ran out (say node-a stalled) and took over.
        thief = await store.claim_job(
            owner="node-b", stale_before=utc_now() + timedelta(seconds=1), max_attempts=3
        )
        assert thief is not None and thief.id == job.id
        await asyncio.wait_for(stopped.wait(), 5)
    now = await store.get_job(job.id)
    assert now is not None
    assert (now.status, now.owner, now.attempts) == ("running", "node-b", 2)
