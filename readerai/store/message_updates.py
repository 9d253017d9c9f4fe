"""Batched updates of stored messages: a reply's checkpoints and its final text.

Every turn ends with an update of its reply row, and every reply still streaming
is checkpointed once a second. Written one transaction each, at a few hundred
turns a second they queued behind each other on the database (SQLite has one
writer; `readerai bench questions --rate 500` gave an acknowledgement p99 of
460 ms). Batched by a `GroupCommit`, concurrent updates share one transaction:
one `SELECT … FOR UPDATE` of the rows (row locks on PostgreSQL, so nothing changes
them before the update), then one executemany `UPDATE` in arrival order.

A checkpoint applies only while the reply is `in_progress` (its condition is part
of the statement, so an interruption racing it cannot be overwritten); a final
update applies to any existing row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from readerai.protocol import ReplyStatus
from readerai.store.models import MessageRow

IN_PROGRESS = ReplyStatus.IN_PROGRESS.value


@dataclass(frozen=True)
class MessageUpdate:
    """New text for a message; `status` None makes it a checkpoint (see the module)."""

    message_id: int
    text: str
    status: ReplyStatus | None = None
    citations: tuple[int, ...] = ()


_LOCK_ROWS = (
    select(MessageRow.id, MessageRow.status)
    .where(MessageRow.id.in_(bindparam("ids", expanding=True)))
    .with_for_update()
)
_UPDATE = (
    update(MessageRow)
    .where(
        MessageRow.id == bindparam("m_id"),
        or_(bindparam("m_final", type_=Boolean), MessageRow.status == IN_PROGRESS),
    )
    .values(
        text=bindparam("m_text"),
        status=bindparam("m_status"),
        citations=bindparam("m_citations", type_=MessageRow.__table__.c.citations.type),
        updated_at=bindparam("m_at"),
    )
)


async def apply_message_updates(
    connection: AsyncConnection, batch: list[MessageUpdate], now: datetime
) -> list[bool]:
    """Apply `batch` in order in the connection's transaction; per update, whether
    it was written (False: no such message, or a checkpoint of an ended reply)."""
    ids = sorted({u.message_id for u in batch})
    found = await connection.execute(_LOCK_ROWS, {"ids": ids})
    written, params = plan_message_updates(batch, {row.id: row.status for row in found}, now)
    if params:
        await connection.execute(_UPDATE, params)
    return written


def plan_message_updates(
    batch: list[MessageUpdate], status: dict[int, str], now: datetime
) -> tuple[list[bool], list[dict[str, object]]]:
    """Which updates of `batch` apply, given each message's stored `status` (absent:
    no such message), and the `_UPDATE` parameters of those that do, in order."""
    status = dict(status)
    written: list[bool] = []
    params: list[dict[str, object]] = []
    for u in batch:
        current = status.get(u.message_id)
        final = u.status is not None
        if current is None or (not final and current != IN_PROGRESS):
            written.append(False)
            continue
        new_status = u.status.value if u.status is not None else current
        status[u.message_id] = new_status
        params.append(
            {
                "m_id": u.message_id,
                "m_final": final,
                "m_text": u.text,
                "m_status": new_status,
                "m_citations": list(u.citations),
                "m_at": now,
            }
        )
        written.append(True)
    return written, params
