"""Store records as wire views (shared by `SESSION_RESTORED` and the REST API)."""

from __future__ import annotations

from readerai.protocol import MessageView, ProgressView
from readerai.store import MessageRecord, ProgressRecord


def message_view(m: MessageRecord) -> MessageView:
    return MessageView(
        id=m.id,
        turn_id=m.turn_id,
        role="student" if m.role == "student" else "tutor",
        text=m.text,
        status=m.status,
        citations=m.citations,
        created_at=m.created_at.isoformat(),
    )


def progress_view(p: ProgressRecord) -> ProgressView:
    return ProgressView(
        passage_id=p.passage_id, position=p.position, updated_at=p.updated_at.isoformat()
    )
