"""The hot path's writes on SQLite, each batch in one trip to the connection's thread.

Every turn stores its question (and its reply's `in_progress` row) before it is
acknowledged, and its reply when it ends; replies streaming are checkpointed.
Through SQLAlchemy on aiosqlite the question's write took twelve trips between the
event loop and the connection's thread; with replies streaming on the same loop
each trip waited its turn, and the acknowledgement of an idle node took 4-11 ms
where the statements take 0.2 ms (`readerai bench stream`, per-stage trace).
`SqliteMessages` does the same statements on the thread in one call each (see
`Database.in_sqlite_thread`).

Same statements, same rows as on PostgreSQL: for new messages the sessions'
`updated_at` is renewed (which is also the existence check), then each message is
inserted in order, so ids increase with arrival order; for updates the rows'
statuses are read, `plan_message_updates` decides which apply, and those are
written in order under the same condition as `message_updates._UPDATE`. Values are
converted by SQLAlchemy's own column types for this dialect (timestamps stored as
naive UTC, citations as JSON), so rows read back exactly as the ORM wrote them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Dialect

from readerai.store.base import MessageRecord
from readerai.store.message_updates import IN_PROGRESS, MessageUpdate, plan_message_updates
from readerai.store.models import MessageRow, SessionRow

#: The columns of a new message, in the order of `_INSERT`.
_COLUMNS = (
    *("session_id", "turn_id", "role", "text", "status"),
    *("citations", "created_at", "updated_at"),
)
_INSERT = (
    f"INSERT INTO {MessageRow.__tablename__} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_TABLE = MessageRow.__tablename__
#: `message_updates._UPDATE` for SQLite: a checkpoint only while `in_progress`.
_UPDATE = (
    f"UPDATE {_TABLE} SET text = ?, status = ?, citations = ?, updated_at = ? "
    f"WHERE id = ? AND (? OR status = '{IN_PROGRESS}')"
)

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Written:
    """What one batch wrote: the sessions that exist, and the new ids in order."""

    existing: set[str]
    ids: list[int]


class SqliteMessages:
    """Converts and writes batches of messages on a SQLite connection's thread."""

    def __init__(self, dialect: Dialect) -> None:
        columns = MessageRow.__table__.c
        self._processors: list[Processor | None] = [
            columns[name].type.bind_processor(dialect) for name in _COLUMNS
        ]
        self._stamp: Processor | None = SessionRow.__table__.c.updated_at.type.bind_processor(
            dialect
        )
        self._citations: Processor | None = columns.citations.type.bind_processor(dialect)
        self._updated_at: Processor | None = columns.updated_at.type.bind_processor(dialect)

    def updates(
        self, batch: list[MessageUpdate], now: datetime
    ) -> Callable[[sqlite3.Connection], list[bool]]:
        """The write of a batch of updates, to run on the connection's thread in a
        transaction; per update, whether it applied (see `plan_message_updates`)."""
        ids = sorted({u.message_id for u in batch})
        select = f"SELECT id, status FROM {_TABLE} WHERE id IN ({', '.join('?' for _ in ids)})"
        stamp = self._updated_at(now) if self._updated_at else now
        citations = self._citations

        def write(connection: sqlite3.Connection) -> list[bool]:
            status = {row[0]: row[1] for row in connection.execute(select, ids)}
            written, params = plan_message_updates(batch, status, now)
            if params:
                connection.executemany(
                    _UPDATE,
                    [
                        (
                            p["m_text"],
                            p["m_status"],
                            p["m_citations"] if citations is None else citations(p["m_citations"]),
                            stamp,
                            p["m_id"],
                            p["m_final"],
                        )
                        for p in params
                    ],
                )
            return written

        return write

    def inserts(
        self, batch: Sequence[MessageRecord], written_at: datetime
    ) -> Callable[[sqlite3.Connection], Written]:
        """The write of a batch of new messages, to run on the connection's thread.

        Values are converted here, on the event loop, so that the thread only runs
        SQLite; the caller runs it in a transaction.
        """
        rows = [self._row(m) for m in batch]
        stamp = self._stamp(written_at) if self._stamp else written_at
        session_ids = sorted({m.session_id for m in batch})
        touch = (
            f"UPDATE {SessionRow.__tablename__} SET updated_at = ? "
            f"WHERE id IN ({', '.join('?' for _ in session_ids)}) RETURNING id"
        )

        def write(connection: sqlite3.Connection) -> Written:
            existing = {row[0] for row in connection.execute(touch, (stamp, *session_ids))}
            ids: list[int] = []
            for message, row in zip(batch, rows, strict=True):
                if message.session_id in existing:
                    cursor = connection.execute(_INSERT, row)
                    ids.append(int(cursor.lastrowid or 0))
            return Written(existing, ids)

        return write

    def _row(self, message: MessageRecord) -> tuple[Any, ...]:
        values = (
            message.session_id,
            message.turn_id,
            message.role,
            message.text,
            message.status.value,
            message.citations,
            message.created_at,
            message.updated_at,
        )
        return tuple(
            value if process is None else process(value)
            for value, process in zip(values, self._processors, strict=True)
        )
