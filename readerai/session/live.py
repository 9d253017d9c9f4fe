"""The live session: what one conversation holds on this node while it is in use.

A `LiveSession` outlives any one connection: the turn in flight belongs to it, so a
dropped socket does not stop the reply, and a reconnect re-attaches to the stream.
All mutation happens on the event loop; `publish` never awaits, so events reach every
attached connection in the order they were published.

Locks:
- `turn_lock` serialises questions and cancels, so turns never interleave;
- `state_lock` makes "store the finished reply + publish RESPONSE_DONE" atomic with
  respect to a connection attaching, which reads history and the turn in flight, so
  a reconnecting client sees each reply exactly once (in history or in flight).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from readerai.engines.base import ChatTurn
from readerai.protocol import ReplyAudio, ReplyStatus, ResponseDelta, ServerEvent
from readerai.session.progress import SessionProgress
from readerai.session.remote import RemoteReply
from readerai.session.spoken import SpokenTimeline
from readerai.session.turn import Turn

#: Spoken replies remembered per session, so a late PLAYBACK_POSITION can cut one.
SPOKEN_MEMORY = 4


@dataclass
class SpokenReply:
    """A finished spoken reply: enough to cut its stored text to what was heard."""

    message_id: int
    text: str
    status: ReplyStatus
    timeline: SpokenTimeline
    context: list[tuple[int, str]]


class Subscriber(Protocol):
    """A connection attached to a live session."""

    def deliver(self, event: ServerEvent) -> None:
        """Queue an event for the client; must not await."""

    def purge_turn(self, turn_id: str) -> None:
        """Drop queued deltas of a cancelled turn."""


class LiveSession:
    """One conversation's in-memory state on this node."""

    def __init__(
        self,
        session_id: str,
        passage_id: str | None,
        progress: SessionProgress,
        history: int,
        class_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        self.id = session_id
        self.passage_id = passage_id
        self.class_id = class_id
        self.user_id = user_id
        self.progress = progress
        self.turn: Turn | None = None
        #: A reply of this session running on another node, followed here.
        self.remote: RemoteReply | None = None
        self.subscribers: set[Subscriber] = set()
        #: Connections between "found the session" and "subscribed": they hold it alive.
        self.attaching = 0
        self.history: deque[ChatTurn] = deque(maxlen=history)
        self.turn_lock = asyncio.Lock()
        self.state_lock = asyncio.Lock()
        #: Voice output: speak replies (set by SESSION_UPDATE audio.output) in `voice`.
        self.audio_out = False
        #: Attached connections with voice on; when the last one leaves, speaking stops.
        self.voice_connections = 0
        self.voice: str | None = None
        self.spoken: dict[str, SpokenReply] = {}
        #: Set by the hub: called when the session becomes idle, so it can be forgotten.
        self.on_idle: Callable[[LiveSession], None] | None = None

    @property
    def idle(self) -> bool:
        """No connection and no reply in flight: the node may forget it."""
        return not self.subscribers and self.turn is None and self.attaching == 0

    def release_if_idle(self) -> None:
        if self.idle and self.on_idle is not None:
            self.on_idle(self)

    def remember_spoken(self, turn_id: str, reply: SpokenReply) -> None:
        self.spoken[turn_id] = reply
        while len(self.spoken) > SPOKEN_MEMORY:
            del self.spoken[next(iter(self.spoken))]

    def publish(self, event: ServerEvent) -> None:
        """Send `event` to every attached connection of this session."""
        if isinstance(event, ResponseDelta | ReplyAudio) and self._cancelled(event.turn_id):
            return
        for subscriber in list(self.subscribers):
            subscriber.deliver(event)

    def purge_turn(self, turn_id: str) -> None:
        for subscriber in self.subscribers:
            subscriber.purge_turn(turn_id)

    def streaming_turn(self) -> Turn | None:
        """The reply streaming to this session's connections, here or from another node."""
        if self.turn is not None:
            return self.turn
        return self.remote.turn if self.remote is not None else None

    def delta_sent(self, turn_id: str, seq: int) -> bool:
        """A writer is about to send delta `seq`; False if the turn was cancelled."""
        turn = self.streaming_turn()
        if turn is None or turn.id != turn_id:
            return True  # the turn ended normally; its tail is still worth sending
        if turn.cancel_requested:
            return False
        turn.mark_sent(seq)
        return True

    def audio_sendable(self, turn_id: str) -> bool:
        """A writer is about to send reply audio; False if its turn was cancelled."""
        return not self._cancelled(turn_id)

    def _cancelled(self, turn_id: str) -> bool:
        turn = self.streaming_turn()
        return turn is not None and turn.id == turn_id and turn.cancel_requested
