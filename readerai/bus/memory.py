"""The in-process bus (`memory://`): one node, no network.

Everything a single process needs from the bus, kept in dictionaries. It has no
resumable streams: with one process, a client always reconnects to the node that
runs its reply.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from readerai.bus.base import ALL_NODES, StreamEntry
from readerai.errors import Unsupported


class MemoryBus:
    """The bus of a deployment that is one process."""

    def __init__(self) -> None:
        self.node_id = uuid.uuid4().hex[:12]
        self._handler: Callable[[bytes], None] | None = None
        self._sessions: set[str] = set()
        self._leases: dict[str, tuple[str, float]] = {}
        self._slots: dict[str, dict[str, float]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._sessions.clear()

    @property
    def healthy(self) -> bool:
        return True

    @property
    def shared(self) -> bool:
        return False

    def on_message(self, handler: Callable[[bytes], None]) -> None:
        self._handler = handler

    def on_reconnect(self, handler: Callable[[], Awaitable[None]]) -> None:
        return None  # never disconnected

    async def publish(self, to: str, payload: bytes) -> None:
        if to in (ALL_NODES, self.node_id) and self._handler is not None:
            self._handler(payload)

    async def add_presence(self, session_id: str) -> None:
        self._sessions.add(session_id)

    async def remove_presence(self, session_id: str) -> None:
        self._sessions.discard(session_id)

    async def presence(self, session_id: str) -> set[str]:
        return {self.node_id} if session_id in self._sessions else set()

    async def node_alive(self, node_id: str) -> bool:
        return node_id == self.node_id

    @property
    def has_streams(self) -> bool:
        return False

    async def append(self, key: str, payloads: list[bytes], *, max_len: int, ttl: float) -> None:
        raise Unsupported("the in-process bus keeps no streams")

    async def read(self, key: str, after: str, *, block: float, count: int) -> list[StreamEntry]:
        raise Unsupported("the in-process bus keeps no streams")

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> str | None:
        holder = self._leases.get(key)
        if holder is not None and holder[1] > time.monotonic() and holder[0] != owner:
            return holder[0]
        self._leases[key] = (owner, time.monotonic() + ttl)
        return None

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        holder = self._leases.get(key)
        if holder is None or holder[0] != owner:
            return False
        self._leases[key] = (owner, time.monotonic() + ttl)
        return True

    async def release_lease(self, key: str, owner: str) -> None:
        holder = self._leases.get(key)
        if holder is not None and holder[0] == owner:
            del self._leases[key]

    async def take_lease(self, key: str, owner: str, ttl: float) -> None:
        self._leases[key] = (owner, time.monotonic() + ttl)

    async def acquire_slot(self, name: str, token: str, limit: int, ttl: float) -> bool:
        now = time.monotonic()
        held = {t: end for t, end in self._slots.get(name, {}).items() if end > now}
        if len(held) >= limit:
            self._slots[name] = held
            return False
        held[token] = now + ttl
        self._slots[name] = held
        return True

    async def release_slot(self, name: str, token: str) -> None:
        self._slots.get(name, {}).pop(token, None)
