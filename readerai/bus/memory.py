"""The in-process bus (`memory://`): one node, no network."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class MemoryBus:
    """Channels in a dict; each subscriber has a bounded queue that drops its oldest."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._channels: defaultdict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._channels.clear()

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in self._channels.get(channel, ()):
            if queue.full():
                queue.get_nowait()  # drop the oldest: a slow subscriber must not grow
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_size)
        self._channels[channel].add(queue)
        try:
            yield _drain(queue)
        finally:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._channels[channel]


async def _drain(queue: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        yield await queue.get()
