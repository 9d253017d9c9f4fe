"""Checkpoints of every reply streaming on this node, written together once a second.

A reply `in_progress` is the node's claim on it: each checkpoint saves the text so
far and renews `messages.updated_at` (and the session's turn lease), and a reply not
checkpointed for the lease time is taken for dead by any node. One loop per node
does it for all replies instead of a task per turn: most replies end within the
first second and then cost nothing, and the writes of one round share the store's
group commit. (A task started and cancelled per turn left cyclic garbage whose
collection paused the loop 30-100 ms at 1,000 questions/s.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from readerai.bus.base import Bus
from readerai.errors import BusUnavailable, ReaderAIError
from readerai.session.live import LiveSession
from readerai.session.turn import Turn
from readerai.store import Store

log = structlog.get_logger(__name__)

#: How often a streaming reply is written and its lease renewed.
CHECKPOINT_SECONDS = 1.0
#: How often the loop looks for replies due (a reply's checkpoint is at most this late).
TICK_SECONDS = 0.2

StartTask = Callable[[Coroutine[Any, Any, None]], object]


class ReplyCheckpoints:
    """The replies streaming here; a loop checkpoints each one every second."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        lease_key: Callable[[str], str],
        lease_seconds: float,
        start: StartTask,
    ) -> None:
        self._store = store
        self._bus = bus
        self._lease_key = lease_key
        self._lease_seconds = lease_seconds
        self._start = start
        #: Each reply streaming here: its session and when its next checkpoint is due.
        self._turns: dict[Turn, tuple[LiveSession, float]] = {}
        self._running = False

    def add(self, live: LiveSession, turn: Turn) -> None:
        """Checkpoint `turn` a second after it started, and every second, until `discard`."""
        self._turns[turn] = (live, turn.started_at + CHECKPOINT_SECONDS)
        if not self._running:
            self._running = True
            self._start(self._loop())

    def discard(self, turn: Turn) -> None:
        self._turns.pop(turn, None)

    async def _loop(self) -> None:
        # A tick before looking: a reply that needs no second (an engine that answers
        # at once) is added and discarded before this task first runs, and a loop
        # that ended on finding none was started again for nearly every turn.
        try:
            while True:
                await asyncio.sleep(TICK_SECONDS)
                if not self._turns:
                    return
                await self.checkpoint_due()
        finally:
            self._running = False

    async def checkpoint_due(self) -> None:
        """Write every stored reply whose checkpoint is due."""
        now = time.perf_counter()
        due: list[tuple[LiveSession, Turn]] = []
        for turn, (live, at) in self._turns.items():
            if at <= now and turn.message_id is not None:
                due.append((live, turn))
        for live, turn in due:
            self._turns[turn] = (live, now + CHECKPOINT_SECONDS)
        if due:
            await asyncio.gather(*(self._checkpoint(live, turn) for live, turn in due))

    async def _checkpoint(self, live: LiveSession, turn: Turn) -> None:
        assert turn.message_id is not None
        try:
            # Written even when unchanged: the write is the reply's heartbeat.
            await self._store.checkpoint_message(turn.message_id, text=turn.text)
        except ReaderAIError as exc:
            log.warning("turn.checkpoint_failed", session_id=live.id, error=exc.code)
        with contextlib.suppress(BusUnavailable):
            await self._bus.renew_lease(
                self._lease_key(live.id), self._bus.node_id, self._lease_seconds
            )
