"""Jobs: how the background work a request started is getting on."""

from __future__ import annotations

from fastapi import APIRouter

from readerai.api.deps import ServicesDep, TeacherDep
from readerai.api.schemas import ErrorResponse, JobOut
from readerai.errors import NotFound
from readerai.jobs import PREPARE_PASSAGE

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("/{job_id}", responses={404: {"model": ErrorResponse}})
async def get_job(job_id: str, services: ServicesDep, _: TeacherDep) -> JobOut:
    """A job's status and progress (0 to 1), and why it failed if it did."""
    job = await services.store.get_job(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=job.progress,
        detail=job.detail,
        passage_id=job.target if job.kind == PREPARE_PASSAGE else None,
        created_at=job.created_at.isoformat(),
        updated_at=job.updated_at.isoformat(),
    )
