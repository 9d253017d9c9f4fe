"""Voice services are picked by name in settings, and building them is side-effect free."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from readerai.settings import Settings
from readerai.voice.factory import build_segmenter_factory, build_stt, build_tts
from readerai.voice.stt import OpenAITranscriptionSTT, WhisperSTT
from readerai.voice.tts import (
    DEFAULT_PIPER_VOICE,
    OpenAISpeechTTS,
    PiperTTS,
    bundled_piper_voices,
)
from readerai.voice.vad import SileroSegmenter, WebRtcSegmenter


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults_are_the_bundled_offline_models() -> None:
    tts = build_tts(settings())
    assert isinstance(build_stt(settings()), WhisperSTT)
    assert isinstance(tts, PiperTTS)
    assert tts.voices() == [DEFAULT_PIPER_VOICE]


def test_openai_backends_are_chosen_by_name() -> None:
    chosen = settings(stt="openai", tts="openai", openai_api_key=SecretStr("sk-x"))
    assert isinstance(build_stt(chosen), OpenAITranscriptionSTT)
    tts = build_tts(chosen)
    assert isinstance(tts, OpenAISpeechTTS)
    assert tts.default_voice in tts.voices()


@pytest.mark.parametrize(
    ("name", "kind"), [("webrtc", WebRtcSegmenter), ("silero", SileroSegmenter)]
)
def test_each_stream_gets_a_fresh_segmenter_with_the_configured_timing(
    name: str, kind: type[WebRtcSegmenter | SileroSegmenter]
) -> None:
    new_segmenter = build_segmenter_factory(
        settings(vad=name, vad_silence_ms=900, vad_max_utterance_ms=8000)
    )
    first, second = new_segmenter(), new_segmenter()
    assert isinstance(first, kind) and isinstance(second, kind)
    assert first is not second
    assert (first.params.silence_ms, first.params.max_utterance_ms) == (900, 8000)


@pytest.mark.slow
async def test_operators_can_add_piper_voices_that_sessions_then_choose(tmp_path: Path) -> None:
    def copy_bundled_voice() -> Path:
        model, config = bundled_piper_voices()[DEFAULT_PIPER_VOICE]
        extra = tmp_path / "en_US-story-medium.onnx"
        shutil.copyfile(model, extra)
        shutil.copyfile(config, tmp_path / "en_US-story-medium.onnx.json")
        return extra

    extra = await anyio.to_thread.run_sync(copy_bundled_voice)
    tts = build_tts(settings(piper_voices=[extra]))
    assert tts.voices() == [DEFAULT_PIPER_VOICE, "en_US-story-medium"]
    await tts.start()
    try:
        speech = await tts.synthesize("The lion slept.", "en_US-story-medium")
    finally:
        await tts.close()
    assert speech.pcm and speech.sample_rate == 22050
