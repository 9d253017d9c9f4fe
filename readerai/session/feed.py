"""The class feed: what a teacher's dashboard shows, live, from every node.

Nodes report what their students do: a connection comes or goes (`online`), the
reading position or passage changes, a question is asked or a reply ends, a reading
aloud is scored (`reading`). Each report
goes to every node (through the bus) and from there to the dashboards of that class
connected there. Position reports are coalesced to at most one per session every
`COALESCE_SECONDS`, so a dashboard is never more than that behind, and never flooded.

Each dashboard has a bounded queue; a dashboard that stops reading loses its oldest
events, never the node's memory.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pydantic_core

#: Most often one session's position reaches the dashboards.
COALESCE_SECONDS = 0.5
#: Events a dashboard may fall behind by before its oldest are dropped.
QUEUE_LIMIT = 512


class FeedQueue:
    """One dashboard's events: (kind, JSON data); `None` ends the feed."""

    def __init__(self) -> None:
        self._items: deque[tuple[str, str] | None] = deque()
        self._ready = asyncio.Event()

    def put(self, item: tuple[str, str] | None) -> None:
        if len(self._items) >= QUEUE_LIMIT:
            self._items.popleft()
        self._items.append(item)
        self._ready.set()

    async def get(self) -> tuple[str, str] | None:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class ClassFeed:
    """Dashboards of this node, by class, and the reports that reach them."""

    def __init__(self) -> None:
        self._dashboards: defaultdict[str, set[FeedQueue]] = defaultdict(set)
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._last_sent: dict[str, float] = {}
        #: Set by the node: send (class id, encoded report) to every node.
        self.send: Callable[[str, str], None] | None = None
        self._closed = False

    # -- dashboards -----------------------------------------------------------------

    @contextmanager
    def subscribe(self, class_id: str) -> Iterator[FeedQueue]:
        queue = FeedQueue()
        if self._closed:
            queue.put(None)
        self._dashboards[class_id].add(queue)
        try:
            yield queue
        finally:
            members = self._dashboards.get(class_id)
            if members is not None:
                members.discard(queue)
                if not members:
                    del self._dashboards[class_id]

    def deliver(self, class_id: str, report: str) -> None:
        """A report from any node (this one included) for the class's dashboards."""
        queues = self._dashboards.get(class_id)
        if not queues:
            return
        try:
            kind, data = pydantic_core.from_json(report)
        except (ValueError, TypeError):
            return
        item = (str(kind), pydantic_core.to_json(data).decode())
        for queue in queues:
            queue.put(item)

    def close(self) -> None:
        """End every dashboard stream (shutdown) and stop pending timers."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for queues in self._dashboards.values():
            for queue in queues:
                queue.put(None)

    # -- reports --------------------------------------------------------------------

    def student(
        self,
        class_id: str | None,
        user_id: str | None,
        session_id: str,
        *,
        coalesce: bool = False,
        **changes: Any,
    ) -> None:
        """Report that a student's state changed (only the fields given)."""
        if class_id is None or user_id is None or self._closed:
            return
        data = {
            "userId": user_id,
            "sessionId": session_id,
            "lastActivity": datetime.now(UTC).isoformat(),
            **changes,
        }
        if not coalesce:
            self._flush(session_id)
            self._emit(class_id, "student", data)
            return
        _, pending = self._pending.get(session_id, (class_id, {}))
        self._pending[session_id] = (class_id, {**pending, **data})
        loop = asyncio.get_running_loop()
        wait = self._last_sent.get(session_id, 0.0) + COALESCE_SECONDS - loop.time()
        if wait <= 0:
            self._flush(session_id)
        elif session_id not in self._timers:
            self._timers[session_id] = loop.call_later(wait, self._flush, session_id)

    def message(
        self,
        class_id: str | None,
        user_id: str | None,
        session_id: str,
        **fields: Any,
    ) -> None:
        """Report a question or a finished reply of a student."""
        if class_id is None or user_id is None or self._closed:
            return
        self._emit(class_id, "message", {"userId": user_id, "sessionId": session_id, **fields})

    def reading(
        self,
        class_id: str | None,
        user_id: str | None,
        session_id: str,
        **summary: Any,
    ) -> None:
        """Report a reading aloud that was scored and stored (its summary)."""
        if class_id is None or user_id is None or self._closed:
            return
        self._emit(class_id, "reading", {"userId": user_id, "sessionId": session_id, **summary})

    def forget(self, session_id: str) -> None:
        """The session left this node: send what is pending and drop its state."""
        self._flush(session_id)
        self._last_sent.pop(session_id, None)

    def _flush(self, session_id: str) -> None:
        timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        pending = self._pending.pop(session_id, None)
        if pending is not None:
            class_id, data = pending
            self._last_sent[session_id] = asyncio.get_running_loop().time()
            self._emit(class_id, "student", data)

    def _emit(self, class_id: str, kind: str, data: dict[str, Any]) -> None:
        report = pydantic_core.to_json([kind, data]).decode()
        if self.send is not None:
            self.send(class_id, report)
        else:
            self.deliver(class_id, report)
