"""PCM16 helpers: conversions, resampling, loudness and WAV, all in memory.

Every ``pcm`` here is PCM16 little-endian mono: an even number of bytes, one
``int16`` per sample. Odd lengths raise `ValueError`, never silently drop a byte.
The functions are pure CPU work on numpy arrays; none touches the disk.
"""

from __future__ import annotations

import io
import math
import wave

import numpy as np
import numpy.typing as npt

#: Little-endian int16 whatever the machine's byte order: the wire format.
PCM16 = np.dtype("<i2")
#: What `rms_dbfs` reports for digital silence: below 16-bit quantisation noise
#: (about -101 dBFS) yet finite, so it survives JSON and arithmetic.
SILENCE_DBFS = -120.0
#: Taps of the low-pass filter applied before downsampling (odd: symmetric, no delay).
_LOWPASS_TAPS = 31

Float32Array = npt.NDArray[np.float32]


def _samples(pcm: bytes) -> npt.NDArray[np.int16]:
    if len(pcm) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype=PCM16).astype(np.int16, copy=False)


def pcm16_to_float32(pcm: bytes) -> Float32Array:
    """Samples scaled to [-1, 1): ``int16 / 32768``."""
    return _samples(pcm).astype(np.float32) / np.float32(32768.0)


def float32_to_pcm16(samples: npt.NDArray[np.floating]) -> bytes:
    """PCM16 bytes from samples in [-1, 1]; values outside are clipped, not wrapped."""
    scaled = np.clip(np.asarray(samples, dtype=np.float64) * 32768.0, -32768, 32767)
    return np.rint(scaled).astype(PCM16).tobytes()


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """``pcm`` at ``to_rate``: linear interpolation, after a windowed-sinc low-pass
    when downsampling so that content above the new Nyquist does not alias.

    Good enough for speech (models and a browser's speaker), not for music. The
    output has ``round(n * to_rate / from_rate)`` samples; the same rate returns
    the input unchanged.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    samples = _samples(pcm)
    if from_rate == to_rate or samples.size == 0:
        return pcm
    signal = samples.astype(np.float64)
    if to_rate < from_rate:
        # "full" then the centre: "same" would return the taps' length for short input.
        delay = (_LOWPASS_TAPS - 1) // 2
        filtered = np.convolve(signal, _lowpass(to_rate / from_rate))
        signal = filtered[delay : delay + samples.size]
    count = round(samples.size * to_rate / from_rate)
    positions = np.arange(count, dtype=np.float64) * (from_rate / to_rate)
    resampled = np.interp(positions, np.arange(samples.size, dtype=np.float64), signal)
    return np.clip(np.rint(resampled), -32768, 32767).astype(PCM16).tobytes()


def _lowpass(ratio: float) -> npt.NDArray[np.float64]:
    """A Hann-windowed sinc with its cutoff at ``ratio`` of the input Nyquist, unit gain."""
    # 0.9: keep a little margin below the new Nyquist for the filter's transition band.
    cutoff = 0.9 * ratio / 2
    n = np.arange(_LOWPASS_TAPS, dtype=np.float64) - (_LOWPASS_TAPS - 1) / 2
    taps = np.sinc(2 * cutoff * n) * np.hanning(_LOWPASS_TAPS)
    result: npt.NDArray[np.float64] = taps / taps.sum()
    return result


def rms_dbfs(pcm: bytes) -> float:
    """Loudness as RMS in dB relative to full scale: 0.0 for a full-scale square wave,
    `SILENCE_DBFS` for silence or no samples (never below it)."""
    samples = _samples(pcm)
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples.astype(np.float64)))))
    if rms == 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20 * math.log10(rms / 32768.0))


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A complete mono 16-bit WAV file holding ``pcm``."""
    _samples(pcm)  # validates the length
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def read_wav(data: bytes) -> tuple[bytes, int]:
    """``(pcm, sample_rate)`` of a mono 16-bit PCM WAV file.

    Raises `ValueError` for anything else: not a WAV, compressed, stereo, 8/24/32-bit.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if channels != 1 or width != 2:
                raise ValueError(
                    f"only mono 16-bit WAV is supported, got {channels} channel(s) "
                    f"of {width * 8}-bit samples"
                )
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a readable PCM WAV file: {exc}") from exc
    if len(pcm) % 2:  # a truncated file can end mid-sample
        pcm = pcm[:-1]
    return pcm, rate
