"""Coalesced reading progress: many updates a second, at most one write per interval.

The latest position per passage is held in memory and written by one flush task per
session (owned by the supervisor); `flush()` writes what is pending at once and is
awaited when the session leaves the node, so an acknowledged position is not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from readerai.errors import ReaderAIError
from readerai.protocol import ProgressView
from readerai.session.views import progress_view
from readerai.store import ProgressRecord, Store

log = structlog.get_logger(__name__)

StartTask = Callable[[Coroutine[Any, Any, None]], object]


class ProgressBuffer:
    """Latest unsaved reading position per passage of one session."""

    def __init__(self, store: Store, session_id: str, interval: float, start: StartTask) -> None:
        self._store = store
        self._session_id = session_id
        self._interval = interval
        self._start = start
        self._pending: dict[str, tuple[int, datetime]] = {}
        self._flushing = False

    def update(self, passage_id: str, position: int) -> None:
        self._pending[passage_id] = (position, datetime.now(UTC))
        self._schedule()

    def _schedule(self) -> None:
        if not self._flushing:
            self._flushing = True
            self._start(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await anyio.sleep(self._interval)
            await self.flush()
        finally:
            self._flushing = False
        if self._pending:
            self._schedule()  # updates that arrived during the write, or a failed write

    async def flush(self) -> None:
        """Write every pending position now; keep any that failed for the next try."""
        pending, self._pending = self._pending, {}
        for passage_id, (position, _) in pending.items():
            try:
                await self._store.save_progress(self._session_id, passage_id, position)
            except ReaderAIError as exc:
                self._pending.setdefault(passage_id, pending[passage_id])
                log.warning("progress.flush_failed", session_id=self._session_id, error=exc.code)

    def merged(self, stored: list[ProgressRecord]) -> list[ProgressView]:
        """Stored positions overlaid with newer unsaved ones."""
        views = {r.passage_id: progress_view(r) for r in stored}
        for passage_id, (position, at) in self._pending.items():
            views[passage_id] = ProgressView(
                passage_id=passage_id, position=position, updated_at=at.isoformat()
            )
        return list(views.values())
