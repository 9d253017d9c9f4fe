"""Sessions: create, read, page through history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status

from readerai.api.deps import PrincipalDep, ServicesDep, TeacherDep
from readerai.api.schemas import (
    MAX_STORED_INT,
    ErrorResponse,
    MessagePage,
    NoticeOut,
    SessionDetail,
    SessionIn,
    SessionOut,
    TextIn,
)
from readerai.auth.principal import Role
from readerai.errors import Forbidden, NotFound
from readerai.protocol import Notice
from readerai.services import NodeServices
from readerai.session.views import message_view, progress_view
from readerai.store import SessionRecord

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


def _out(s: SessionRecord) -> SessionOut:
    return SessionOut(
        id=s.id,
        passage_id=s.passage_id,
        class_id=s.class_id,
        user_id=s.user_id,
        created_at=s.created_at.isoformat(),
    )


async def _settle_replies(services: NodeServices, session_id: str) -> None:
    """Replies whose node stopped checkpointing them are shown as `interrupted`."""
    cutoff = datetime.now(UTC) - timedelta(seconds=services.settings.turn_lease_seconds)
    await services.store.interrupt_stale_replies(session_id, older_than=cutoff)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)
async def create_session(
    services: ServicesDep, principal: PrincipalDep, body: SessionIn | None = None
) -> SessionOut:
    """Start a conversation, optionally about a passage; connect to `/ws/{id}` next.

    A student's session is theirs, in their class (the token's, or `classId` if they
    are in it). A teacher or admin may start one for a student (`userId`).
    """
    body = body or SessionIn()
    if body.passage_id is not None and await services.catalog.get(body.passage_id) is None:
        raise NotFound(f"no passage {body.passage_id!r}")
    user_id, class_id = body.user_id, body.class_id
    if principal.role is Role.STUDENT:
        if user_id not in (None, principal.user_id):
            raise Forbidden("students start sessions for themselves only")
        user_id = principal.user_id
        if class_id is None:
            class_id = principal.class_id
        elif class_id != principal.class_id:
            await services.access.in_class(principal, class_id)
    else:
        if user_id is not None:
            await services.access.student_of(principal, user_id)
        if class_id is not None and principal.role is Role.TEACHER:
            await services.access.teaching(principal, class_id)
    record = await services.store.create_session(
        passage_id=body.passage_id, class_id=class_id, user_id=user_id
    )
    return _out(record)


@router.get("", responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}})
async def list_sessions(
    services: ServicesDep,
    principal: PrincipalDep,
    user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[SessionOut]:
    """Sessions, newest first: a student's own, a teacher's students', or anyone's."""
    if principal.role is Role.STUDENT:
        user_ids: list[str] | None = [principal.user_id]
        if user_id not in (None, principal.user_id):
            raise Forbidden("students see their own sessions only")
    elif user_id is not None:
        await services.access.student_of(principal, user_id)
        user_ids = [user_id]
    elif principal.role is Role.TEACHER:
        user_ids = []
        for taught in await services.store.list_classes(teacher_id=principal.user_id):
            user_ids += [s.id for s in await services.store.class_students(taught.id)]
    else:
        user_ids = None
    records = await services.store.list_sessions(user_ids=user_ids, limit=limit)
    return [_out(r) for r in records]


@router.get("/{session_id}", responses={404: {"model": ErrorResponse}})
async def get_session(
    session_id: str, services: ServicesDep, principal: PrincipalDep
) -> SessionDetail:
    """The session, its reading progress and its last messages (oldest first)."""
    record = await services.access.session(principal, session_id)
    await _settle_replies(services, session_id)
    messages, progress = await services.store.restore_reads(
        session_id, limit=services.settings.history_limit
    )
    return SessionDetail(
        **_out(record).model_dump(),
        progress=[progress_view(p) for p in progress],
        messages=[message_view(m) for m in messages],
    )


@router.get("/{session_id}/messages", responses={404: {"model": ErrorResponse}})
async def list_messages(
    session_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_STORED_INT, description="Messages with a smaller id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    """Older history, a page at a time, oldest first."""
    await services.access.session(principal, session_id)
    await _settle_replies(services, session_id)
    messages = await services.store.recent_messages(session_id, limit=limit, before_id=before)
    next_before = messages[0].id if len(messages) == limit else None
    return MessagePage(messages=[message_view(m) for m in messages], next_before=next_before)


@router.post(
    "/{session_id}/notices",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def send_notice(
    session_id: str, body: TextIn, services: ServicesDep, principal: TeacherDep
) -> NoticeOut:
    """Send `NOTICE` to the session on whichever nodes it is connected (through any node).

    503 `bus_unavailable` when the bus is down: the notice may not have arrived.
    """
    await services.access.session(principal, session_id)
    notice = Notice(
        notice_id=uuid.uuid4().hex, text=body.text, sent_at=datetime.now(UTC).isoformat()
    )
    nodes = await services.router.send_to_session(session_id, notice)
    return NoticeOut(notice_id=notice.notice_id, sent_at=notice.sent_at, nodes=nodes)
