"""Streaming speech recognition for read-aloud: a student's audio in, `HeardWord`s out.

`ReadingListener` buffers one stream (PCM16, 16 kHz, mono) and, every `step` seconds
of new audio, runs faster-whisper with word timestamps over a window from `lead_in`
before the settled point (the end of the last final word) to the newest sample.
Words ending in the window's last `holdback` are provisional, the others final.

Sizes (`WindowPlan`), measured on synthesised readings (tests/readaloud): a decode
costs about as much for 1 s of audio as for 4 s when the encoder sees Whisper's 30 s,
so the price is one decode per `step`; 1.5 s halves the cost of 1 s and misheard no
more. A word is heard and timed well only with audio on both sides: `lead_in` gives
context (and absorbs the stretched start Whisper gives a window's first word), and
`holdback` waits for the words the window's end cuts. So windows are 3.5-4 s, a
first guess at a word comes within `step`, the final word within `step + holdback`.

Cost and lag: the encoder is most of a decode (0.40 of 0.5 CPU-seconds, tiny.en int8)
because faster-whisper pads each window to 30 s. It is given the window's sound and
`encoder_padding` seconds of that padding instead (`_short_encoder`): about a third
of the CPU per reader, and the words come back that much sooner. Now and then the
short encoder skips the first second of a window; a window with speech and no word
heard over it (`_skipped`) is heard again with the full 30 s. A shorter `step`
(0.75 or 1 s while the reader reads) was tried with it: it cost twice the CPU and,
on two busy cores, lowered the lag not at all (docs/performance.md, "Read-aloud").

Results keep `Aligner.feed`'s contract: each starts after every final word returned
and no later than the provisional tail it replaces.

Bias: `prompt(t)` is the passage text read before the window's start t, given to
Whisper as `initial_prompt`, the text it was trained to continue. It fixes misheard
passage words ("curl" for "curled"). Passage text that overlaps the window's audio
(text around the reader, or `hotwords`) loses words: Whisper skips those it takes
as already said, and reads on past the audio.

Concurrency: model work runs in a worker thread holding a token of the node-wide
`limiter`; a stream runs one recognition at a time (a call that finds one running
only buffers). A cancelled call waits for its thread, then raises with the words as
they were; the next window hears that audio again.

Memory: at most `longest` seconds are buffered; audio that would leave unheard
(recognition far behind) is dropped and counted in `dropped_seconds`.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np

from readerai.readaloud.align import Aligner, HeardWord
from readerai.readaloud.words import normalize, tokenize
from readerai.voice.audio import Float32Array, pcm16_to_float32
from readerai.voice.base import INPUT_SAMPLE_RATE

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

#: The passage text read before a stream time, in seconds: Whisper's preceding text.
Prompt = Callable[[float], str]

_BYTES_PER_SAMPLE = 2
_FRAME = INPUT_SAMPLE_RATE // 100  # 10 ms, in samples
#: Audio kept around the sound of a window: the onset of a soft consonant, a fading end.
_MARGIN = INPUT_SAMPLE_RATE // 10
#: A last word shorter than this (seconds) was put past the end of the sound.
_UNTIMED = 0.1
#: Faster than anyone reads aloud (a fast adult reads about 4 words a second).
_MOST_WORDS_PER_SECOND = 6
#: Sound within this many seconds after a word's end is that word fading, not another.
_FADE = 0.3
#: Seconds a word's end may move between windows and still be the same word.
_SAME_WORD = 0.25
#: Seconds a word must end after the settled point to be taken as a new word.
_JITTER = 0.06
#: Seconds of sound with no word heard in them that mean the recogniser skipped speech.
_UNHEARD = 0.6
#: Smallest step of stream time: a word that follows another starts at least this later.
_TICK = 0.001


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """When to recognise and over which audio, in seconds (see the module docstring).

    `silence_dbfs`: audio quieter than this is not sent to the model: a silent window
    costs no decode, and silence at either end of a window is cut off, since Whisper
    stretches words over it and makes up words ("Thank you.") in it.

    `encoder_padding`: seconds of padding after the sound the encoder sees (None: all
    of Whisper's 30 s, the way faster-whisper does it). 1 s let the decoder skip or
    repeat words; 3 s and 10 s heard the test readings as the full 30 s does.
    """

    step: float = 1.5
    lead_in: float = 1.0
    holdback: float = 1.0
    longest: float = 6.0
    silence_dbfs: float = -50.0
    encoder_padding: float | None = 3.0

    def __post_init__(self) -> None:
        if min(self.step, self.lead_in, self.holdback) <= 0:
            raise ValueError("step, lead_in and holdback must be positive")
        if self.longest < self.step + self.lead_in + self.holdback:
            raise ValueError("longest must hold lead_in + holdback + step")


class ReadingListener:
    """Hears one read-aloud stream as words in stream time (seconds from its first sample)."""

    def __init__(
        self,
        model: WhisperModel,
        limiter: anyio.CapacityLimiter,
        plan: WindowPlan | None = None,
    ) -> None:
        """`model`: a loaded faster-whisper model, shared by every stream; `limiter`:
        the node's tokens for model work, shared too."""
        self._model = model
        self._limiter = limiter
        self._plan = plan or WindowPlan()
        self._lock = anyio.Lock()
        self._buffer = bytearray()
        self._buffer_start = 0  # stream sample of self._buffer[0]
        self._received = 0  # samples received
        self._heard_to = 0  # stream sample where the last window ended
        self._settled = 0.0  # seconds: what was heard before this is final
        self._floor = 0.0  # seconds: every final word returned starts before this
        self._last: HeardWord | None = None  # the last final word returned
        self._tail_start: float | None = None  # first provisional word returned
        self._dropped = 0  # samples dropped unheard

    @property
    def settled(self) -> float:
        """Stream time before which every word returned is final."""
        return self._settled

    @property
    def buffered_seconds(self) -> float:
        """Audio held for the next window: at most `WindowPlan.longest`."""
        return len(self._buffer) / _BYTES_PER_SAMPLE / INPUT_SAMPLE_RATE

    @property
    def dropped_seconds(self) -> float:
        """Audio dropped unheard because recognition fell behind."""
        return self._dropped / INPUT_SAMPLE_RATE

    async def accept(self, pcm: bytes, *, prompt: Prompt | None = None) -> list[HeardWord] | None:
        """Buffer `pcm`; once a `step` of new audio is in, recognise a window.

        Returns None when no window ran, else the words after the settled point
        (possibly none), final then provisional, for `Aligner.feed`. `prompt` is
        called once per window, on the event loop.
        """
        self._append(pcm)
        due = self._received - self._heard_to >= self._plan.step * INPUT_SAMPLE_RATE
        if not due or self._lock.locked():
            return None
        return await self._recognise(prompt, final=False)

    async def flush(self, *, prompt: Prompt | None = None) -> list[HeardWord]:
        """Recognise everything not yet final, as final: at the end of a reading."""
        return await self._recognise(prompt, final=True)

    def _append(self, pcm: bytes) -> None:
        if len(pcm) % _BYTES_PER_SAMPLE:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        self._buffer += pcm
        self._received += len(pcm) // _BYTES_PER_SAMPLE
        cap = self._received - int(self._plan.longest * INPUT_SAMPLE_RATE)
        if cap > self._buffer_start:
            self._dropped += max(0, cap - max(self._heard_to, self._buffer_start))
            self._trim(cap)

    def _trim(self, start: int) -> None:
        """Forget buffered audio before stream sample `start`."""
        cut = start - self._buffer_start
        if cut > 0:
            del self._buffer[: cut * _BYTES_PER_SAMPLE]
            self._buffer_start = start

    async def _recognise(self, prompt: Prompt | None, *, final: bool) -> list[HeardWord]:
        async with self._lock:
            end = self._received
            wanted = round((self._settled - self._plan.lead_in) * INPUT_SAMPLE_RATE)
            start = max(self._buffer_start, wanted)
            # A copy: the buffer changes while the thread runs.
            pcm = bytes(self._buffer[(start - self._buffer_start) * _BYTES_PER_SAMPLE :])
            self._heard_to = end  # what arrives from now on waits for the next window
            offset = start / INPUT_SAMPLE_RATE
            text = prompt(offset) if prompt is not None else ""
            hear = partial(_hear, self._model, pcm, offset, text, self._plan)
            heard = await anyio.to_thread.run_sync(hear, limiter=self._limiter)
            # The thread ran to its end, shielded: a cancel that came meanwhile lands
            # here, before the state moves. From here on no await: all at once.
            await anyio.lowlevel.checkpoint_if_cancelled()
            return self._settle(heard, end, final=final)

    def _settle(self, heard: _Heard | None, end: int, *, final: bool) -> list[HeardWord]:
        """Keep the words after the settled point, and move that point forward.

        Invariant (what makes `Aligner.feed` replace exactly the provisional tail):
        every later result starts after every final word returned so far, and no later
        than the tail it replaces. The settled point passes only words and silence:
        where Whisper stopped short of the sound, the next window hears it again.
        """
        new = _new_words(heard.words if heard else [], self._last, self._settled)
        unheard = heard is not None and not heard.words  # sound, yet no words
        if not new and not final and (unheard or self._tail_start is not None):
            return []  # leave it, and the tail, to the next, longer window
        words = _in_order(new, self._floor, self._tail_start)
        cut = end / INPUT_SAMPLE_RATE - (0.0 if final else self._plan.holdback)
        first = _tail_index(words, cut)
        self._tail_start = words[first].start if first < len(words) else None
        if first > 0:
            self._last = last = words[first - 1]
            self._settled = max(self._settled, last.end)
            tail = math.inf if self._tail_start is None else self._tail_start
            self._floor = min(last.start + _TICK, tail)
        quiet = heard is None or heard.quiet_from <= self._settled + _FADE
        if self._tail_start is None and (quiet or final):
            self._settled = max(self._settled, cut)
        keep_from = round((self._settled - self._plan.lead_in) * INPUT_SAMPLE_RATE)
        self._trim(min(end, max(self._buffer_start, keep_from)))
        return words


def _new_words(heard: list[HeardWord], last: HeardWord | None, settled: float) -> list[HeardWord]:
    """The words heard after the final ones: after `last`, the last final word, if the
    window heard it again (the same word, ending within `_SAME_WORD` of where it did),
    and ending after the settled point; else ending `_JITTER` after it. Re-heard words
    move by a frame or two, a window's first word by more, and a word on the edge of
    the lead-in may be heard as another one: hence the anchor first, then time.
    """
    if last is not None:
        again = [i for i, word in enumerate(heard) if normalize(word.text) == normalize(last.text)]
        anchor = min(again, key=lambda i: abs(heard[i].end - last.end), default=None)
        if anchor is not None and abs(heard[anchor].end - last.end) <= _SAME_WORD:
            return [word for word in heard[anchor + 1 :] if word.end > settled]
    return [word for word in heard if word.end > settled + _JITTER]


def _in_order(words: list[HeardWord], floor: float, tail: float | None) -> list[HeardWord]:
    """`words` moved to start no earlier than `floor` nor the word before (Whisper's
    timings can overlap by a frame), the first no later than `tail`, the tail it is to
    replace (it is the tail's first word, re-timed a little later)."""
    kept: list[HeardWord] = []
    for word in words:
        floor = max(word.start, floor)
        kept.append(HeardWord(word.text, floor, max(word.end, floor)))
    if kept and tail is not None and kept[0].start > tail:
        kept[0] = HeardWord(kept[0].text, tail, kept[0].end)
    return kept


def _tail_index(words: list[HeardWord], cut: float) -> int:
    """Where the provisional tail begins: the first word ending after `cut`, moved back
    over words starting at the same time (a final word must start before the tail)."""
    first = next((i for i, word in enumerate(words) if word.end > cut), len(words))
    while 0 < first < len(words) and words[first - 1].start >= words[first].start:
        first -= 1
    return first


def _sound(samples: Float32Array, silence_dbfs: float) -> tuple[int, int] | None:
    """The samples from a little before the first 10 ms louder than `silence_dbfs` to a
    little after the last; None if there is none."""
    frames = samples[: samples.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    loud = np.flatnonzero(power > 10 ** (silence_dbfs / 10))
    if loud.size == 0:
        return None
    return max(0, int(loud[0]) * _FRAME - _MARGIN), (int(loud[-1]) + 1) * _FRAME + _MARGIN


@dataclass(frozen=True, slots=True)
class _Heard:
    """What one window held: its words, and where its last sound ends (stream time)."""

    words: list[HeardWord]
    quiet_from: float


def _hear(
    model: WhisperModel, pcm: bytes, offset: float, prompt: str, plan: WindowPlan
) -> _Heard | None:
    """Recognise one window (blocking: in a worker thread); None if it is silent.

    With `WindowPlan.encoder_padding`, first with a short encoder (`_short_encoder`);
    if that left speech unheard (`_skipped`), again with Whisper's full 30 s.
    """
    samples = pcm16_to_float32(pcm)
    sound = _sound(samples, plan.silence_dbfs)
    if sound is None:
        return None
    begin, end = sound
    sound_samples, at = samples[begin:end], offset + begin / INPUT_SAMPLE_RATE
    heard: list[HeardWord] | None = None
    if plan.encoder_padding is not None:
        seconds = sound_samples.size / INPUT_SAMPLE_RATE + plan.encoder_padding
        heard = _words(_short_encoder(model, seconds), sound_samples, at, prompt)
        if _skipped(heard, sound_samples, at, plan.silence_dbfs):
            heard = None
    if heard is None:
        heard = _words(model, sound_samples, at, prompt)
    return _Heard(heard, offset + min(samples.size, end) / INPUT_SAMPLE_RATE)


def _words(model: WhisperModel, samples: Float32Array, at: float, prompt: str) -> list[HeardWord]:
    """The words of a window's sound, made-up ones left out.

    A prompt now and then sends Whisper into a loop ("he was a little bit more
    hungry", over and over, in no time): more words than anyone can say are taken
    as made up, and the window is heard again without the prompt, or else as nothing.
    """
    most = _MOST_WORDS_PER_SECOND * samples.size / INPUT_SAMPLE_RATE + 2
    heard = _decode(model, samples, at, prompt)
    if prompt and len(heard) > most:
        heard = _decode(model, samples, at, "")
    return heard if len(heard) <= most else []


def _skipped(heard: list[HeardWord], samples: Float32Array, at: float, silence_dbfs: float) -> bool:
    """Whether speech went unheard: before the first word or between two, more than
    `_UNHEARD` seconds mostly louder than `silence_dbfs`. (The short encoder now and
    then skips the first second or so of a window; the full one does not.)"""
    frames = samples[: samples.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    loud = np.mean(np.square(frames, dtype=np.float64), axis=1) > 10 ** (silence_dbfs / 10)
    if not heard:
        return bool(loud.mean() > 0.5)
    gaps = [(at, heard[0].start)] + [(a.end, b.start) for a, b in itertools.pairwise(heard)]
    per_second = INPUT_SAMPLE_RATE / _FRAME
    for start, stop in gaps:
        if stop - start > _UNHEARD:
            first, last = round((start - at) * per_second), round((stop - at) * per_second)
            span = loud[first:last]
            if span.size and span.mean() > 0.5:
                return True
    return False


#: Mel frames per second of audio, and Whisper's frames (30 s) its encoder was made for.
_MEL_PER_SECOND = 100
_WHISPER_FRAMES = 3000


def _short_encoder(model: WhisperModel, seconds: float) -> WhisperModel:
    """`model` with an encoder that sees `seconds` of mel frames, not 30 s.

    faster-whisper pads every window to Whisper's 30 s, and the encoder's cost grows
    with its input: 0.40 CPU-seconds for 30 s against 0.014 for 4 s (tiny.en, int8,
    2 threads). The encoder takes a shorter input as it is (whisper.cpp's
    `audio_ctx`); the padding kept after the sound tells the decoder where it ends.
    A shallow copy of the shared model, for one call: the model itself is unchanged.
    """
    frames = min(_WHISPER_FRAMES, 100 * math.ceil(seconds * _MEL_PER_SECOND / 100))
    short = copy.copy(model)
    full_encode = model.encode

    def encode(features: Float32Array) -> object:
        return full_encode(features[..., :frames])

    short.encode = encode
    return short


def _decode(model: WhisperModel, samples: Float32Array, at: float, prompt: str) -> list[HeardWord]:
    """Whisper's words for `samples`, which start at stream time `at`."""
    segments, _info = model.transcribe(
        samples,
        language="en",
        beam_size=1,
        temperature=0.0,  # one greedy pass: a fallback costs another decode
        vad_filter=False,  # silence is cut before; Silero would cost more than it saves
        condition_on_previous_text=False,
        initial_prompt=prompt or None,
        word_timestamps=True,
    )
    heard: list[HeardWord] = []
    for segment in segments:  # lazy: the decoding happens here, in this thread
        for word in segment.words or ():
            text = word.word.strip()
            if tokenize(text):  # not lone punctuation
                heard.append(HeardWord(text, at + word.start, at + word.end))
    # Last words too short to hold a sound were put past it: cut off mid-word, or made
    # up (the prompt read on, the passage again, "Thank you"). The next window hears.
    while heard and heard[-1].end - heard[-1].start < _UNTIMED:
        heard.pop()
    return heard


def passage_read_before(passage: str, aligner: Aligner, *, words: int = 20) -> Prompt:
    """A `Prompt` for a reading of `passage` followed by `aligner`: up to `words` words
    of the passage, ending at the last one the reader had reached by the given time.

    With punctuation and capitals, which Whisper then follows. Empty before the
    first word read. Costs the aligner's traceback, cached until its next feed.
    """

    def read_before(t: float) -> str:
        alignment = aligner.alignment()
        for pair in reversed(alignment.pairs):
            said, reached = pair.heard_index, pair.word_index
            if reached is not None and said is not None and alignment.heard[said].end <= t:
                first = aligner.words[max(0, reached - words + 1)]
                return " ".join(passage[first.start : aligner.words[reached].end].split())
        return ""

    return read_before
