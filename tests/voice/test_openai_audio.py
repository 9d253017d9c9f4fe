"""The OpenAI-compatible speech backends against a real HTTP server on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from readerai.errors import ServiceStartupError, Unsupported, VoiceError
from readerai.settings import Settings
from readerai.voice.factory import build_stt, build_tts
from readerai.voice.stt import OpenAITranscriptionSTT
from readerai.voice.tts import OPENAI_PCM_SAMPLE_RATE, OpenAISpeechTTS
from tests.fixtures_server import ROOT, free_port

KEY = "sk-test-do-not-leak-5678"
QUESTION = "Why did the lion let the little mouse go?"


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tests.voice.openai_audio_server` under uvicorn on a free port; its /v1 URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("audio-server") / "server.log"
    env = {**os.environ, "FAKE_OPENAI_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "uvicorn", "tests.voice.openai_audio_server:app"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, proc, log_path)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"audio server exited:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return  # uvicorn listens only once the lifespan (model loading) is done
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"audio server not ready:\n{log_path.read_text()}")


@asynccontextmanager
async def started(*services: OpenAISpeechTTS | OpenAITranscriptionSTT) -> AsyncIterator[None]:
    for service in services:
        await service.start()
    try:
        yield
    finally:
        for service in services:
            await service.close()


def heard(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


@pytest.mark.slow
async def test_speech_then_transcription_round_trip(audio_server: str) -> None:
    tts = OpenAISpeechTTS(audio_server, KEY, "tts-1", "alloy", 30.0)
    stt = OpenAITranscriptionSTT(audio_server, KEY, "whisper-1", 30.0)
    async with started(tts, stt):
        speech = await tts.synthesize(QUESTION)
        assert speech.sample_rate == OPENAI_PCM_SAMPLE_RATE == 24_000
        assert 2_000 < speech.duration_ms < 6_000
        text = await stt.transcribe(speech.pcm, speech.sample_rate)
    assert {"lion", "mouse"} <= heard(text), text


@pytest.mark.slow
async def test_the_factory_builds_openai_backends_from_settings(audio_server: str) -> None:
    settings = Settings(
        _env_file=None,
        stt="openai",
        tts="openai",
        openai_base_url=audio_server,
        openai_api_key=SecretStr(KEY),
    )
    tts, stt = build_tts(settings), build_stt(settings)
    assert isinstance(tts, OpenAISpeechTTS) and isinstance(stt, OpenAITranscriptionSTT)
    async with started(tts, stt):
        speech = await tts.synthesize("The mouse was small.")
        assert "mouse" in heard(await stt.transcribe(speech.pcm, speech.sample_rate))


@pytest.mark.slow
async def test_blank_input_is_not_sent(audio_server: str) -> None:
    # The "slow" model would time out: an answer at once shows no request was made.
    tts = OpenAISpeechTTS(audio_server, KEY, "slow", "alloy", 0.5)
    stt = OpenAITranscriptionSTT(audio_server, KEY, "slow", 0.5)
    async with started(tts, stt):
        assert (await tts.synthesize("   ")).pcm == b""
        assert await stt.transcribe(b"", 16_000) == ""


@pytest.mark.slow
async def test_a_refused_key_is_an_error_that_does_not_show_it(audio_server: str) -> None:
    wrong = "sk-wrong-key-never-printed-0000"
    tts = OpenAISpeechTTS(audio_server, wrong, "tts-1", "alloy", 30.0)
    stt = OpenAITranscriptionSTT(audio_server, wrong, "whisper-1", 30.0)
    async with started(tts, stt):
        with pytest.raises(VoiceError, match="HTTP 401") as spoken:
            await tts.synthesize(QUESTION)
        with pytest.raises(VoiceError, match="HTTP 401") as heard_:
            await stt.transcribe(b"\x00\x00" * 1600, 16_000)
    for caught in (spoken, heard_):
        assert "Incorrect API key" in caught.value.message  # the server's words, kept
        assert wrong not in caught.value.message and wrong not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert caught.value.code == "voice_error"


@pytest.mark.slow
async def test_a_slow_server_times_out(audio_server: str) -> None:
    tts = OpenAISpeechTTS(audio_server, KEY, "slow", "alloy", 0.5)
    stt = OpenAITranscriptionSTT(audio_server, KEY, "slow", 0.5)
    async with started(tts, stt):
        begun = time.monotonic()
        with pytest.raises(VoiceError, match=r"did not answer within 0\.5 s"):
            await tts.synthesize(QUESTION)
        with pytest.raises(VoiceError, match=r"did not answer within 0\.5 s"):
            await stt.transcribe(b"\x00\x00" * 1600, 16_000)
        assert time.monotonic() - begun < 2.5


async def test_an_unreachable_server_is_an_error() -> None:
    url = f"http://user:secret@127.0.0.1:{free_port()}/v1"
    tts = OpenAISpeechTTS(url, KEY, "tts-1", "alloy", 5.0)
    stt = OpenAITranscriptionSTT(url, KEY, "whisper-1", 5.0)
    async with started(tts, stt):
        with pytest.raises(VoiceError, match="cannot reach") as spoken:
            await tts.synthesize(QUESTION)
        with pytest.raises(VoiceError, match="cannot reach") as heard_:
            await stt.transcribe(b"\x00\x00", 16_000)
    for caught in (spoken, heard_):
        assert "secret" not in caught.value.message and KEY not in caught.value.message
    assert "secret" not in repr(tts) and "secret" not in repr(stt)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080/v1", "ftp://127.0.0.1/v1", "http:///v1", "http://127.0.0.1:99999/v1"]
)
async def test_a_bad_base_url_refuses_to_start(url: str) -> None:
    with pytest.raises(ServiceStartupError):
        await OpenAISpeechTTS(url, KEY, "tts-1", "alloy", 5.0).start()
    with pytest.raises(ServiceStartupError):
        await OpenAITranscriptionSTT(url, KEY, "whisper-1", 5.0).start()


async def test_voices_and_the_unknown_voice() -> None:
    tts = OpenAISpeechTTS("http://127.0.0.1:1/v1", KEY, "tts-1", "my-voice", 5.0)
    assert "alloy" in tts.voices() and "my-voice" in tts.voices()
    assert tts.default_voice == "my-voice"
    with pytest.raises(Unsupported, match="alloy"):
        await tts.synthesize("Hello.", "nobody")


async def test_backends_must_be_started() -> None:
    with pytest.raises(VoiceError, match="not started"):
        await OpenAISpeechTTS("http://127.0.0.1:1/v1", KEY, "m", "alloy", 5.0).synthesize("Hi.")
    with pytest.raises(VoiceError, match="not started"):
        await OpenAITranscriptionSTT("http://127.0.0.1:1/v1", KEY, "m", 5.0).transcribe(
            b"\0\0", 16_000
        )
