"""The reply stream: a copy of a reply's events on the bus, for other nodes.

While a turn runs, its events (`RESPONSE_STARTED`, each `RESPONSE_DELTA`,
`RESPONSE_DONE`) are appended, in order, to a bounded and expiring stream keyed by
the session. A node where the student reconnects reads it from the start to rebuild
the reply so far, then follows it live (`session/remote.py`).

Appending never holds up the reply: events are queued and a pump task writes them
in batches. While the bus is down the pump drops what it cannot write (other nodes
then fall back to the stored checkpoints) and logs it once per turn.
"""

from __future__ import annotations

import asyncio

import structlog

from readerai.bus.base import Bus
from readerai.errors import BusUnavailable
from readerai.protocol import ServerEvent, encode
from readerai.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

#: A reply stream outlives its turn by this long (a client reconnecting late).
STREAM_TTL_SECONDS = 600.0
#: Longest the end of a turn waits for its last events to reach the bus.
CLOSE_WAIT_SECONDS = 2.0


def stream_key(session_id: str) -> str:
    return f"reply:{session_id}"


class ReplyStream:
    """Appends one turn's events to the session's stream on the bus."""

    def __init__(
        self, bus: Bus, supervisor: TaskSupervisor, session_id: str, turn_id: str, max_len: int
    ) -> None:
        self._bus = bus
        self._key = stream_key(session_id)
        self._max_len = max_len
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._dropped = 0
        self._task = supervisor.start(
            self._pump(), name="turn.stream", session_id=session_id, turn_id=turn_id
        )

    def feed(self, event: ServerEvent) -> None:
        """Queue `event` for the stream; never waits."""
        if not self._closed:
            self._pending.append(encode(event).encode())
            self._wake.set()

    async def close(self) -> None:
        """Write what is queued (waiting at most a moment), then stop."""
        self._closed = True
        self._wake.set()
        await asyncio.wait({self._task}, timeout=CLOSE_WAIT_SECONDS)
        if not self._task.done():
            self._task.cancel()

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._append(batch)
            if self._closed and not self._pending:
                return

    async def _append(self, batch: list[bytes]) -> None:
        try:
            await self._bus.append(self._key, batch, max_len=self._max_len, ttl=STREAM_TTL_SECONDS)
        except BusUnavailable as exc:
            if not self._dropped:
                log.warning("reply_stream.dropped", key=self._key, error=exc.message)
            self._dropped += len(batch)
