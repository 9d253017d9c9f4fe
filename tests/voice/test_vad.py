"""Utterance segmentation, both detectors, on Piper-synthesised speech."""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pytest

from readerai.voice.base import SpeechEnded, SpeechStarted, VadEvent
from readerai.voice.vad import (
    HysteresisSegmenter,
    SileroSegmenter,
    VadParams,
    WebRtcSegmenter,
    build_segmenter,
)
from tests.speech_samples import BYTES_PER_MS, chunks, silence, spoken

SENTENCES = [
    "Why did the lion let the little mouse go?",
    "The mouse promised to help the lion one day.",
    "Later the mouse chewed through the hunter's net.",
]
Kind = Literal["webrtc", "silero"]
DETECTORS: list[Kind] = ["webrtc", "silero"]


@pytest.fixture(params=DETECTORS)
def kind(request: pytest.FixtureRequest) -> Kind:
    chosen: Kind = request.param
    return chosen


def feed_all(segmenter: HysteresisSegmenter, pcm: bytes, ms: int = 40) -> list[VadEvent]:
    return [event for chunk in chunks(pcm, ms) for event in segmenter.feed(chunk)]


def voiced_span_ms(pcm: bytes) -> tuple[float, float]:
    """Where sound (above -50 dBFS in 10 ms windows) starts and ends in ``pcm``."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    windows = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt(np.mean(windows**2, axis=1)) > 10 ** (-50 / 20))
    return float(loud[0] * 10), float((loud[-1] + 1) * 10)


def test_one_utterance_per_spoken_sentence(kind: Kind) -> None:
    segmenter = build_segmenter(kind)
    audio = b"".join(spoken(s) for s in SENTENCES)
    events = feed_all(segmenter, audio)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * len(SENTENCES)
    offset = 0.0
    for sentence, started, ended in zip(SENTENCES, events[::2], events[1::2], strict=True):
        assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
        clip = spoken(sentence)
        begin, end = (offset + ms for ms in voiced_span_ms(clip))
        assert begin - 60 <= started.at_ms <= begin + 300
        assert end - 300 <= ended.at_ms <= end + 200
        assert not ended.truncated
        # The utterance holds the whole sentence plus some pre-roll and a short tail.
        duration = len(ended.pcm) / BYTES_PER_MS
        assert end - begin <= duration <= end - begin + 300 + 300 + 200
        offset += len(clip) / BYTES_PER_MS


def test_utterance_starts_with_the_pre_roll(kind: Kind) -> None:
    params = VadParams(pre_roll_ms=300)
    ended = [
        e
        for e in feed_all(build_segmenter(kind), spoken(SENTENCES[0]))
        if isinstance(e, SpeechEnded)
    ]
    (utterance,) = ended
    begin, _ = voiced_span_ms(utterance.pcm)
    # Sound begins well inside the utterance: the quiet onset before it was kept.
    assert 150 <= begin <= params.pre_roll_ms + params.min_speech_ms + 60


def test_chunk_size_does_not_change_the_events(kind: Kind) -> None:
    audio = spoken(SENTENCES[1])
    reference = feed_all(build_segmenter(kind), audio, 40)
    segmenter = build_segmenter(kind)
    odd = [audio[i : i + 333] for i in range(0, len(audio), 333)]  # odd sizes split samples
    events = [event for piece in odd for event in segmenter.feed(piece)]
    assert events == reference
    assert [len(e.pcm) % 2 for e in events if isinstance(e, SpeechEnded)] == [0]


@pytest.mark.parametrize("level", [0, 30])
def test_silence_gives_no_events_and_keeps_only_the_pre_roll(kind: Kind, level: int) -> None:
    segmenter = build_segmenter(kind)
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(16_000 * 30) * level).astype("<i2").tobytes()
    limit = (segmenter.params.pre_roll_ms + segmenter.params.min_speech_ms + 100) * BYTES_PER_MS
    for chunk in chunks(hiss):
        assert segmenter.feed(chunk) == []
        assert segmenter.buffered_bytes <= limit
    assert segmenter.flush() == []


def long_sound(kind: Kind) -> bytes:
    """A minute of sound the detector takes for speech: white noise fools WebRTC; Silero,
    which ignores noise, hears speech that goes on without a pause."""
    if kind == "webrtc":
        rng = np.random.default_rng(1)
        return (rng.standard_normal(16_000 * 60) * 4000).astype("<i2").tobytes()
    clips = [spoken(s, 0, 0) for s in SENTENCES]
    return b"".join(clips * 8)


def test_long_sound_is_cut_at_the_maximum_with_bounded_memory(kind: Kind) -> None:
    segmenter = build_segmenter(kind, max_utterance_ms=3000)
    max_bytes = 3000 * BYTES_PER_MS
    events: list[VadEvent] = []
    for chunk in chunks(long_sound(kind)):
        events += segmenter.feed(chunk)
        assert segmenter.buffered_bytes <= max_bytes + 40 * BYTES_PER_MS
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    truncated = [e for e in ended if e.truncated]
    assert len(truncated) >= 3
    assert all(len(e.pcm) <= max_bytes for e in ended)
    assert all(len(e.pcm) >= max_bytes - 100 * BYTES_PER_MS for e in truncated)
    # Events stay paired: every utterance that starts ends exactly once.
    kinds = [type(e) for e in events]
    assert kinds[: len(kinds) // 2 * 2] == [SpeechStarted, SpeechEnded] * (len(kinds) // 2)


def test_flush_ends_the_utterance_in_progress(kind: Kind) -> None:
    segmenter = build_segmenter(kind)
    audio = spoken(SENTENCES[0], 500, 0)
    events = feed_all(segmenter, audio[: len(audio) - 1000 * BYTES_PER_MS] + b"\x01")
    assert [type(e) for e in events] == [SpeechStarted]
    (ended,) = segmenter.flush()
    assert isinstance(ended, SpeechEnded) and not ended.truncated
    assert len(ended.pcm) % 2 == 0 and len(ended.pcm) > 1000 * BYTES_PER_MS
    assert segmenter.flush() == []
    assert not segmenter.speaking and segmenter.buffered_bytes == 0


def test_the_clock_runs_on_after_flush_and_restarts_after_reset(kind: Kind) -> None:
    segmenter = build_segmenter(kind)
    clip = spoken(SENTENCES[0])
    first = feed_all(segmenter, clip)
    assert segmenter.flush() == []
    # After a flush the detector starts afresh on the same audio: same events, later.
    second = feed_all(segmenter, clip)
    assert len(first) == len(second) == 2
    for before, after in zip(first, second, strict=True):
        assert after.at_ms == pytest.approx(before.at_ms + len(clip) / BYTES_PER_MS)
    segmenter.reset()
    assert feed_all(segmenter, clip) == first


def test_reset_forgets_an_utterance_in_progress(kind: Kind) -> None:
    segmenter = build_segmenter(kind)
    feed_all(segmenter, spoken(SENTENCES[0], 500, 0))
    assert segmenter.speaking
    segmenter.reset()
    assert not segmenter.speaking and segmenter.buffered_bytes == 0
    assert segmenter.flush() == []


def test_short_clicks_do_not_start_speech(kind: Kind) -> None:
    segmenter = build_segmenter(kind, min_speech_ms=200)
    click = spoken("Hi.", 0, 0)[: 60 * BYTES_PER_MS]
    audio = (silence(700) + click) * 10 + silence(1000)
    assert feed_all(segmenter, audio) == []


@pytest.mark.parametrize(
    "params",
    [
        {"silence_ms": 0},
        {"min_speech_ms": -1},
        {"pre_roll_ms": -1},
        {"max_utterance_ms": 400},
    ],
)
def test_bad_timing_is_refused(params: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        VadParams(**params)


def test_detector_options_are_checked() -> None:
    with pytest.raises(ValueError):
        WebRtcSegmenter(aggressiveness=4)
    with pytest.raises(ValueError):
        WebRtcSegmenter(frame_ms=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SileroSegmenter(threshold=1.5)
    with pytest.raises(ValueError):
        build_segmenter("nope")  # type: ignore[arg-type]


def test_cost_is_a_small_fraction_of_real_time(kind: Kind) -> None:
    segmenter = build_segmenter(kind)
    feed_all(segmenter, spoken(SENTENCES[0]))  # loads Silero's model
    audio = b"".join(spoken(s) for s in SENTENCES) * 5
    started = time.perf_counter()
    feed_all(segmenter, audio)
    per_second = (time.perf_counter() - started) / (len(audio) / BYTES_PER_MS / 1000)
    assert per_second < 0.05, f"{kind}: {per_second * 1000:.2f} ms per second of audio"
