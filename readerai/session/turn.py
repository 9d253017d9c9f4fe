"""One turn: the student's question and the tutor's reply as it streams.

A pure state machine (no I/O). States: `in_progress` → exactly one of `completed`,
`cancelled`, `failed`, `interrupted`; any other transition raises. The reply is kept
as numbered deltas (seq 1, 2, ...) so a client can resume from the last one it saw,
and `sent_seq` records how far any client actually received it: a cancelled reply is
stored as what was sent, not what was generated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from readerai.errors import ReaderAIError
from readerai.protocol import InflightView, ReplyStatus, ResponseDelta, ServerEvent, TurnReason
from readerai.session.spoken import SpokenTimeline
from readerai.tracing import NO_SPAN, TurnSpan


class IllegalTransition(RuntimeError):
    """A turn was asked to end twice or to grow after it ended."""


Sink = Callable[[ServerEvent], None]


class AckGate:
    """Holds a turn's events until its question is stored and acknowledged.

    A reply starts while its question is still being written (an upstream takes
    longer to its first token than the store takes to write), but nothing of it may
    reach a client before `INTERRUPTION_ACKNOWLEDGED`: events sent earlier wait
    here, in order, and go out when the gate opens. If the question could not be
    stored the gate is abandoned and they are dropped.
    """

    def __init__(self) -> None:
        self._held: list[tuple[Sink, ServerEvent]] | None = []
        self._stored: bool | None = None
        self._decided = asyncio.Event()

    def send(self, sink: Sink, event: ServerEvent) -> None:
        if self._held is None:
            if self._stored:
                sink(event)
        else:
            self._held.append((sink, event))

    def open(self) -> None:
        """The question is stored and acknowledged: send what waited, then pass through."""
        held, self._held = self._held or [], None
        self._stored = True
        self._decided.set()
        for sink, event in held:
            sink(event)

    def abandon(self) -> None:
        """The question was not stored: drop what waited and whatever comes."""
        self._held = None
        self._stored = False
        self._decided.set()

    async def stored(self) -> bool:
        """Wait until the gate opens (True) or is abandoned (False)."""
        await self._decided.wait()
        return bool(self._stored)


@dataclass(eq=False)
class Turn:
    """A question and its reply in flight."""

    id: str
    question: str
    deltas: list[str] = field(default_factory=list)
    status: ReplyStatus = ReplyStatus.IN_PROGRESS
    sent_seq: int = 0
    cancel_requested: bool = False
    error: ReaderAIError | None = None
    citations: list[int] = field(default_factory=list)
    task: asyncio.Task[Any] | None = None
    #: Set when the reply is spoken: which text went with which audio.
    timeline: SpokenTimeline | None = None
    #: Audio the client reported playing before it stopped (PLAYBACK_POSITION).
    played_ms: float | None = None
    #: perf_counter() when the turn was created and when its first delta went out.
    started_at: float = field(default_factory=time.perf_counter)
    first_delta_at: float | None = None
    #: The reply's row in the store, written while it streams (None until stored).
    message_id: int | None = None
    gate: AckGate = field(default_factory=AckGate)
    #: The turn's root span (a do-nothing one when tracing is off).
    trace: TurnSpan = NO_SPAN
    #: A turn the tutor starts unasked (`question` empty): the line it says, and why
    #: (`reason` on `RESPONSE_STARTED`, e.g. `reading_help`). No engine is used.
    script: str | None = None
    reason: TurnReason | None = None

    @property
    def seq(self) -> int:
        """Sequence number of the last delta (0 before the first)."""
        return len(self.deltas)

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    def append(self, text: str) -> ResponseDelta:
        """Record the next delta of the reply and return its wire event."""
        if self.status is not ReplyStatus.IN_PROGRESS or self.cancel_requested:
            raise IllegalTransition(f"turn {self.id} is {self.status}; it cannot grow")
        self.deltas.append(text)
        return ResponseDelta(turn_id=self.id, seq=len(self.deltas), text=text)

    def mark_sent(self, seq: int) -> None:
        """A client was written delta `seq`."""
        self.sent_seq = max(self.sent_seq, seq)

    def deltas_after(self, seq: int) -> list[ResponseDelta]:
        """Deltas after `seq`, for a client resuming the stream."""
        start = max(seq, 0)
        return [
            ResponseDelta(turn_id=self.id, seq=i, text=t)
            for i, t in enumerate(self.deltas[start:], start=start + 1)
        ]

    def finish(self, status: ReplyStatus) -> str:
        """End the turn and return the reply text to store for that ending."""
        if self.status is not ReplyStatus.IN_PROGRESS:
            raise IllegalTransition(f"turn {self.id} already ended as {self.status}")
        if status is ReplyStatus.IN_PROGRESS:
            raise IllegalTransition("a turn cannot finish as in_progress")
        self.status = status
        if status is ReplyStatus.CANCELLED:
            # The student saw only what was written to them before the cancel, and
            # heard only what played before they interrupted.
            sent = "".join(self.deltas[: self.sent_seq])
            if self.timeline is not None and self.played_ms is not None:
                return self.timeline.heard_text(sent, self.played_ms)
            return sent
        return self.text

    def inflight(self) -> InflightView:
        return InflightView(
            turn_id=self.id, question_text=self.question, seq=self.seq, text=self.text
        )
