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

However it ends (`finish`, a recognition failure, or cancelled with the connection),
the reading is handed to `conclude` (`ReadingRecorder.record`: scored, stored and
reported in a supervised task that outlives the connection); unless cancelled, `run`
waits for it and sends the student `READING_RESULT`.

Resuming and stall help (`run(start=..., stall=...)`): a reading resumed after a
question starts its aligner at the word after the one last reached, and asks
Whisper to continue the passage from there. When the reader has not moved for
`StallHelp.seconds` of audio (`readaloud.stall`), the tutor says a line of help as
a tutor turn, once per stall, never while a reply is in flight, and the stall clock
stands still while one is. Checked after each window heard: on the reading's audio
clock, so recognition running late never passes for a stall.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import structlog

from readerai.errors import Unsupported
from readerai.protocol import Error, ReadAloudProgress, ServerEvent
from readerai.readaloud.align import Aligner, HeardWord, Position
from readerai.readaloud.hearing import Prompt, ReadingListener, passage_read_before
from readerai.readaloud.stall import StallWatch, help_line
from readerai.readaloud.words import tokenize
from readerai.session.reading_results import reading_result
from readerai.store.base import DEFAULT_STALL_HELP, DEFAULT_STALL_SECONDS
from readerai.store.models import ReadingHelp, ReadingRecord
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
#: Passage words before a resumed reading's first word that Whisper is told were read.
RESUME_PROMPT_WORDS = 20

#: Takes over an ended reading (its aligner, and when it started): scores and stores
#: it in a task that outlives the follower (`ReadingRecorder.record`).
Conclude = Callable[[Aligner, datetime], "asyncio.Task[ReadingRecord | None]"]


class ReadAloudModel:
    """Node-wide: the speech model every read-aloud follower shares, the tokens for
    its work (`limiter`: recognitions at once on the node), and the help offered a
    stalled reader who is in no class (`default_help`, from settings)."""

    def __init__(
        self,
        stt: SpeechToText,
        concurrency: int,
        default_help: ReadingHelp | None = None,
    ) -> None:
        self._stt = stt
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.default_help = default_help or ReadingHelp(DEFAULT_STALL_SECONDS, DEFAULT_STALL_HELP)

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


@dataclass(frozen=True, slots=True)
class StallHelp:
    """How a follower helps a stalled reader: after `seconds` of audio with the reader
    unmoved, it `say`s the line for `offer` (a tutor turn), unless `busy` (a reply is
    in flight)."""

    seconds: float
    offer: str
    busy: Callable[[], bool]
    say: Callable[[str], Awaitable[object]]


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
        conclude: Conclude | None = None,
    ) -> None:
        """`deliver` queues an event for the client; `reached` stores a position sent;
        `conclude` scores and stores the reading when it ends (None: it is not)."""
        self.passage_id = passage_id
        self._text = passage_text
        self._listener = ReadingListener(model, limiter)
        self._deliver = deliver
        self._reached = reached
        self._pacer = pacer or ProgressPacer(PROGRESS_INTERVAL)
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending_bytes = 0
        self._heard_bytes = 0  # audio taken from the queue: the reading's clock
        self._word: int | None = None  # the aligner's word after the last feed
        self._finishing = False
        self._conclude = conclude
        self._aligner: Aligner | None = None  # set once made; the reading so far
        self._started_at = datetime.now(UTC)

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

    async def run(self, *, start: int = 0, stall: StallHelp | None = None) -> None:
        """Hear, align and report until `finish` (or cancelled with the connection).

        `start`: passage words already read (a resumed reading); `stall`: the help
        offered a stalled reader (None: none). A recognition failure ends the reading
        with an `ERROR`, not the connection.
        """
        try:
            await self._follow(start, stall)
        except Exception as exc:
            log.error("read_aloud.failed", passage_id=self.passage_id, exc_info=exc)
            self._deliver(Error(code="voice_error", message="read-aloud recognition failed"))
        finally:
            # Even when cancelled: the reading is stored by a task that outlives this one.
            scoring = self._hand_over()
        if scoring is not None:
            await self._tell(scoring)

    async def _follow(self, start: int, stall: StallHelp | None) -> None:
        aligner = self._aligner = await anyio.to_thread.run_sync(
            partial(Aligner, self._text, start=start)
        )
        prompt = _prompt(self._text, aligner, start)
        watch = StallWatch(stall.seconds) if stall is not None else None
        while True:
            pcm = await self._next_frame()
            if pcm is None:
                break
            if pcm:
                self._pending_bytes -= len(pcm)
                self._heard_bytes += len(pcm)
                words = await self._listener.accept(pcm, prompt=prompt)
                await self._feed(aligner, words, watch)
                if words is not None and stall is not None and watch is not None:
                    await self._help_if_stalled(aligner, start, stall, watch)
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

    async def _feed(
        self, aligner: Aligner, words: list[HeardWord] | None, watch: StallWatch | None = None
    ) -> None:
        if not words:
            return
        position = await anyio.to_thread.run_sync(_feed, aligner, words)
        word = position.word_index if position is not None else None
        if watch is not None and word != self._word:
            watch.moved(words[-1].end)
        elif watch is not None:
            watch.heard(words[-1].end)  # speech that did not move the reader
        self._word = word
        self._report(position)

    async def _help_if_stalled(
        self, aligner: Aligner, start: int, stall: StallHelp, watch: StallWatch
    ) -> None:
        """After a window heard: offer help if the reader stalled (once per stall)."""
        now = self._heard_bytes / (BYTES_PER_MS * 1000)  # the window heard all of it
        if stall.busy():
            watch.hold(now)
            return
        found = watch.check(now)
        if found is None:
            return
        next_word = start if self._word is None else self._word + 1
        line = help_line(stall.offer, self._text, aligner.words, next_word)
        if line is None:  # read to the end: nothing to help with
            return
        log.info(
            "read_aloud.stalled",
            passage_id=self.passage_id,
            kind=found.kind,
            seconds=round(found.seconds, 1),
            word_index=next_word,
            offer=stall.offer,
        )
        await stall.say(line)

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

    def _hand_over(self) -> asyncio.Task[ReadingRecord | None] | None:
        """Give the ended reading to `conclude` (no thread uses the aligner any more:
        a worker thread is always waited for, even by a cancelled task)."""
        if self._conclude is None or self._aligner is None:
            return None
        aligner, self._aligner = self._aligner, None
        return self._conclude(aligner, self._started_at)

    async def _tell(self, scoring: asyncio.Task[ReadingRecord | None]) -> None:
        """Send `READING_RESULT` once the reading is stored (shielded: if this task is
        cancelled meanwhile, the reading is still stored)."""
        try:
            stored = await asyncio.shield(scoring)
        except Exception:  # noqa: BLE001 - logged by the supervisor that runs it
            self._deliver(Error(code="store_unavailable", message="the reading was not stored"))
            return
        if stored is not None:
            self._deliver(reading_result(stored))


def resume_at(text: str, offset: int | None) -> int:
    """Where a reading of `text` resumes, in passage words already read, given the
    session's stored position (`offset`, a character offset into `text`): after every
    word starting at or before it. A position heard is the start of the last word
    read, so the reading goes on with the next word; a page's position is the start
    of the sentence the student moved to, so its first word counts as read (reading
    it again is a repetition, not a miscue). 0, a reading from the top, when there is
    none, when it is before the first word, or when it is in or after the last word
    (read to the end: a new reading).

    Costs a tokenization of `text`: call it in a worker thread.
    """
    if offset is None:
        return 0
    starts = [word.start for word in tokenize(text)]
    after = bisect_right(starts, offset)
    return after if after < len(starts) else 0


def _prompt(text: str, aligner: Aligner, start: int) -> Prompt:
    """Whisper's preceding text: the passage read so far in this reading, or else, for
    a reading resumed at word `start`, the words before it."""
    read_before = passage_read_before(text, aligner)
    if start == 0:
        return read_before
    words = aligner.words
    first = words[max(0, start - RESUME_PROMPT_WORDS)]
    before = " ".join(text[first.start : words[start - 1].end].split())
    return lambda t: read_before(t) or before


def _feed(aligner: Aligner, words: list[HeardWord]) -> Position | None:
    """Align `words` (in a worker thread); the reader's position after them."""
    aligner.feed(words)
    return aligner.position
