"""Read-aloud mode of one connection: the student's reading in, `READING_PROGRESS` out.

`ReadAloudFollower` owns one reading of one passage: audio frames go through a
`ReadingListener` (speech recognition) into an `Aligner` (where in the passage the
reader is), and each move of the reader's word becomes a `READING_PROGRESS` event,
paced by `ProgressPacer`: at most one every `PROGRESS_INTERVAL`, only when the word
changed. The aligner's position never moves back except on a re-read it confirmed,
so neither do the events.

Concurrency: `run` is the follower's one task, owned by the connection actor, which
cancels and awaits it when the connection ends. Recognition runs in worker threads
under the node-wide `ReadAloudModel.limiter`; the aligner is fed in a worker thread
too, by the same task only, so it is never used from two threads at once. `accept`
never waits: audio waiting to be heard is bounded (`MAX_PENDING_MS`); beyond it,
frames are dropped with an `ERROR`. `finish` ends the reading: `run` hears what is
left, reports the last position and returns.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import structlog

from readerai.errors import Unsupported
from readerai.protocol import Error, ReadAloudProgress, ServerEvent
from readerai.readaloud.align import Aligner, HeardWord, Position
from readerai.readaloud.hearing import ReadingListener, passage_read_before
from readerai.voice.base import INPUT_SAMPLE_RATE, SpeechToText
from readerai.voice.stt import WhisperSTT

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = structlog.get_logger(__name__)

#: Least time between two `READING_PROGRESS` events of one reading, in seconds.
PROGRESS_INTERVAL = 0.2
#: Audio received but not yet heard, at most.
MAX_PENDING_MS = 10_000
BYTES_PER_MS = INPUT_SAMPLE_RATE * 2 // 1000


class ReadAloudModel:
    """Node-wide: the speech model every read-aloud follower shares, and the tokens
    for its work (`limiter`: recognitions at once on the node)."""

    def __init__(self, stt: SpeechToText, concurrency: int) -> None:
        self._stt = stt
        self.limiter = anyio.CapacityLimiter(concurrency)

    def model(self) -> WhisperModel:
        """The loaded Whisper model; `Unsupported` if this node has none."""
        model = self._stt.model if isinstance(self._stt, WhisperSTT) else None
        if model is None:
            raise Unsupported("read_aloud mode needs the whisper speech-to-text (stt=whisper)")
        return model


class ProgressPacer:
    """Decides when a position becomes an event: only a changed word, at most one per
    `interval` (clock seconds); a change that comes too soon is held until it may go."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._sent: int | None = None  # word index last sent
        self._sent_at = -math.inf
        self.held: Position | None = None

    def offer(self, position: Position | None) -> Position | None:
        """The position to send now, if any; else it is held (when it is news)."""
        if position is None:
            return None
        if position.word_index == self._sent:
            self.held = None  # back where the client already is: nothing to tell
            return None
        if self._clock() - self._sent_at < self._interval:
            self.held = position
            return None
        self.held = None
        self._sent, self._sent_at = position.word_index, self._clock()
        return position

    def wait(self) -> float | None:
        """Seconds until the held position may go; None if none is held."""
        if self.held is None:
            return None
        return max(0.0, self._sent_at + self._interval - self._clock())


class ReadAloudFollower:
    """Follows one student reading one passage aloud, over one connection."""

    def __init__(
        self,
        *,
        passage_id: str,
        passage_text: str,
        model: WhisperModel,
        limiter: anyio.CapacityLimiter,
        deliver: Callable[[ServerEvent], None],
        reached: Callable[[Position], None],
        pacer: ProgressPacer | None = None,
    ) -> None:
        """`deliver` queues an event for the client; `reached` stores a position sent."""
        self.passage_id = passage_id
        self._text = passage_text
        self._listener = ReadingListener(model, limiter)
        self._deliver = deliver
        self._reached = reached
        self._pacer = pacer or ProgressPacer(PROGRESS_INTERVAL)
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending_bytes = 0
        self._finishing = False

    def accept(self, pcm: bytes) -> None:
        """Take one frame of the reading (never waits)."""
        if self._finishing:
            return
        if self._pending_bytes + len(pcm) > MAX_PENDING_MS * BYTES_PER_MS:
            self._deliver(
                Error(code="rate_limited", message="audio arrives faster than it is heard")
            )
            return
        self._pending_bytes += len(pcm)
        self._frames.put_nowait(pcm)

    def finish(self) -> None:
        """End the reading: `run` hears the audio received so far, then returns."""
        if not self._finishing:
            self._finishing = True
            self._frames.put_nowait(None)

    async def run(self) -> None:
        """Hear, align and report until `finish` (or cancelled with the connection).

        A recognition failure ends the reading with an `ERROR`, not the connection.
        """
        try:
            await self._follow()
        except Exception as exc:
            log.error("read_aloud.failed", passage_id=self.passage_id, exc_info=exc)
            self._deliver(Error(code="voice_error", message="read-aloud recognition failed"))

    async def _follow(self) -> None:
        aligner = await anyio.to_thread.run_sync(Aligner, self._text)
        prompt = passage_read_before(self._text, aligner)
        while True:
            pcm = await self._next_frame()
            if pcm is None:
                break
            if pcm:
                self._pending_bytes -= len(pcm)
                words = await self._listener.accept(pcm, prompt=prompt)
                await self._feed(aligner, words)
        await self._feed(aligner, await self._listener.flush(prompt=prompt))
        wait = self._pacer.wait()
        if wait is not None:  # the last move goes out too, paced like the others
            await anyio.sleep(wait)
            self._report(self._pacer.held)

    async def _next_frame(self) -> bytes | None:
        """The next frame; b"" when a held position came due first."""
        wait = self._pacer.wait()
        if wait is None:
            return await self._frames.get()
        try:
            async with asyncio.timeout(wait):
                return await self._frames.get()
        except TimeoutError:
            self._report(self._pacer.held)
            return b""

    async def _feed(self, aligner: Aligner, words: list[HeardWord] | None) -> None:
        if not words:
            return
        position = await anyio.to_thread.run_sync(_feed, aligner, words)
        self._report(position)

    def _report(self, position: Position | None) -> None:
        due = self._pacer.offer(position)
        if due is None:
            return
        self._reached(due)
        self._deliver(
            ReadAloudProgress(
                passage_id=self.passage_id, position=due.char_offset, word_index=due.word_index
            )
        )


def _feed(aligner: Aligner, words: list[HeardWord]) -> Position | None:
    """Align `words` (in a worker thread); the reader's position after them."""
    aligner.feed(words)
    return aligner.position
