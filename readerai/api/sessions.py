"""Sessions: create, read, page through history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status

from readerai.api.deps import ServicesDep
from readerai.api.schemas import (
    ErrorResponse,
    MessagePage,
    NoticeOut,
    SessionDetail,
    SessionIn,
    SessionOut,
    TextIn,
)
from readerai.errors import NotFound
from readerai.protocol import Notice
from readerai.services import NodeServices
from readerai.session.views import message_view, progress_view
from readerai.store import SessionRecord

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


def _out(s: SessionRecord) -> SessionOut:
    return SessionOut(
        id=s.id, passage_id=s.passage_id, class_id=s.class_id, created_at=s.created_at.isoformat()
    )


async def _settle_replies(services: NodeServices, session_id: str) -> None:
    """Replies whose node stopped checkpointing them are shown as `interrupted`."""
    cutoff = datetime.now(UTC) - timedelta(seconds=services.settings.turn_lease_seconds)
    await services.store.interrupt_stale_replies(session_id, older_than=cutoff)


@router.post("", status_code=status.HTTP_201_CREATED, responses={404: {"model": ErrorResponse}})
async def create_session(services: ServicesDep, body: SessionIn | None = None) -> SessionOut:
    """Start a conversation, optionally about a passage; connect to `/ws/{id}` next."""
    passage_id = body.passage_id if body else None
    if passage_id is not None and await services.catalog.get(passage_id) is None:
        raise NotFound(f"no passage {passage_id!r}")
    class_id = body.class_id if body else None
    return _out(await services.store.create_session(passage_id=passage_id, class_id=class_id))


@router.get("/{session_id}", responses={404: {"model": ErrorResponse}})
async def get_session(session_id: str, services: ServicesDep) -> SessionDetail:
    """The session, its reading progress and its last messages (oldest first)."""
    record = await services.store.get_session(session_id)
    if record is None:
        raise NotFound(f"no session {session_id[:64]!r}")
    await _settle_replies(services, session_id)
    messages = await services.store.recent_messages(
        session_id, limit=services.settings.history_limit
    )
    progress = await services.store.get_progress(session_id)
    return SessionDetail(
        **_out(record).model_dump(),
        progress=[progress_view(p) for p in progress],
        messages=[message_view(m) for m in messages],
    )


@router.get("/{session_id}/messages", responses={404: {"model": ErrorResponse}})
async def list_messages(
    session_id: str,
    services: ServicesDep,
    before: Annotated[int | None, Query(ge=1, description="Messages with a smaller id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    """Older history, a page at a time, oldest first."""
    if await services.store.get_session(session_id) is None:
        raise NotFound(f"no session {session_id[:64]!r}")
    await _settle_replies(services, session_id)
    messages = await services.store.recent_messages(session_id, limit=limit, before_id=before)
    next_before = messages[0].id if len(messages) == limit else None
    return MessagePage(messages=[message_view(m) for m in messages], next_before=next_before)


@router.post(
    "/{session_id}/notices",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def send_notice(session_id: str, body: TextIn, services: ServicesDep) -> NoticeOut:
    """Send `NOTICE` to the session on whichever nodes it is connected (through any node).

    503 `bus_unavailable` when the bus is down: the notice may not have arrived.
    """
    if await services.store.get_session(session_id) is None:
        raise NotFound(f"no session {session_id[:64]!r}")
    notice = Notice(
        notice_id=uuid.uuid4().hex, text=body.text, sent_at=datetime.now(UTC).isoformat()
    )
    nodes = await services.router.send_to_session(session_id, notice)
    return NoticeOut(notice_id=notice.notice_id, sent_at=notice.sent_at, nodes=nodes)
