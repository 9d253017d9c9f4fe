"""The in-process models: Piper speaks, faster-whisper listens, both off the event loop."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from readerai.errors import ServiceStartupError, Unsupported, VoiceError
from readerai.voice.audio import resample_pcm16
from readerai.voice.base import INPUT_SAMPLE_RATE, SpeechEnded, VadEvent
from readerai.voice.stt import WhisperSTT
from readerai.voice.tts import DEFAULT_PIPER_VOICE, PiperTTS
from readerai.voice.vad import SileroSegmenter
from tests.speech_samples import chunks, silence

QUESTION = "Why did the lion let the little mouse go?"


def heard(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


@pytest.fixture
async def tts() -> PiperTTS:
    # Deterministic: with Piper's default noise, tiny.en hears "line" for "lion" in
    # about 4 takes of 10; without it, the same (clear) audio every time.
    tts = PiperTTS(concurrency=2, deterministic=True)
    await tts.start()
    return tts


@pytest.fixture
async def stt() -> WhisperSTT:
    stt = WhisperSTT(concurrency=2)
    await stt.start()
    return stt


@pytest.mark.slow
async def test_piper_speech_is_heard_back_by_whisper(tts: PiperTTS, stt: WhisperSTT) -> None:
    speech = await tts.synthesize(QUESTION)
    assert speech.sample_rate == 22_050
    assert 2_000 < speech.duration_ms < 6_000
    text = await stt.transcribe(speech.pcm, speech.sample_rate)  # resampled to 16 kHz inside
    assert {"lion", "mouse"} <= heard(text), text
    assert text == text.strip()


@pytest.mark.slow
async def test_an_utterance_cut_by_the_vad_is_transcribed(tts: PiperTTS, stt: WhisperSTT) -> None:
    speech = await tts.synthesize(QUESTION)
    pcm = resample_pcm16(speech.pcm, speech.sample_rate, INPUT_SAMPLE_RATE)
    audio = silence(500) + pcm + silence(1000)
    segmenter = SileroSegmenter()
    events: list[VadEvent] = []
    for chunk in chunks(audio):
        events += await anyio.to_thread.run_sync(segmenter.feed, chunk)
    (utterance,) = [e for e in events if isinstance(e, SpeechEnded)]
    text = await stt.transcribe(utterance.pcm, INPUT_SAMPLE_RATE)
    assert {"lion", "mouse"} <= heard(text), text


@pytest.mark.slow
async def test_deterministic_synthesis_repeats_itself(tts: PiperTTS) -> None:
    assert await tts.synthesize(QUESTION) == await tts.synthesize(QUESTION)


@pytest.mark.slow
async def test_syntheses_and_transcriptions_run_concurrently(
    tts: PiperTTS, stt: WhisperSTT
) -> None:
    sentences = ["The lion slept in the sun.", "A little mouse ran over his nose."]
    speeches = [await tts.synthesize(s) for s in sentences]
    texts: dict[int, str] = {}

    async def hear(index: int) -> None:
        texts[index] = await stt.transcribe(speeches[index].pcm, speeches[index].sample_rate)

    async with anyio.create_task_group() as tg:
        for index in range(len(sentences)):
            tg.start_soon(hear, index)
            tg.start_soon(tts.synthesize, sentences[index])
    assert "lion" in heard(texts[0]) and "mouse" in heard(texts[1]), texts


@pytest.mark.slow
async def test_a_cancelled_synthesis_releases_its_slot() -> None:
    tts = PiperTTS(concurrency=1)
    await tts.start()
    with anyio.move_on_after(0.01):
        await tts.synthesize(QUESTION * 3)
    with anyio.fail_after(10):
        assert (await tts.synthesize("Hello.")).pcm


@pytest.mark.slow
async def test_blank_text_and_empty_audio_need_no_model(tts: PiperTTS, stt: WhisperSTT) -> None:
    blank = await tts.synthesize("  \n ")
    assert blank.pcm == b"" and blank.sample_rate == 22_050
    assert await stt.transcribe(b"", 16_000) == ""


async def test_unknown_voice_is_unsupported_and_names_the_voices() -> None:
    tts = PiperTTS()
    assert tts.voices() == [DEFAULT_PIPER_VOICE] and tts.default_voice == DEFAULT_PIPER_VOICE
    with pytest.raises(Unsupported, match=DEFAULT_PIPER_VOICE) as caught:
        await tts.synthesize("Hello.", "en_GB-nobody-low")
    assert caught.value.code == "unsupported"


def test_default_voice_must_be_one_of_the_voices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="default voice"):
        PiperTTS(default_voice="nobody")
    with pytest.raises(ValueError, match="default voice"):
        PiperTTS({"a": (tmp_path / "a.onnx", tmp_path / "a.json")})


async def test_models_must_be_started() -> None:
    with pytest.raises(VoiceError, match="not started"):
        await PiperTTS().synthesize("Hello.")
    with pytest.raises(VoiceError, match="not started"):
        await WhisperSTT().transcribe(b"\x00\x00", 16_000)


async def test_missing_model_files_refuse_to_start(tmp_path: Path) -> None:
    with pytest.raises(ServiceStartupError, match="whisper"):
        await WhisperSTT(tmp_path).start()
    missing = {"ghost": (tmp_path / "ghost.onnx", tmp_path / "ghost.onnx.json")}
    with pytest.raises(ServiceStartupError, match="ghost"):
        await PiperTTS(missing, default_voice="ghost").start()


@pytest.mark.slow
async def test_close_then_start_again(tts: PiperTTS) -> None:
    await tts.close()
    with pytest.raises(VoiceError):
        await tts.synthesize("Hello.")
    await tts.start()
    assert (await tts.synthesize("Hello.")).pcm
