"""The turn speaker: speaks a reply sentence by sentence while its text streams.

Text deltas are fed as they arrive; each completed sentence is synthesised (in a
worker thread, by the `TextToSpeech`) and published as `ReplyAudio` chunks, after
the deltas that carried it. `run` is a child task of the turn: cancelling the turn
cancels it, and no sentence is synthesised after that. A synthesis failure is
reported once as `ERROR voice_error` and the reply goes on as text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from readerai.errors import ReaderAIError
from readerai.protocol import Error, ReplyAudio, ServerEvent
from readerai.session.spoken import SpokenTimeline
from readerai.session.turn import Turn
from readerai.voice.base import TextToSpeech
from readerai.voice.frames import split_pcm
from readerai.voice.sentences import SentenceChunker

log = structlog.get_logger(__name__)

#: Longest audio in one binary frame: small frames let a cancel cut playback short.
FRAME_MS = 200


class TurnSpeaker:
    """Speaks one turn's reply."""

    def __init__(
        self,
        tts: TextToSpeech,
        voice: str | None,
        turn: Turn,
        publish: Callable[[ServerEvent], None],
    ) -> None:
        self._tts = tts
        self._voice = voice
        self._turn = turn
        self._publish = publish
        self._chunker = SentenceChunker()
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self.timeline = SpokenTimeline()
        self._seq = 0

    def feed(self, delta: str) -> None:
        for sentence in self._chunker.feed(delta):
            self._sentences.put_nowait(sentence)

    def finish(self) -> None:
        """The text is complete: speak what is left, then end `run`."""
        rest = self._chunker.flush()
        if rest and rest.strip():
            self._sentences.put_nowait(rest)
        self._sentences.put_nowait(None)

    async def run(self) -> None:
        while (sentence := await self._sentences.get()) is not None:
            try:
                speech = await self._tts.synthesize(sentence, self._voice)
            except ReaderAIError as exc:
                log.warning("speech.failed", turn_id=self._turn.id, error=exc.code)
                self._publish(Error(code="voice_error", message=exc.message, turn_id=self._turn.id))
                return
            if not speech.pcm:
                continue
            self.timeline.add(self._turn.text, sentence, speech.duration_ms)
            for pcm in split_pcm(speech.pcm, speech.sample_rate, FRAME_MS):
                self._seq += 1
                self._publish(
                    ReplyAudio(
                        turn_id=self._turn.id,
                        seq=self._seq,
                        sample_rate=speech.sample_rate,
                        pcm=pcm,
                    )
                )
