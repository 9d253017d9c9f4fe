"""A reply running on another node, followed here through its stream.

When a student reconnects to this node while their reply is still being written by
another one, the hub rebuilds the reply so far from the session's reply stream
(`session/replystream.py`) and this follower publishes the rest to the connections
here, in order, with the same `seq` numbers, until `RESPONSE_DONE`.

If the stream goes quiet, the stored checkpoint decides: a reply that was finished
meanwhile is published as stored; one whose node stopped checkpointing it for
`lease` seconds is marked `interrupted` (the owner died) and published so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from readerai.bus.base import Bus, StreamEntry
from readerai.errors import BusUnavailable, ReaderAIError
from readerai.protocol import (
    ReplyStatus,
    ResponseDelta,
    ResponseDone,
    ServerEvent,
    decode_server_event,
)
from readerai.session.replystream import stream_key
from readerai.session.turn import Turn
from readerai.store import MessageRecord, Store

log = structlog.get_logger(__name__)

#: Entries read from a stream at once.
READ_BATCH = 256
#: How long one blocking read of the stream waits.
READ_BLOCK_SECONDS = 1.0


@dataclass(eq=False)
class RemoteReply:
    """The reply so far, as rebuilt from the stream, and where reading stopped."""

    turn: Turn
    message_id: int
    last_id: str = "0"
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def apply(self, event: ServerEvent) -> ServerEvent | ResponseDone | None:
        """Take one event of the stream; return what to publish (None: nothing)."""
        if getattr(event, "turn_id", None) != self.turn.id:
            return None
        if isinstance(event, ResponseDelta):
            if event.seq != self.turn.seq + 1:
                return None  # already have it (or a gap the stream cannot fill)
            self.turn.deltas.append(event.text)
            return event
        return event


async def load_remote_reply(
    bus: Bus, session_id: str, reply: MessageRecord, question: str, max_len: int
) -> RemoteReply | None:
    """The reply `reply` (stored `in_progress`) rebuilt from the stream; None if the
    stream shows it already ended, or there is no stream."""
    remote = RemoteReply(turn=Turn(id=reply.turn_id, question=question), message_id=reply.id)
    entries = await bus.read(stream_key(session_id), "0", block=0, count=max_len)
    for entry in entries:
        remote.last_id = entry.id
        event = _decode(entry)
        if event is not None and isinstance(remote.apply(event), ResponseDone):
            return None
    return remote


class RemoteFollower:
    """Publishes a remote reply's events to this node's connections until it ends."""

    def __init__(self, bus: Bus, store: Store, lease_seconds: float) -> None:
        self._bus = bus
        self._store = store
        self._lease = lease_seconds

    async def follow(
        self,
        session_id: str,
        remote: RemoteReply,
        publish: Callable[[ServerEvent], None],
        finish: Callable[[ResponseDone], Awaitable[None]],
    ) -> None:
        """Run until the reply ends; `finish` gets its `RESPONSE_DONE`."""
        key = stream_key(session_id)
        quiet_since = time.monotonic()
        while True:
            try:
                entries = await self._bus.read(
                    key, remote.last_id, block=READ_BLOCK_SECONDS, count=READ_BATCH
                )
            except BusUnavailable:
                entries = []
                await asyncio.sleep(READ_BLOCK_SECONDS)
            for entry in entries:
                remote.last_id = entry.id
                event = _decode(entry)
                out = remote.apply(event) if event is not None else None
                if isinstance(out, ResponseDone):
                    await finish(out)
                    return
                if out is not None and not remote.turn.cancel_requested:
                    publish(out)
            if entries:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= self._lease / 2:
                done = await self._check_store(session_id, remote)
                if done is not None:
                    await finish(done)
                    return
                quiet_since = time.monotonic()

    async def _check_store(self, session_id: str, remote: RemoteReply) -> ResponseDone | None:
        """The reply's end as stored, if it ended (or its node died); else None."""
        try:
            row = await self._store.get_message(remote.message_id)
            if row is not None and row.status is ReplyStatus.IN_PROGRESS:
                cutoff = datetime.now(UTC) - timedelta(seconds=self._lease)
                if row.updated_at >= cutoff:
                    return None
                await self._store.interrupt_stale_replies(session_id, older_than=cutoff)
                row = await self._store.get_message(remote.message_id)
        except ReaderAIError as exc:
            log.warning("remote_reply.store_check_failed", session_id=session_id, error=exc.code)
            return None
        if row is None:
            return ResponseDone(
                turn_id=remote.turn.id, status=ReplyStatus.INTERRUPTED, text="", citations=[]
            )
        if row.status is ReplyStatus.IN_PROGRESS:
            return None  # checkpointed again between the two reads: alive after all
        log.info("remote_reply.ended_in_store", session_id=session_id, status=row.status.value)
        return ResponseDone(
            turn_id=remote.turn.id, status=row.status, text=row.text, citations=row.citations
        )


def _decode(entry: StreamEntry) -> ServerEvent | None:
    try:
        return decode_server_event(entry.payload)
    except ValueError:
        log.warning("remote_reply.bad_entry", entry=entry.id)
        return None
