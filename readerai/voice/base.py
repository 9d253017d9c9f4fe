"""The voice interfaces: `SpeechToText`, `TextToSpeech`, and voice activity events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: Student audio on the wire: PCM16 little-endian, mono, 16 kHz.
INPUT_SAMPLE_RATE = 16_000
INPUT_FORMAT = "pcm16"


@dataclass(frozen=True, slots=True)
class Speech:
    """Synthesised audio: PCM16 little-endian mono at `sample_rate`."""

    pcm: bytes
    sample_rate: int

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate * 1000


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The student started speaking `at_ms` after the stream began."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """An utterance ended; `pcm` is the whole utterance (PCM16 16 kHz, with pre-roll).

    `truncated` is True when it was cut at the maximum utterance length.
    """

    at_ms: float
    pcm: bytes
    truncated: bool = False


VadEvent = SpeechStarted | SpeechEnded


class VoiceActivitySegmenter(Protocol):
    """Cuts a stream of 16 kHz PCM16 into utterances. Not thread-safe: one per stream.

    `feed` is CPU work (small, but model work): callers run it in a worker thread.
    Memory is bounded: silence keeps only a short pre-roll; speech is cut at the
    maximum utterance length.
    """

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Process more audio (any length, even number of bytes)."""
        ...

    def flush(self) -> list[VadEvent]:
        """End of input (push-to-talk commit): end any utterance in progress."""
        ...

    def reset(self) -> None:
        """Forget buffered audio and state."""
        ...


class SpeechToText(Protocol):
    """Transcribes one utterance."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transcribe(self, pcm: bytes, sample_rate: int) -> str:
        """The text spoken in `pcm` (PCM16 mono), stripped; "" when nothing was said."""
        ...


class TextToSpeech(Protocol):
    """Synthesises one sentence at a time."""

    default_voice: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def voices(self) -> list[str]:
        """Voice names accepted by `synthesize`."""
        ...

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        """Speech for `text` in `voice` (the default when None); raises
        `readerai.errors.Unsupported` for an unknown voice."""
        ...
