"""`JobStore`: a queue of background work that survives the death of the node running it.

A job goes `queued` → `running` (claimed by one node, its `owner`) → `completed` or
`failed`. The owner heartbeats while it works; `heartbeat_at` is its lease. A
`running` job whose lease ran out belongs to a node that died: the next claim takes
it over (`attempts` + 1), or marks it `failed` once it has had `max_attempts`, so no
job stays `running` for ever.

Invariants:
- a claim is one conditional UPDATE whose WHERE repeats what made the job claimable,
  so a job is handed to one claimer only: on PostgreSQL the candidate row is picked
  `FOR UPDATE SKIP LOCKED` (concurrent claimers take different jobs, none waits); on
  SQLite the statement runs under the database's single write lock;
- heartbeats and the end of a job are written only while the caller still owns it:
  a node that lost its job (to a claimer that found its lease run out) changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, bindparam, cast, literal, or_, select, update
from sqlalchemy.orm import aliased

from readerai.store.base import JobOutcome, JobRecord
from readerai.store.core import SqlStoreCore, check_choice, check_length
from readerai.store.models import (
    JOB_KIND_LENGTH,
    JOB_TARGET_LENGTH,
    NODE_ID_LENGTH,
    JobRow,
    PassageRow,
    utc_now,
)
from readerai.store.retry import retried_write

#: The job kind that prepares a passage (`readerai.jobs.passages`); when one is given
#: up on, its passage is marked failed in the same transaction.
PREPARE_PASSAGE = "prepare_passage"

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
_OUTCOMES = frozenset({COMPLETED, FAILED})


#: Whether any job is queued or running on a lapsed lease (built once: see `claim_job`).
_ANY_WORK = (
    select(JobRow.id)
    .where(
        or_(
            JobRow.status == QUEUED,
            and_(
                JobRow.status == RUNNING,
                JobRow.heartbeat_at < bindparam("stale_before", type_=JobRow.heartbeat_at.type),
            ),
        )
    )
    .limit(1)
)


class JobStore(SqlStoreCore):
    """The job-queue part of `SqlStore`."""

    @retried_write
    async def create_job(self, *, kind: str, target: str) -> JobRecord:
        """Queue a job (status `queued`, progress 0, no attempts yet; a UUID4 hex id)."""
        check_length("job kind", kind, JOB_KIND_LENGTH)
        check_length("job target", target, JOB_TARGET_LENGTH)
        now = utc_now()
        row = JobRow(
            id=uuid.uuid4().hex,
            kind=kind,
            status=QUEUED,
            progress=0.0,
            target=target,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
            return row.to_record()

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job with this id, or None."""
        async with self._db.transaction() as session:
            row = await session.get(JobRow, job_id)
            return None if row is None else row.to_record()

    @retried_write
    async def claim_job(
        self, *, owner: str, stale_before: datetime, max_attempts: int
    ) -> JobRecord | None:
        """Take the oldest job that is queued, or running on a node that stopped heartbeating.

        First marks `failed` every job whose lease ran out after `max_attempts`
        attempts. The job taken is `running`, owned by `owner`, with one attempt more
        and a fresh heartbeat. None: nothing to do.
        """
        check_length("job owner", owner, NODE_ID_LENGTH)
        if stale_before.utcoffset() is None:
            raise ValueError("stale_before must be timezone-aware")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        # Look before writing: a node polls every second, and with nothing to do a
        # claim should neither take SQLite's one write lock (the turns' writes wait
        # behind it) nor build its statements (their cyclic garbage, about 300
        # objects a poll, is what the collector's young passes then stop the loop for).
        async with self._db.connection() as connection:
            work = await connection.execute(_ANY_WORK, {"stale_before": stale_before})
            if work.first() is None:
                return None
        now = utc_now()
        lapsed = and_(JobRow.status == RUNNING, JobRow.heartbeat_at < stale_before)
        abandon = (
            update(JobRow)
            .where(lapsed, JobRow.attempts >= max_attempts)
            .values(status=FAILED, detail=_abandoned_detail(), updated_at=now)
            .returning(JobRow.kind, JobRow.target)
        )
        claim = (
            update(JobRow)
            .where(JobRow.id == self._oldest_claimable(stale_before, max_attempts))
            .where(_claimable(JobRow, stale_before, max_attempts))
            .values(
                status=RUNNING,
                owner=owner,
                attempts=JobRow.attempts + 1,
                heartbeat_at=now,
                updated_at=now,
            )
            .returning(JobRow)
            .execution_options(synchronize_session=False)
        )
        async with self._db.transaction() as session:
            abandoned = (await session.execute(abandon)).all()
            # A passage whose preparation was given up on is failed, not preparing forever.
            failed_passages = [target for kind, target in abandoned if kind == PREPARE_PASSAGE]
            if failed_passages:
                await session.execute(
                    update(PassageRow)
                    .where(PassageRow.id.in_(failed_passages), PassageRow.status == "preparing")
                    .values(status="failed")
                )
            row = (await session.scalars(claim)).one_or_none()
            return None if row is None else row.to_record()

    def _oldest_claimable(self, stale_before: datetime, max_attempts: int) -> ColumnElement[str]:
        # An alias, or the subquery would be correlated to the UPDATE's own table.
        candidate = aliased(JobRow)
        oldest = (
            select(candidate.id)
            .where(_claimable(candidate, stale_before, max_attempts))
            .order_by(candidate.created_at, candidate.id)
            .limit(1)
        )
        if self._db.is_postgresql:
            oldest = oldest.with_for_update(skip_locked=True)
        return oldest.scalar_subquery()

    @retried_write
    async def heartbeat_job(self, job_id: str, *, owner: str, progress: float) -> bool:
        """Record progress (0 to 1) and renew the lease; False if `owner` lost the job."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be between 0 and 1, got {progress}")
        now = utc_now()
        return await self._update_owned(
            job_id, owner, progress=progress, heartbeat_at=now, updated_at=now
        )

    @retried_write
    async def finish_job(
        self, job_id: str, *, owner: str, status: JobOutcome, detail: str | None
    ) -> bool:
        """End a job `owner` runs (`completed`: progress 1); False if it lost the job."""
        check_choice("job outcome", status, _OUTCOMES)
        values: dict[str, object] = {"status": status, "detail": detail, "updated_at": utc_now()}
        if status == COMPLETED:
            values["progress"] = 1.0
        return await self._update_owned(job_id, owner, **values)

    async def _update_owned(self, job_id: str, owner: str, **values: object) -> bool:
        statement = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.owner == owner, JobRow.status == RUNNING)
            .values(**values)
            .returning(JobRow.id)
        )
        async with self._db.connection() as connection:
            return (await connection.execute(statement)).first() is not None


def _claimable(job: type[JobRow], stale_before: datetime, max_attempts: int) -> ColumnElement[bool]:
    """Queued, or running with its lease run out and attempts left."""
    return or_(
        job.status == QUEUED,
        and_(
            job.status == RUNNING,
            job.heartbeat_at < stale_before,
            job.attempts < max_attempts,
        ),
    )


def _abandoned_detail() -> ColumnElement[str]:
    """`abandoned after N attempts`, N being the job's own count (SQL, per row)."""
    return (
        literal("abandoned after ", String)
        + cast(JobRow.attempts, String)
        + literal(" attempts", String)
    )
