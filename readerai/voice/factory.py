"""Build the configured voice services from settings (``READERAI_STT``, ``_TTS``, ``_VAD``).

Building touches neither the disk nor the network: models load in `start` (in
worker threads). So all three are safe on the event loop.
"""

from __future__ import annotations

import anyio.to_thread

from readerai.settings import Settings
from readerai.voice.base import SpeechToText, TextToSpeech, VoiceActivitySegmenter
from readerai.voice.stt import OpenAITranscriptionSTT, WhisperSTT
from readerai.voice.tts import OpenAISpeechTTS, PiperTTS
from readerai.voice.vad import SileroModel, SileroSegmenter, VadParams, WebRtcSegmenter

#: Voice asked of an OpenAI-compatible speech server.
OPENAI_TTS_VOICE = "alloy"


def build_stt(settings: Settings) -> SpeechToText:
    """The speech-to-text named by ``settings.stt``, not yet started."""
    if settings.stt == "whisper":
        return WhisperSTT(concurrency=settings.voice_concurrency)
    if settings.stt == "openai":
        return OpenAITranscriptionSTT(
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            settings.openai_stt_model,
            settings.openai_timeout_seconds,
        )
    raise ValueError(f"unknown speech-to-text {settings.stt!r}")


def build_tts(settings: Settings) -> TextToSpeech:
    """The text-to-speech named by ``settings.tts``, not yet started."""
    if settings.tts == "piper":
        extra = {
            model.name.removesuffix(".onnx"): (model, model.with_name(model.name + ".json"))
            for model in settings.piper_voices
        }
        return PiperTTS(concurrency=settings.voice_concurrency, extra_voices=extra)
    if settings.tts == "openai":
        return OpenAISpeechTTS(
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            settings.openai_tts_model,
            OPENAI_TTS_VOICE,
            settings.openai_timeout_seconds,
        )
    raise ValueError(f"unknown text-to-speech {settings.tts!r}")


class SegmenterFactory:
    """Makes one fresh segmenter per audio stream (segmenters hold per-stream state).

    A service too: `start` loads the shared Silero model in a worker thread, so the
    first student to speak does not pay for it. The timing settings are checked when
    the factory is built, so bad settings fail at start-up, not per connection.
    """

    def __init__(self, settings: Settings) -> None:
        self.kind = settings.vad
        self._params = VadParams(
            silence_ms=settings.vad_silence_ms, max_utterance_ms=settings.vad_max_utterance_ms
        )
        self._silero = SileroModel()

    def __call__(self) -> VoiceActivitySegmenter:
        if self.kind == "webrtc":
            return WebRtcSegmenter(self._params)
        return SileroSegmenter(self._params, model=self._silero)

    async def start(self) -> None:
        if self.kind == "silero":
            await anyio.to_thread.run_sync(self._silero.session)

    async def close(self) -> None:
        return None


def build_segmenter_factory(settings: Settings) -> SegmenterFactory:
    """The voice activity detector named by ``settings.vad``."""
    if settings.vad not in ("webrtc", "silero"):
        raise ValueError(f"unknown voice activity detector {settings.vad!r}")
    return SegmenterFactory(settings)
