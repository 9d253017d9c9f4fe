"""The `Bus` interface: publish/subscribe on named channels across nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Bus(Protocol):
    """Delivers each message published on a channel to every current subscriber.

    Delivery is at most once per subscriber; a subscriber that falls behind loses its
    oldest messages (the bus carries ephemeral fan-out, the store keeps what matters).
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Subscribe for the duration of the `async with` block."""
        ...
