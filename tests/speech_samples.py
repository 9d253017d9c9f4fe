"""Spoken test audio, synthesised by the bundled Piper voice (no recordings shipped)."""

from __future__ import annotations

import functools

from piper import PiperVoice

from readerai.loadtest.readings import load_voice, silence, synthesise
from readerai.voice.base import INPUT_SAMPLE_RATE

BYTES_PER_MS = INPUT_SAMPLE_RATE * 2 // 1000
__all__ = ["BYTES_PER_MS", "chunks", "silence", "spoken"]


@functools.cache
def _voice() -> PiperVoice:
    return load_voice()


@functools.cache
def spoken(text: str, silence_before_ms: int = 500, silence_after_ms: int = 1500) -> bytes:
    """`text` spoken, as PCM16 mono 16 kHz, padded with silence (blocking: call off-loop)."""
    return synthesise(_voice(), text, silence_before_ms, silence_after_ms).pcm


def chunks(pcm: bytes, ms: int = 40) -> list[bytes]:
    size = ms * BYTES_PER_MS
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
