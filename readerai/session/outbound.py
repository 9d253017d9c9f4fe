"""The bounded queue of events waiting to be written to one client.

Overflow policy (per kind of event): when the queue is full, the oldest ephemeral
event (`ServerEvent.EPHEMERAL`: queue positions, pongs) is dropped to make room; if
there is none, the client has fallen behind on events that must not be lost, and
`put` raises `SlowConsumer` so the connection is closed (4008). Memory per client is
therefore bounded by `maxsize` events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from readerai.errors import SlowConsumer
from readerai.protocol import ReplyAudio, ResponseDelta, ResponseQueued, ServerEvent


class OutboundQueue:
    """FIFO of server events for one connection; one consumer (the writer)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[ServerEvent] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: ServerEvent) -> None:
        """Queue `event` without waiting; raise `SlowConsumer` if it cannot be kept."""
        if len(self._items) >= self.maxsize and not self._drop_oldest_ephemeral():
            if event.EPHEMERAL:
                return  # nothing essential is lost by dropping the newcomer
            raise SlowConsumer(f"client fell {len(self._items)} events behind")
        self._items.append(event)
        self._ready.set()

    def purge_turn(self, turn_id: str) -> int:
        """Drop queued deltas, audio and queue positions of `turn_id` (it was cancelled)."""
        kept = deque(
            e
            for e in self._items
            if not (
                isinstance(e, ResponseDelta | ResponseQueued | ReplyAudio) and e.turn_id == turn_id
            )
        )
        dropped = len(self._items) - len(kept)
        self._items = kept
        return dropped

    def close(self) -> None:
        """No more events: `get` returns None once the queued ones are taken."""
        self._closed = True
        self._ready.set()

    async def get(self) -> ServerEvent | None:
        """The next event, waiting until there is one; None once closed and drained."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def take_while(self, wanted: Callable[[ServerEvent], bool], limit: int) -> list[ServerEvent]:
        """Up to `limit` queued events from the front, while `wanted` holds; no waiting."""
        taken: list[ServerEvent] = []
        items = self._items
        while items and len(taken) < limit and wanted(items[0]):
            taken.append(items.popleft())
        return taken

    def _drop_oldest_ephemeral(self) -> bool:
        for index, event in enumerate(self._items):
            if event.EPHEMERAL:
                del self._items[index]
                return True
        return False
