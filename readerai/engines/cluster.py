"""A cluster-wide limit on concurrent engine calls, shared by every node over the bus.

N nodes each with `READERAI_ENGINE_CONCURRENCY` slots could together exceed what an
upstream allows; with `READERAI_CLUSTER_ENGINE_CONCURRENCY` set, a call also holds
one of that many slots on the bus. Slots expire after the engine timeout, so a node
that dies holding some does not shrink the cluster for long. While the bus is down
only the per-node limit applies (logged), so students keep getting answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from readerai.bus.base import Bus
from readerai.errors import BusUnavailable

log = structlog.get_logger(__name__)

#: Longest pause between two attempts at a free slot (randomised below it).
POLL_SECONDS = 0.05
SLOT_NAME = "engine"


class ClusterLimit:
    """At most `limit` engine calls at once across the cluster (0 = no limit)."""

    def __init__(self, bus: Bus, limit: int, slot_ttl: float) -> None:
        self._bus = bus
        self.limit = limit
        self._ttl = slot_ttl

    @asynccontextmanager
    async def slot(self, on_wait: Callable[[], None]) -> AsyncIterator[None]:
        """Hold a cluster slot for the body; `on_wait()` once if it has to wait."""
        if self.limit <= 0:
            yield
            return
        token = uuid.uuid4().hex
        held = True
        waited = False
        while True:
            try:
                if await self._bus.acquire_slot(SLOT_NAME, token, self.limit, self._ttl):
                    break
            except BusUnavailable:
                log.warning("engine.cluster_limit_skipped", reason="bus unavailable")
                held = False
                break
            if not waited:
                on_wait()
                waited = True
            await asyncio.sleep(random.uniform(POLL_SECONDS / 2, POLL_SECONDS))
        try:
            yield
        finally:
            if held:
                await asyncio.shield(self._release(token))

    async def _release(self, token: str) -> None:
        with contextlib.suppress(BusUnavailable):  # else the slot expires by itself
            await self._bus.release_slot(SLOT_NAME, token)
