"""Coalesced reading progress: many updates a second, one batched write per interval.

Students report where they are reading about once a second each. The node keeps the
latest position per (session, passage) in memory and one flush task writes every
pending position together, in a few upsert statements, once per interval: a
thousand students cost a handful of statements a second instead of a task, a timer
and a transaction each. `flush(session_id)` writes one session's positions at once
and is awaited when the session leaves the node; `flush()` writes everything (on
shutdown), so an accepted position is not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from readerai.errors import NotFound, ReaderAIError
from readerai.protocol import ProgressView
from readerai.session.views import progress_view
from readerai.store import ProgressRecord, Store

log = structlog.get_logger(__name__)

StartTask = Callable[[Coroutine[Any, Any, None]], object]
#: passage id -> (position, when it was reported)
Positions = dict[str, tuple[int, datetime]]


class ProgressWriter:
    """Latest unsaved reading positions of every session on this node."""

    def __init__(self, store: Store, interval: float, start: StartTask) -> None:
        self._store = store
        self._interval = interval
        self._start = start
        self._pending: dict[str, Positions] = {}
        self._flushing = False

    def update(self, session_id: str, passage_id: str, position: int) -> None:
        self._pending.setdefault(session_id, {})[passage_id] = (position, datetime.now(UTC))
        if not self._flushing:
            self._flushing = True
            self._start(self._flush_later())

    def pending(self, session_id: str) -> Positions:
        return self._pending.get(session_id, {})

    def session(self, session_id: str) -> SessionProgress:
        """The view of one session's progress that its live session keeps."""
        return SessionProgress(self, session_id)

    async def _flush_later(self) -> None:
        try:
            await anyio.sleep(self._interval)
            await self.flush()
        finally:
            self._flushing = False
        if self._pending and not self._flushing:
            self._flushing = True  # updates that arrived during the write, or failed ones
            self._start(self._flush_later())

    async def flush(self, session_id: str | None = None) -> None:
        """Write the pending positions of `session_id` (all if None) now.

        Positions whose write failed stay pending for the next flush, unless newer
        ones arrived meanwhile; those of a session that no longer exists are dropped.
        """
        if session_id is None:
            taken, self._pending = self._pending, {}
        else:
            mine = self._pending.pop(session_id, None)
            taken = {session_id: mine} if mine else {}
        rows = [(s, p, pos) for s, positions in taken.items() for p, (pos, _) in positions.items()]
        if not rows:
            return
        try:
            outcomes = await self._store.save_progress_many(rows)
        except ReaderAIError as exc:
            outcomes = [exc] * len(rows)
        for (sid, passage_id, _), outcome in zip(rows, outcomes, strict=True):
            if outcome is None or isinstance(outcome, NotFound):
                continue
            self._pending.setdefault(sid, {}).setdefault(passage_id, taken[sid][passage_id])
            log.warning("progress.flush_failed", session_id=sid, error=_code(outcome))


class SessionProgress:
    """One session's view of the node's `ProgressWriter`."""

    def __init__(self, writer: ProgressWriter, session_id: str) -> None:
        self._writer = writer
        self._session_id = session_id

    def update(self, passage_id: str, position: int) -> None:
        self._writer.update(self._session_id, passage_id, position)

    async def flush(self) -> None:
        await self._writer.flush(self._session_id)

    def merged(self, stored: list[ProgressRecord]) -> list[ProgressView]:
        """Stored positions overlaid with newer unsaved ones."""
        views = {r.passage_id: progress_view(r) for r in stored}
        for passage_id, (position, at) in self._writer.pending(self._session_id).items():
            views[passage_id] = ProgressView(
                passage_id=passage_id, position=position, updated_at=at.isoformat()
            )
        return list(views.values())


def _code(error: Exception) -> str:
    return error.code if isinstance(error, ReaderAIError) else type(error).__name__
