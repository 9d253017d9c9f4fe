"""`JobWorker`: the loop of one node that claims jobs from the store and runs them.

Invariants:
- the loop is one task owned by the node's `TaskSupervisor`; it runs one job at a
  time (bounded work per node), and a job's handler and its heartbeat are siblings
  in one task group: neither outlives the other;
- only the worker that still owns a job writes its heartbeat and its end; one that
  learns from a heartbeat that it lost the job (its lease ran out and another node
  took it over) cancels its handler and writes nothing more;
- `close()` cancels the job in flight without ending it: its heartbeat stops, its
  lease runs out, and a node claims it again (up to `max_attempts`, then the store
  marks it `failed`). So a handler may run again from the start after any await:
  its steps must be safe to repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import structlog

from readerai.errors import ReaderAIError
from readerai.store import JobOutcome, JobRecord, Store
from readerai.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

#: Records a job's progress, 0 to 1; the heartbeat writes the latest value.
ProgressReporter = Callable[[float], None]
#: Does the work of one kind of job; raises `JobFailed` (or anything) to fail it.
Handler = Callable[[JobRecord, ProgressReporter], Awaitable[None]]
#: How long `close()` waits for a cancelled job to unwind (a TTS thread to return).
CLOSE_GRACE = 10.0
#: Longest `detail` stored for a failed job.
MAX_DETAIL = 500


class JobFailed(ReaderAIError):
    """A handler's way to fail its job with a reason shown to people (`detail`)."""

    code = "job_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Progress:
    """The progress of the job in flight, and whether its worker lost it."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.lost = False

    def report(self, value: float) -> None:
        self.value = min(1.0, max(0.0, value))


class JobWorker:
    """Claims jobs (`store.claim_job`) and runs `handlers[job.kind]` on them, one at a time."""

    def __init__(
        self,
        store: Store,
        supervisor: TaskSupervisor,
        *,
        owner: str,
        handlers: dict[str, Handler],
        poll_seconds: float = 1.0,
        heartbeat_seconds: float = 2.0,
        stale_seconds: float = 15.0,
        max_attempts: int = 3,
    ) -> None:
        if not 0 < heartbeat_seconds < stale_seconds:
            raise ValueError("heartbeat_seconds must be positive and below stale_seconds")
        if poll_seconds <= 0 or max_attempts < 1:
            raise ValueError("poll_seconds must be positive and max_attempts at least 1")
        self.owner = owner
        self._store = store
        self._supervisor = supervisor
        self._handlers = dict(handlers)
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._stale = timedelta(seconds=stale_seconds)
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once); it runs until `close()`."""
        if self._task is None:
            self._task = self._supervisor.start(self._run(), name="jobs.worker", owner=self.owner)

    def kick(self) -> None:
        """Look for a job now rather than at the next poll (a job was just queued)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop the loop and cancel the job in flight (another node will resume it)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task}, timeout=CLOSE_GRACE)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before claiming: a kick from now on is not missed
            job = await self._claim()
            if job is None:
                with anyio.move_on_after(self._poll_seconds):
                    await self._wake.wait()
                continue
            await self._execute(job)

    async def _claim(self) -> JobRecord | None:
        stale_before = datetime.now(UTC) - self._stale
        try:
            return await self._store.claim_job(
                owner=self.owner, stale_before=stale_before, max_attempts=self._max_attempts
            )
        except Exception as exc:  # noqa: BLE001 - the loop outlives a database outage
            log.warning("job.claim_failed", error=repr(exc))
            return None

    async def _execute(self, job: JobRecord) -> None:
        log.info("job.started", job_id=job.id, kind=job.kind, attempt=job.attempts)
        progress = _Progress(job.progress)
        outcome: tuple[JobOutcome, str | None] | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat, job.id, progress, tg.cancel_scope)
            outcome = await self._outcome(job, progress)
            tg.cancel_scope.cancel()
        if outcome is None or progress.lost:
            log.warning("job.lost", job_id=job.id, kind=job.kind)
            return
        status, detail = outcome
        try:
            finished = await self._store.finish_job(
                job.id, owner=self.owner, status=status, detail=detail
            )
        except Exception as exc:  # noqa: BLE001 - its lease runs out; it will be run again
            log.error("job.finish_failed", job_id=job.id, error=repr(exc))
            return
        if finished:
            log.info("job.finished", job_id=job.id, kind=job.kind, status=status, detail=detail)
        else:
            log.warning("job.lost", job_id=job.id, kind=job.kind)

    async def _outcome(self, job: JobRecord, progress: _Progress) -> tuple[JobOutcome, str | None]:
        handler = self._handlers.get(job.kind)
        if handler is None:
            return "failed", f"no handler for jobs of kind {job.kind!r}"
        try:
            await handler(job, progress.report)
        except JobFailed as exc:
            return "failed", exc.reason[:MAX_DETAIL]
        except Exception as exc:
            log.exception("job.crashed", job_id=job.id, kind=job.kind)
            return "failed", (str(exc) or type(exc).__name__)[:MAX_DETAIL]
        return "completed", None

    async def _heartbeat(self, job_id: str, progress: _Progress, scope: anyio.CancelScope) -> None:
        """Renew the job's lease with its progress; cancel `scope` once the job is lost."""
        while True:
            await anyio.sleep(self._heartbeat_seconds)
            try:
                owned = await self._store.heartbeat_job(
                    job_id, owner=self.owner, progress=progress.value
                )
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                log.warning("job.heartbeat_failed", job_id=job_id, error=repr(exc))
                continue
            if not owned:
                progress.lost = True
                scope.cancel()
                return
