"""A FIFO limit on concurrent engine calls that tells each waiter its queue position.

Invariants: at most `capacity` slots are held; waiters are served in arrival order;
a waiter cancelled while queued leaves the queue (and the others move up); a slot
granted to a waiter that was cancelled at the same moment is handed on, never leaked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from readerai.errors import EngineBusy

PositionCallback = Callable[[int], None]


@dataclass(eq=False)
class _Waiter:
    on_position: PositionCallback
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class EngineLimiter:
    """Bounded concurrency for engine calls with visible queue positions."""

    def __init__(self, capacity: int, queue_limit: int) -> None:
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.active = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self, on_position: PositionCallback) -> AsyncIterator[None]:
        """Hold one slot for the body; while queued, `on_position(n)` reports n (1 = next)."""
        await self._acquire(on_position)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, on_position: PositionCallback) -> None:
        if self.active < self.capacity and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.queue_limit:
            raise EngineBusy(f"{len(self._waiters)} questions are already waiting; try again soon")
        waiter = _Waiter(on_position)
        self._waiters.append(waiter)
        on_position(len(self._waiters))
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release()  # granted and cancelled at once: pass the slot on
            else:
                self._waiters.remove(waiter)
                self._announce_positions()
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.granted.done():
                waiter.granted.set_result(None)  # the slot moves to it; `active` unchanged
                self._announce_positions()
                return
        self.active -= 1

    def _announce_positions(self) -> None:
        for index, waiter in enumerate(self._waiters, start=1):
            waiter.on_position(index)
