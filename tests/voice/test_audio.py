"""PCM16 helpers: conversions, resampling, loudness, WAV."""

from __future__ import annotations

import io
import math
import wave

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from readerai.voice.audio import (
    SILENCE_DBFS,
    float32_to_pcm16,
    pcm16_to_float32,
    read_wav,
    resample_pcm16,
    rms_dbfs,
    wav_bytes,
)

pcms = st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2])


def tone(frequency: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return float32_to_pcm16(amplitude * np.sin(2 * np.pi * frequency * t))


def dominant_frequency(pcm: bytes, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm16_to_float32(pcm)))
    return float(np.fft.rfftfreq(len(pcm) // 2, 1 / rate)[int(np.argmax(spectrum))])


@given(pcms)
def test_float_conversion_round_trips_exactly(pcm: bytes) -> None:
    samples = pcm16_to_float32(pcm)
    assert samples.dtype == np.float32
    assert np.all((samples >= -1.0) & (samples < 1.0))
    assert float32_to_pcm16(samples) == pcm


def test_pcm16_is_little_endian() -> None:
    assert pcm16_to_float32(b"\x00\x40").tolist() == [0.5]
    assert float32_to_pcm16(np.array([0.5, -1.0])) == b"\x00\x40\x00\x80"


def test_float_conversion_clips_instead_of_wrapping() -> None:
    assert float32_to_pcm16(np.array([2.0, -2.0, 1.0])) == b"\xff\x7f\x00\x80\xff\x7f"


@pytest.mark.parametrize("function", [pcm16_to_float32, rms_dbfs])
def test_odd_byte_counts_are_refused(function: object) -> None:
    with pytest.raises(ValueError, match="even"):
        function(b"\x00\x00\x00")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("source", "target"), [(22_050, 16_000), (16_000, 24_000), (24_000, 16_000), (16_000, 48_000)]
)
def test_resampling_keeps_duration_and_pitch(source: int, target: int) -> None:
    pcm = tone(440, source)
    out = resample_pcm16(pcm, source, target)
    assert len(out) // 2 == target
    assert abs(dominant_frequency(out, target) - 440) <= 2
    assert abs(rms_dbfs(out) - rms_dbfs(pcm)) < 0.5


def test_downsampling_filters_what_would_alias() -> None:
    # 10 kHz is above 16 kHz's Nyquist: unfiltered it would fold to 6 kHz at full level.
    out = resample_pcm16(tone(10_000, 22_050), 22_050, 16_000)
    assert rms_dbfs(out) < rms_dbfs(tone(10_000, 22_050)) - 20


@given(pcms, st.sampled_from([8_000, 16_000, 22_050, 24_000]))
def test_same_rate_or_empty_is_unchanged(pcm: bytes, rate: int) -> None:
    assert resample_pcm16(pcm, rate, rate) == pcm
    assert resample_pcm16(b"", rate, 16_000) == b""


@given(pcms, st.sampled_from([8_000, 22_050, 24_000, 44_100]))
def test_resampled_length_is_proportional(pcm: bytes, rate: int) -> None:
    out = resample_pcm16(pcm, rate, 16_000)
    assert len(out) % 2 == 0
    assert len(out) // 2 == round(len(pcm) // 2 * 16_000 / rate)


def test_resampling_refuses_non_positive_rates() -> None:
    with pytest.raises(ValueError):
        resample_pcm16(b"\x00\x00", 0, 16_000)


def test_rms_dbfs_of_reference_signals() -> None:
    assert rms_dbfs(b"") == SILENCE_DBFS
    assert rms_dbfs(b"\x00\x00" * 100) == SILENCE_DBFS
    assert rms_dbfs(float32_to_pcm16(np.array([1.0, -1.0] * 50))) == pytest.approx(0.0, abs=0.01)
    # A sine's RMS is its amplitude over sqrt(2): 0.5 -> -9.03 dBFS.
    assert rms_dbfs(tone(440, 16_000)) == pytest.approx(
        20 * math.log10(0.5 / math.sqrt(2)), abs=0.05
    )


@given(pcms, st.integers(1, 192_000))
def test_wav_round_trips(pcm: bytes, rate: int) -> None:
    assert read_wav(wav_bytes(pcm, rate)) == (pcm, rate)


def test_wav_is_a_standard_mono_16_bit_file() -> None:
    with wave.open(io.BytesIO(wav_bytes(b"\x01\x00\x02\x00", 16_000))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert wav.readframes(2) == b"\x01\x00\x02\x00"


def _wav(channels: int, width: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(16_000)
        wav.writeframes(b"\x00" * channels * width * 4)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_wav(2, 2), "mono 16-bit"),
        (_wav(1, 1), "mono 16-bit"),
        (_wav(1, 3), "mono 16-bit"),
        (b"", "not a readable"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "not a readable"),
        (b"not a wav file at all", "not a readable"),
    ],
)
def test_read_wav_refuses_anything_but_mono_16_bit(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_wav(data)


def test_wav_bytes_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        wav_bytes(b"\x00", 16_000)
    with pytest.raises(ValueError):
        wav_bytes(b"", 0)
