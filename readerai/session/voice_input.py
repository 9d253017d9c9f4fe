"""Voice input of one connection: audio frames in, questions out.

Two child tasks, owned by the connection's task group through `run`:
- the listener feeds audio to the voice activity segmenter (in a worker thread,
  one call at a time, since a segmenter holds state) and reacts to its events:
  speech starting is a barge-in (the reply in flight is cancelled, and
  `TRANSCRIPT {final: false}` tells the client to stop playing audio); an utterance
  ending is queued for transcription;
- the transcriber turns utterances into text, one at a time and in order (in a
  worker thread, bounded by the speech-to-text service), sends the final
  `TRANSCRIPT`, and asks the text as a normal turn.

Audio waiting to be processed is bounded (`MAX_PENDING_MS`); beyond it, frames are
dropped with an `ERROR`, so a client that floods or a slow machine cannot grow
memory. In `manual` mode (push-to-talk), audio accumulates until `AUDIO_COMMIT`,
bounded by the maximum utterance length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
import anyio.to_thread
import structlog

from readerai.errors import ReaderAIError
from readerai.protocol import Error, ServerEvent, Transcript
from readerai.voice.base import (
    INPUT_SAMPLE_RATE,
    SpeechEnded,
    SpeechStarted,
    SpeechToText,
    VoiceActivitySegmenter,
)

log = structlog.get_logger(__name__)

TurnDetection = Literal["server_vad", "manual"]
#: Audio received but not yet through voice activity detection, at most.
MAX_PENDING_MS = 10_000
BYTES_PER_MS = INPUT_SAMPLE_RATE * 2 // 1000


class VoiceInput:
    """Listens to one connection's audio and turns utterances into questions."""

    def __init__(
        self,
        *,
        segmenter: VoiceActivitySegmenter,
        stt: SpeechToText,
        deliver: Callable[[ServerEvent], None],
        barge_in: Callable[[], Awaitable[object]],
        ask: Callable[[str, float], Awaitable[object]],
        max_utterance_ms: int,
        mode: TurnDetection = "server_vad",
    ) -> None:
        self.mode: TurnDetection = mode
        self._segmenter = segmenter
        self._stt = stt
        self._deliver = deliver
        self._barge_in = barge_in
        self._ask = ask
        self._max_manual_bytes = max_utterance_ms * BYTES_PER_MS
        self._frames: asyncio.Queue[bytes] = asyncio.Queue()
        self._pending_bytes = 0
        self._utterances: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue(maxsize=4)
        self._manual: bytearray = bytearray()
        self._manual_started = False

    def accept(self, pcm: bytes) -> None:
        """Take one frame of audio from the reader (never waits)."""
        if self._pending_bytes + len(pcm) > MAX_PENDING_MS * BYTES_PER_MS:
            self._deliver(
                Error(code="rate_limited", message="audio arrives faster than it is processed")
            )
            return
        self._pending_bytes += len(pcm)
        self._frames.put_nowait(pcm)

    def commit(self) -> None:
        """Push-to-talk: the audio since the last commit is one question."""
        audio, self._manual = bytes(self._manual), bytearray()
        self._manual_started = False
        if not audio:
            self._deliver(Error(code="invalid_payload", message="AUDIO_COMMIT with no audio"))
            return
        self._queue_utterance(audio, time.perf_counter())

    async def run(self) -> None:
        """The listener and the transcriber; ends when cancelled with the connection."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen)
            tg.start_soon(self._transcribe)

    async def _listen(self) -> None:
        while True:
            pcm = await self._next_audio()
            if self.mode == "manual":
                await self._listen_manual(pcm)
                continue
            events = await anyio.to_thread.run_sync(self._segmenter.feed, pcm)
            for event in events:
                if isinstance(event, SpeechStarted):
                    await self._speech_started()
                elif isinstance(event, SpeechEnded):
                    if event.truncated:
                        self._deliver(
                            Error(
                                code="utterance_truncated",
                                message="the question was too long and was cut",
                            )
                        )
                    self._queue_utterance(event.pcm, time.perf_counter())

    async def _next_audio(self) -> bytes:
        """All audio waiting, joined: one thread hop per batch, not per frame."""
        chunks = [await self._frames.get()]
        while not self._frames.empty():
            chunks.append(self._frames.get_nowait())
        pcm = b"".join(chunks)
        self._pending_bytes -= len(pcm)
        return pcm

    async def _listen_manual(self, pcm: bytes) -> None:
        if not self._manual_started:
            self._manual_started = True
            await self._speech_started()  # pressing to talk interrupts the tutor
        room = self._max_manual_bytes - len(self._manual)
        if len(pcm) > room:
            self._deliver(
                Error(code="utterance_truncated", message="the question was too long and was cut")
            )
            pcm = pcm[: max(room, 0)]
        self._manual.extend(pcm)

    async def _speech_started(self) -> None:
        self._deliver(Transcript(text="", final=False))
        await self._barge_in()

    def _queue_utterance(self, pcm: bytes, ended_at: float) -> None:
        try:
            self._utterances.put_nowait((pcm, ended_at))
        except asyncio.QueueFull:
            self._deliver(
                Error(code="rate_limited", message="too many questions waiting to be heard")
            )

    async def _transcribe(self) -> None:
        while True:
            pcm, ended_at = await self._utterances.get()
            try:
                text = await self._stt.transcribe(pcm, INPUT_SAMPLE_RATE)
            except ReaderAIError as exc:
                log.warning("voice.transcribe_failed", error=exc.code)
                self._deliver(Error(code=exc.code, message=exc.message))
                continue
            self._deliver(Transcript(text=text, final=True))
            if text:
                try:
                    await self._ask(text, ended_at)
                except ReaderAIError as exc:
                    self._deliver(Error(code=exc.code, message=exc.message))
