"""Synthesised readings, heard by `ReadingListener` (real Whisper), aligned and scored.

Piper reads the passage cleanly and with known edits; the audio streams in 160 ms
chunks, faster than real time, through the listener, the `Aligner` and
`find_miscues`, as the read-aloud session will.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from readerai.loadtest.readings import (
    PASSAGE,
    WORDS,
    MiscueKey,
    Reading,
    Script,
    insert,
    load_voice,
    omit,
    repeat,
    speak,
    swap,
)
from readerai.readaloud import (
    Aligner,
    HeardWord,
    Miscue,
    find_miscues,
    measure_fluency,
    normalize,
)
from readerai.readaloud.hearing import ReadingListener, WindowPlan, passage_read_before
from readerai.voice.base import INPUT_SAMPLE_RATE
from readerai.voice.stt import default_whisper_path
from tests.speech_samples import chunks

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

#: Audio is sent as a browser sends it, a frame every this many milliseconds.
FRAME_MS = 160

CLEAN = Script("clean")
#: Each edited reading makes one edit of each kind; the third stops early.
EDITED = (
    Script("drops", (omit(3), swap(9, "snow"), repeat(21), insert(36, "some"))),
    Script("extras", (insert(4, "little"), repeat(12), omit(18), swap(31, "father"))),
    Script("stops", (swap(1, "saw"), insert(14, "tiny"), omit(27), repeat(40)), last_word=45),
)


@pytest.fixture(scope="module")
def model() -> WhisperModel:
    """Whisper tiny.en, loaded once for the module (before blockbuster starts watching)."""
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(default_whisper_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
        local_files_only=True,
    )


@pytest.fixture(scope="module")
def readings() -> dict[str, Reading]:
    voice = load_voice()
    return {script.name: speak(script, voice) for script in (CLEAN, *EDITED)}


@dataclass
class Heard:
    """One reading as the session would see it."""

    aligner: Aligner
    positions: list[int] = field(default_factory=list)  # after each feed
    final_start: float = -1.0  # start of the last final word fed
    cancelled: int = 0  # windows cancelled

    def feed(self, words: list[HeardWord] | None, settled: float) -> None:
        """Feed a result, checking that it replaces no final word."""
        if not words:
            return
        assert words[0].start > self.final_start
        self.aligner.feed(words)
        position = self.aligner.position
        self.positions.append(-1 if position is None else position.word_index)
        self.final_start = max([self.final_start, *(w.start for w in words if w.end <= settled)])

    def miscues(self) -> list[Miscue]:
        return find_miscues(self.aligner.alignment())

    def wcpm(self) -> float:
        alignment = self.aligner.alignment()
        return measure_fluency(alignment, find_miscues(alignment)).wcpm


async def listen(
    model: WhisperModel,
    reading: Reading,
    limiter: anyio.CapacityLimiter,
    *,
    cancel_from: float = math.inf,
    cancel_to: float = math.inf,
) -> Heard:
    """Stream `reading` through a listener into an aligner, as fast as it is heard;
    windows due between `cancel_from` and `cancel_to` seconds are cancelled."""
    heard = Heard(Aligner(PASSAGE))
    listener = ReadingListener(model, limiter)
    prompt = passage_read_before(PASSAGE, heard.aligner)
    sent = 0.0
    for chunk in chunks(reading.pcm, FRAME_MS):
        sent += len(chunk) / 2 / INPUT_SAMPLE_RATE
        deadline = 0.01 if cancel_from <= sent <= cancel_to else math.inf
        with anyio.move_on_after(deadline) as scope:
            heard.feed(await listener.accept(chunk, prompt=prompt), listener.settled)
        heard.cancelled += scope.cancelled_caught
    heard.feed(await listener.flush(prompt=prompt), listener.settled)
    assert listener.dropped_seconds == 0
    return heard


def key(miscue: Miscue) -> MiscueKey:
    if miscue.word_index is None:
        return (miscue.kind, normalize(miscue.heard))
    return (miscue.kind, miscue.word_index)


def assert_wcpm_close(heard: Heard, reading: Reading) -> None:
    assert heard.wcpm() == pytest.approx(reading.wcpm(), rel=0.10), reading.script.name


@pytest.mark.slow
async def test_a_clean_reading_is_followed_to_the_end_without_errors(
    model: WhisperModel, readings: dict[str, Reading], capsys: pytest.CaptureFixture[str]
) -> None:
    reading = readings[CLEAN.name]
    began = time.perf_counter()
    heard = await listen(model, reading, anyio.CapacityLimiter(1))
    busy = time.perf_counter() - began
    assert [m for m in heard.miscues() if m.kind.is_error] == []
    assert heard.positions == sorted(heard.positions)
    assert heard.positions[-1] == len(WORDS) - 1
    assert_wcpm_close(heard, reading)
    with capsys.disabled():
        print(  # noqa: T201
            f"\nclean: WCPM {heard.wcpm():.1f} (truth {reading.wcpm():.1f}),"
            f" recognition {busy / reading.seconds:.2f} s per second of audio"
        )


@pytest.mark.slow
async def test_miscues_of_edited_readings_match_the_edits(
    model: WhisperModel, readings: dict[str, Reading], capsys: pytest.CaptureFixture[str]
) -> None:
    """Three streams at once, sharing one model token: the node limiter in use."""
    limiter = anyio.CapacityLimiter(1)
    scripts = {script.name: script for script in EDITED}
    results: dict[str, Heard] = {}

    async def hear(name: str) -> None:
        results[name] = await listen(model, readings[name], limiter)

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for name in scripts:
            group.start_soon(hear, name)
    busy = time.perf_counter() - began
    found = {name: {key(m) for m in heard.miscues()} for name, heard in results.items()}
    true_positives = sum(len(found[name] & scripts[name].truth()) for name in scripts)
    precision = true_positives / sum(len(keys) for keys in found.values())
    recall = true_positives / sum(len(script.truth()) for script in EDITED)
    audio = sum(readings[name].seconds for name in scripts)
    with capsys.disabled():
        print(f"\nmiscues: precision {precision:.2f}, recall {recall:.2f}")  # noqa: T201
        for name, script in scripts.items():
            error = results[name].wcpm() / readings[name].wcpm() - 1
            wrong = sorted(found[name] ^ script.truth(), key=str)
            print(f"  {name}: WCPM error {error:+.1%}, differences {wrong}")  # noqa: T201
        print(f"  recognition: {busy / audio:.2f} s per second of audio")  # noqa: T201
    assert precision >= 0.8
    assert recall >= 0.8
    for name, script in scripts.items():
        assert results[name].positions[-1] == script.last_word, name
        assert_wcpm_close(results[name], readings[name])


@pytest.mark.slow
async def test_a_cancelled_window_loses_no_words(
    model: WhisperModel, readings: dict[str, Reading]
) -> None:
    """The cancelled call waits for its thread, changes nothing, and the next window
    hears that audio again."""
    reading = readings[CLEAN.name]
    heard = await listen(model, reading, anyio.CapacityLimiter(1), cancel_from=4, cancel_to=6)
    assert heard.cancelled >= 1
    assert [m for m in heard.miscues() if m.kind.is_error] == []
    assert heard.positions[-1] == len(WORDS) - 1


@pytest.mark.slow
async def test_a_stream_recognises_one_window_at_a_time_and_bounds_its_buffer(
    model: WhisperModel, readings: dict[str, Reading]
) -> None:
    """Audio that arrives while a window is being heard is only buffered; if it piles up
    past `longest`, the oldest is dropped and counted."""
    plan = WindowPlan()
    limiter = anyio.CapacityLimiter(1)
    listener = ReadingListener(model, limiter, plan)
    pcm = readings[CLEAN.name].pcm
    step = round(plan.step * INPUT_SAMPLE_RATE) * 2
    results: list[list[HeardWord] | None] = []

    async def first_window() -> None:
        results.append(await listener.accept(pcm[:step], prompt=None))

    async with anyio.create_task_group() as group:
        group.start_soon(first_window)
        while limiter.borrowed_tokens == 0 and not results:  # the first window is in its thread
            await anyio.lowlevel.checkpoint()
        for chunk in chunks(pcm[step:], FRAME_MS):
            assert await listener.accept(chunk) is None
            assert listener.buffered_seconds <= plan.longest
    assert results[0] is not None
    audio = len(pcm) / 2 / INPUT_SAMPLE_RATE
    assert listener.dropped_seconds == pytest.approx(audio - plan.step - plan.longest, abs=0.2)


async def test_silence_is_heard_as_no_words_and_settles(model: WhisperModel) -> None:
    """Silent windows never reach the model (this test decodes nothing)."""
    listener = ReadingListener(model, anyio.CapacityLimiter(1))
    second = b"\x00\x00" * INPUT_SAMPLE_RATE
    answers = [await listener.accept(chunk) for chunk in chunks(second * 20, FRAME_MS)]
    # A window every ten 160 ms chunks (the first 1.5 s step or more), at 1.6 s, 3.2 s, ...
    assert [a for a in answers if a is not None] == [[]] * 12
    assert listener.settled == pytest.approx(19.2 - WindowPlan().holdback)
    assert listener.buffered_seconds <= WindowPlan().longest
    assert await listener.flush() == []
    assert listener.settled == pytest.approx(20.0)
    assert listener.dropped_seconds == 0


async def test_half_a_sample_is_refused(model: WhisperModel) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        await ReadingListener(model, anyio.CapacityLimiter(1)).accept(b"\x00\x00\x00")


def test_a_window_plan_must_hold_its_parts() -> None:
    with pytest.raises(ValueError, match="longest"):
        WindowPlan(step=2, lead_in=2, holdback=2, longest=5)
    with pytest.raises(ValueError, match="positive"):
        WindowPlan(step=0)


def test_the_prompt_is_the_passage_read_before_the_window() -> None:
    aligner = Aligner(PASSAGE)
    prompt = passage_read_before(PASSAGE, aligner, words=4)
    assert prompt(10.0) == ""
    aligner.feed([HeardWord(word, 0.5 * i, 0.5 * i + 0.4) for i, word in enumerate(WORDS[:14])])
    assert prompt(2.0) == "Sam found a small"  # "small" ended at 1.9, "brown" at 2.4
    assert prompt(100.0) == "outside the bakery. The"  # with the passage's punctuation
