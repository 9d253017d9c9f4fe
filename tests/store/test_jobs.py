"""The job queue: one claimer per job, heartbeats as leases, no job left `running` for ever."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from readerai.store.base import JobRecord
from readerai.store.models import utc_now
from readerai.store.sql import SqlStore

MAX_ATTEMPTS = 3


def _long_ago() -> datetime:
    """A lease cutoff no live job is older than: only queued jobs are claimable."""
    return utc_now() - timedelta(hours=1)


def _now_stale() -> datetime:
    """A lease cutoff after every heartbeat so far: every running job counts as abandoned."""
    return utc_now() + timedelta(seconds=1)


async def _claim(
    store: SqlStore, owner: str, stale_before: datetime | None = None, max_attempts: int = 3
) -> JobRecord | None:
    return await store.claim_job(
        owner=owner, stale_before=stale_before or _long_ago(), max_attempts=max_attempts
    )


async def test_new_job_is_queued_with_nothing_done(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="the-fox")
    assert (job.kind, job.target, job.status) == ("prepare_passage", "the-fox", "queued")
    assert (job.progress, job.attempts, job.owner, job.detail) == (0.0, 0, None, None)
    assert len(job.id) == 32
    assert job.created_at == job.updated_at
    assert job.created_at.utcoffset() == timedelta(0)
    assert await store.get_job(job.id) == job


async def test_unknown_job_is_none(store: SqlStore) -> None:
    assert await store.get_job("nothing") is None
    assert await store.get_job("x" * 100) is None


async def test_claim_takes_the_oldest_queued_job(store: SqlStore) -> None:
    first = await store.create_job(kind="prepare_passage", target="a")
    second = await store.create_job(kind="prepare_passage", target="b")
    claimed = await _claim(store, "node-1")
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.owner, claimed.attempts) == (
        first.id,
        "running",
        "node-1",
        1,
    )
    assert await store.get_job(first.id) == claimed
    again = await _claim(store, "node-1")
    assert again is not None
    assert again.id == second.id
    assert await _claim(store, "node-1") is None


async def test_nothing_to_claim_is_none(store: SqlStore) -> None:
    assert await _claim(store, "node-1") is None


async def test_concurrent_claimers_never_share_a_job(nodes: list[SqlStore]) -> None:
    jobs = {
        (await nodes[0].create_job(kind="prepare_passage", target=f"p{n}")).id for n in range(2)
    }
    claims = await asyncio.gather(*(_claim(nodes[n % len(nodes)], f"node-{n}") for n in range(5)))
    won = [claim for claim in claims if claim is not None]
    assert len(won) == 2
    assert {claim.id for claim in won} == jobs
    assert len({claim.owner for claim in won}) == 2


async def test_heartbeat_records_progress_while_owned(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="a")
    claimed = await _claim(store, "node-1")
    assert claimed is not None
    assert await store.heartbeat_job(job.id, owner="node-1", progress=0.5) is True
    beaten = await store.get_job(job.id)
    assert beaten is not None
    assert (beaten.progress, beaten.status) == (0.5, "running")
    assert beaten.updated_at >= claimed.updated_at
    assert await store.heartbeat_job(job.id, owner="node-2", progress=0.9) is False
    assert await store.heartbeat_job("nothing", owner="node-1", progress=0.9) is False


async def test_heartbeat_refuses_progress_outside_0_to_1(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="progress"):
        await store.heartbeat_job("j", owner="node-1", progress=1.5)


async def test_finish_completes_the_owned_job_once(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="a")
    await _claim(store, "node-1")
    assert await store.finish_job(job.id, owner="node-2", status="completed", detail=None) is False
    assert await store.finish_job(job.id, owner="node-1", status="completed", detail=None) is True
    done = await store.get_job(job.id)
    assert done is not None
    assert (done.status, done.progress, done.detail) == ("completed", 1.0, None)
    assert await store.finish_job(job.id, owner="node-1", status="failed", detail="x") is False
    assert await store.heartbeat_job(job.id, owner="node-1", progress=0.1) is False
    assert await _claim(store, "node-1", stale_before=_now_stale()) is None


async def test_failed_job_says_why(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="a")
    await _claim(store, "node-1")
    await store.heartbeat_job(job.id, owner="node-1", progress=0.25)
    detail = "no sentences in the text"
    assert await store.finish_job(job.id, owner="node-1", status="failed", detail=detail)
    failed = await store.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.detail, failed.progress) == ("failed", detail, 0.25)


async def test_finish_refuses_an_outcome_that_is_not_an_end(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="outcome"):
        await store.finish_job("j", owner="node-1", status="running", detail=None)  # type: ignore[arg-type]


async def test_job_of_a_node_that_stopped_heartbeating_is_claimed_again(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="a")
    await _claim(store, "node-1")
    assert await _claim(store, "node-2") is None  # node-1's lease still runs
    taken = await _claim(store, "node-2", stale_before=_now_stale())
    assert taken is not None
    assert (taken.id, taken.owner, taken.attempts, taken.status) == (job.id, "node-2", 2, "running")
    # The node that lost it can no longer write it.
    assert await store.heartbeat_job(job.id, owner="node-1", progress=0.9) is False
    assert await store.finish_job(job.id, owner="node-1", status="completed", detail=None) is False
    assert await store.heartbeat_job(job.id, owner="node-2", progress=0.1) is True


async def test_job_abandoned_max_attempts_times_is_failed(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="a")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = await _claim(store, f"node-{attempt}", stale_before=_now_stale())
        assert claimed is not None
        assert (claimed.id, claimed.attempts) == (job.id, attempt)
    queued = await store.create_job(kind="prepare_passage", target="b")
    # The third lease runs out: the job is failed, and the claim moves on.
    next_claim = await _claim(store, "node-9", stale_before=_now_stale())
    assert next_claim is not None
    assert next_claim.id == queued.id
    failed = await store.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.detail) == ("failed", f"abandoned after {MAX_ATTEMPTS} attempts")
    assert failed.updated_at >= failed.created_at


async def test_abandoned_job_is_failed_even_when_nothing_else_is_claimed(store: SqlStore) -> None:
    job = await store.create_job(kind="prepare_passage", target="a")
    await _claim(store, "node-1", max_attempts=1)
    assert await _claim(store, "node-2", stale_before=_now_stale(), max_attempts=1) is None
    failed = await store.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.detail) == ("failed", "abandoned after 1 attempts")


async def test_claim_needs_an_aware_cutoff_and_one_attempt(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        await _claim(store, "node-1", stale_before=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="max_attempts"):
        await _claim(store, "node-1", max_attempts=0)


async def test_a_passage_whose_preparation_is_given_up_on_is_failed(store: SqlStore) -> None:
    passage = await store.add_passage(
        title="Half done", text="One. Two.", level=None, sentences=[], status="preparing"
    )
    await store.create_job(kind="prepare_passage", target=passage.id)
    await _claim(store, "node-1", max_attempts=1)
    assert await _claim(store, "node-2", stale_before=_now_stale(), max_attempts=1) is None
    found = await store.get_passage(passage.id)
    assert found is not None and found.status == "failed", "never left preparing"
