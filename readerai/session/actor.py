"""The connection actor: one per WebSocket, after the upgrade was accepted.

Its reader and writer run as siblings in one task group; whichever ends first
cancels the other (the client left, it broke a limit, or it stopped reading). The
reply in flight does not belong to the connection: it lives on in the session.

- Reader: receives frames, validates them into events, answers bad input with
  `ERROR` (the connection lives on), and dispatches. Questions and cancels await only
  short store writes; the reply itself runs elsewhere.
- Writer: the only task that sends. It drains a bounded `OutboundQueue`; a client
  that stops reading fills it, or makes one send outlast `send_timeout`, and is
  closed with 4008, so memory per connection stays bounded.
- Read-aloud mode (`SESSION_UPDATE {mode: read_aloud}`): audio frames go to the
  reading followed (`ReadingMode`, session/reading_mode.py) instead of voice input;
  its tasks are ended here with the voice task, and questions stay normal turns.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import structlog

from readerai.errors import (
    CloseCode,
    InvalidPayload,
    NotFound,
    ProtocolError,
    RateLimited,
    ReaderAIError,
    SlowConsumer,
    StoreUnavailable,
    Unsupported,
    close_code_for,
)
from readerai.metrics import Metrics
from readerai.protocol import (
    AudioCommit,
    AudioStart,
    ClientEvent,
    Error,
    Ping,
    PlaybackPosition,
    Pong,
    ReadingProgress,
    ReplyAudio,
    ResponseCancel,
    ResponseDelta,
    ServerEvent,
    SessionUpdate,
    StudentInterruption,
    encode,
    parse_client_event,
)
from readerai.session.catalog import PassageCatalog
from readerai.session.hub import SessionHub
from readerai.session.live import LiveSession
from readerai.session.outbound import OutboundQueue
from readerai.session.ratelimit import TokenBucket
from readerai.session.read_aloud import ReadAloudModel
from readerai.session.reading_mode import ReadingMode
from readerai.session.reading_results import ReadingRecorder
from readerai.session.runner import TurnRunner
from readerai.session.voice_input import VoiceInput
from readerai.store import PassageRecord, SessionRecord, Store
from readerai.voice.base import (
    INPUT_FORMAT,
    INPUT_SAMPLE_RATE,
    SpeechToText,
    TextToSpeech,
    VoiceActivitySegmenter,
)
from readerai.voice.frames import encode_audio_frame

log = structlog.get_logger(__name__)

CLOSE_DEADLINE = 5.0
#: How long a connection being closed may take to send the events queued before.
FLUSH_DEADLINE = 1.0
#: Frames the reader handles before it lets other tasks run (see `_reader`).
FRAMES_PER_YIELD = 16
#: Most text events written to a client in one call.
EVENTS_PER_WRITE = 32


class ClientGone(Exception):
    """The transport found the peer gone while sending."""


class Transport(Protocol):
    """The socket, as the actor needs it (the API layer adapts Starlette's)."""

    async def receive(self) -> str | bytes | None:
        """The next frame, or None once the client has gone."""

    async def send_texts(self, texts: list[str]) -> None:
        """Several text frames, in order (in one write where the server allows)."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class ConnectionState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits, from settings."""

    outbound_queue_size: int
    send_timeout: float
    rate_per_second: float
    rate_burst: int
    rate_strikes: int
    idle_timeout: float
    max_question_chars: int
    audio_bytes_per_second: int
    max_utterance_ms: int


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What an actor uses, shared by all connections of the node."""

    hub: SessionHub
    runner: TurnRunner
    catalog: PassageCatalog
    store: Store
    metrics: Metrics
    stt: SpeechToText
    tts: TextToSpeech
    new_segmenter: Callable[[], VoiceActivitySegmenter]
    #: The model read-aloud mode hears with; None: read-aloud is not offered.
    read_aloud: ReadAloudModel | None = None
    #: Scores and stores readings aloud when they end; None: they are not kept.
    readings: ReadingRecorder | None = None


class ConnectionActor:
    """Serves one accepted WebSocket for one session."""

    def __init__(
        self,
        transport: Transport,
        session_id: str,
        services: SessionServices,
        limits: ConnectionLimits,
    ) -> None:
        self.session_id = session_id
        self.state = ConnectionState.OPEN
        self.queue = OutboundQueue(limits.outbound_queue_size)
        self._transport = transport
        self._services = services
        self._limits = limits
        self._bucket = TokenBucket(limits.rate_per_second, limits.rate_burst)
        self._audio_bucket = TokenBucket(
            limits.audio_bytes_per_second, 2 * limits.audio_bytes_per_second
        )
        self._voice: VoiceInput | None = None
        self._voice_task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self._ending = False
        self._strikes = 0
        #: Messages refused, by error code: each code is logged once per connection
        #: at info (a flood would otherwise write a line per frame), the count at close.
        self._refused: Counter[str] = Counter()
        self._close: tuple[int, str] | None = None
        self._log = log.bind(session_id=session_id)
        #: Read-aloud mode: the reading followed, if any; its tasks are ended with ours.
        self._reading = ReadingMode(services, self.deliver, self._log)

    # -- Subscriber: called by the live session, never awaits ---------------------

    def deliver(self, event: ServerEvent) -> None:
        try:
            self.queue.put(event)
        except SlowConsumer as exc:
            self._end(close_code_for(exc), exc.message)

    def purge_turn(self, turn_id: str) -> None:
        self.queue.purge_turn(turn_id)

    # -- lifetime -----------------------------------------------------------------

    async def run(self, last_seq: int | None, record: SessionRecord | None = None) -> None:
        """Serve until the client leaves or is closed; returns after the close.

        The reader runs in the calling task and the writer in one task of its own;
        whichever ends first ends the other. Plain asyncio and one idle timer per
        connection (not a cancel scope per frame) keep an idle connection small.
        """
        metrics = self._services.metrics
        metrics.connection_opened(self.queue)
        loop = asyncio.get_running_loop()
        try:
            try:
                live = await self._services.hub.attach(self.session_id, self, last_seq, record)
            except (NotFound, StoreUnavailable) as exc:
                # Not found, or not readable now (1013: the client reconnects later).
                self._close = (close_code_for(exc), exc.message)
                return
            self._task = asyncio.current_task()
            self._writing = loop.create_task(self._write_then_end(live))
            self._last_rx = loop.time()
            self._idle_timer = loop.call_later(self._limits.idle_timeout, self._check_idle)
            try:
                if self._close is None:  # not already ended while attaching
                    await self._reader(live)
            except asyncio.CancelledError:
                # Our own `_end` cancels the reader; anything else is not ours to swallow.
                if not self._ending or self._uncancel() > 0:
                    raise
            finally:
                self._ending = True  # the reader is done: the writer must not cancel us
                self._idle_timer.cancel()
                await self._stop_tasks()
                if self._voice is not None:
                    live.voice_connections -= 1
                    if live.voice_connections == 0:
                        live.audio_out = False  # nobody is listening: do not synthesise
                self._services.hub.detach(live, self)
        finally:
            metrics.connection_closed(self.queue)
            await self._close_transport()

    async def _write_then_end(self, live: LiveSession) -> None:
        try:
            await self._writer(live)
        finally:
            self._stop_reader()

    async def _stop_tasks(self) -> None:
        writing = self._writing
        if (
            writing is not None
            and self._close is not None
            and self._close[0] != CloseCode.SLOW_CONSUMER
        ):
            # Closing on purpose: the events queued before it (the errors that say
            # why) go out first, for a moment at most.
            self.queue.close()
            await asyncio.wait([writing], timeout=FLUSH_DEADLINE)
        owned = (self._writing, self._voice_task, *self._reading.tasks)
        tasks = [t for t in owned if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                self._log.error("connection.task_failed", exc_info=task.exception())
        # A cancelled task keeps its CancelledError, whose traceback holds this actor's
        # frames: with the handles kept, actor, live session and socket formed a cycle
        # that only a full GC pass (rare by design, `collector.py`) could free, so every
        # closed connection stayed in memory a while (`readerai bench soak`).
        self._writing = self._voice_task = None
        self._reading.close()

    def _uncancel(self) -> int:
        task = self._task
        return task.uncancel() if task is not None else 0

    def _stop_reader(self) -> None:
        task = self._task
        if task is not None and not self._ending and task is not asyncio.current_task():
            self._ending = True
            task.cancel()
        elif task is asyncio.current_task():
            self._ending = True  # the reader itself returns next

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._last_rx
        if quiet >= self._limits.idle_timeout:
            self._end(CloseCode.IDLE_TIMEOUT, "idle timeout")
        else:
            remaining = self._limits.idle_timeout - quiet
            self._idle_timer = loop.call_later(remaining, self._check_idle)

    def _end(self, code: int, reason: str) -> None:
        """Close the connection with `code` (the first reason given wins)."""
        if self._close is None:
            self._close = (code, reason)
            self._log.info(
                "connection.closing", code=code, reason=reason, refused=self._refused.total()
            )
        self._stop_reader()

    async def _close_transport(self) -> None:
        if self._close is None or self.state is ConnectionState.CLOSED:
            self.state = ConnectionState.CLOSED
            return
        self.state = ConnectionState.CLOSING
        code, reason = self._close
        # A client that stopped reading takes no close frame either: it gets a moment,
        # then the server drops the connection (`api/bounded_protocols.py`).
        deadline = FLUSH_DEADLINE if code == CloseCode.SLOW_CONSUMER else CLOSE_DEADLINE
        with anyio.move_on_after(deadline, shield=True):
            try:
                await self._transport.close(code, reason[:120])
            except Exception as exc:  # noqa: BLE001 - the peer may already be gone
                self._log.debug("connection.close_failed", error=repr(exc))
        self.state = ConnectionState.CLOSED

    # -- writer -------------------------------------------------------------------

    async def _writer(self, live: LiveSession) -> None:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            try:
                async with asyncio.timeout(self._limits.send_timeout):
                    if isinstance(event, ReplyAudio):
                        if live.audio_sendable(event.turn_id):
                            await self._transport.send_bytes(
                                encode_audio_frame(
                                    event.turn_id, event.seq, event.sample_rate, event.pcm
                                )
                            )
                    else:
                        # The text events already waiting go out together: a turn's
                        # acknowledgement, `RESPONSE_STARTED` and first delta are
                        # queued at once, and each write is a system call.
                        texts = [encode(e) for e in self._text_run(live, event)]
                        if texts:
                            await self._transport.send_texts(texts)
            except ClientGone:
                return
            except TimeoutError:
                exc = SlowConsumer(f"a send took over {self._limits.send_timeout}s")
                self._end(close_code_for(exc), exc.message)
                return

    def _text_run(self, live: LiveSession, first: ServerEvent) -> list[ServerEvent]:
        """`first` and the text events queued right behind it (at most
        `EVENTS_PER_WRITE`), without the deltas of a cancelled reply."""
        run = [first, *self.queue.take_while(_is_text, EVENTS_PER_WRITE - 1)]
        return [
            e for e in run if not isinstance(e, ResponseDelta) or live.delta_sent(e.turn_id, e.seq)
        ]

    # -- reader -------------------------------------------------------------------

    async def _reader(self, live: LiveSession) -> None:
        loop = asyncio.get_running_loop()
        # Frames already received come back from `receive` without a pause: a client
        # sending as fast as it can would hold the event loop until it is closed, so
        # the reader lets the other connections run every `FRAMES_PER_YIELD` frames.
        unyielded = 0
        while True:
            frame = await self._transport.receive()
            if frame is None:
                return
            unyielded += 1
            if unyielded >= FRAMES_PER_YIELD:
                unyielded = 0
                await asyncio.sleep(0)
            self._last_rx = loop.time()
            received_at = time.perf_counter()
            if isinstance(frame, bytes):
                if not self._take_audio(frame):
                    return
                continue
            if not self._admit(self._bucket.take()):
                return
            try:
                event = parse_client_event(
                    frame, max_question_chars=self._limits.max_question_chars
                )
                await self._dispatch(live, event, received_at)
            except ReaderAIError as exc:
                self._refuse(exc)

    def _take_audio(self, frame: bytes) -> bool:
        """Hand an audio frame to the reading followed (read-aloud mode) or else to voice
        input; False when the connection must close."""
        try:
            if self._voice is None and not self._reading.following:
                raise Unsupported("send SESSION_UPDATE {audio: {...}} before audio frames")
            if len(frame) % 2:
                raise InvalidPayload("PCM16 audio frames have an even number of bytes")
        except ReaderAIError as exc:
            # A refused frame counts as a message: a flood of them is closed (1008).
            if not self._admit(self._bucket.take()):
                return False
            self._refuse(exc)
            return True
        if not self._admit(self._audio_bucket.take(len(frame))):
            return False
        # In read-aloud mode the audio is the reading; else it is voice input.
        if not self._reading.accept(frame) and self._voice is not None:
            self._voice.accept(frame)
        return True

    def _admit(self, within_limit: bool) -> bool:
        """Count a message over the rate limit; False when the connection must close."""
        if within_limit:
            return True
        self._strikes += 1
        exc = RateLimited("too many messages; slow down")
        if self._strikes > self._limits.rate_strikes:
            self._end(close_code_for(exc), "rate limit exceeded")
            return False
        self._refuse(exc)
        return True

    def _refuse(self, exc: ReaderAIError) -> None:
        # The client's mistake is routine; anything else is ours to look at.
        client_fault = isinstance(exc, ProtocolError | RateLimited)
        self._refused[exc.code] += 1
        if self._refused[exc.code] == 1:
            (self._log.info if client_fault else self._log.warning)("client.refused", code=exc.code)
        else:
            self._log.debug("client.refused", code=exc.code)
        self._services.metrics.errors.labels(code=exc.code).inc()
        self.deliver(Error(code=exc.code, message=exc.message))

    async def _dispatch(self, live: LiveSession, event: ClientEvent, received_at: float) -> None:
        services = self._services
        if isinstance(event, StudentInterruption):
            await services.runner.ask(live, event.question_text, received_at)
        elif isinstance(event, ResponseCancel):
            await services.runner.cancel(live, event.turn_id)
        elif isinstance(event, ReadingProgress):
            passage = await self._require_passage(event.passage_id)
            if event.position > len(passage.text):  # a character offset into its text
                raise InvalidPayload(
                    f"position {event.position} is past the end of passage "
                    f"{event.passage_id!r} ({len(passage.text)} characters)"
                )
            self._reading.reached(live, event.passage_id, event.position)
        elif isinstance(event, SessionUpdate):
            await self._update_session(live, event)
        elif isinstance(event, AudioStart | AudioCommit):
            if self._voice is None or self._voice.mode != "manual":
                raise Unsupported(f"{event.TYPE} needs SESSION_UPDATE {{turnDetection: manual}}")
            # In read-aloud mode the audio between the two is a question, not the reading.
            self._reading.asking = isinstance(event, AudioStart)
            if isinstance(event, AudioCommit):
                self._voice.commit()
        elif isinstance(event, PlaybackPosition):
            await services.runner.playback_stopped(live, event.turn_id, event.ms)
        elif isinstance(event, Ping):
            self.deliver(Pong(id=event.id))

    async def _update_session(self, live: LiveSession, event: SessionUpdate) -> None:
        """Apply the fields present in `event`; validate all before changing any."""
        given = event.model_fields_set  # absent means "unchanged"
        services = self._services
        if event.audio is not None:
            audio = event.audio
            if audio.input_format != INPUT_FORMAT or audio.input_sample_rate != INPUT_SAMPLE_RATE:
                raise Unsupported(
                    f"audio input {audio.input_format!r} at {audio.input_sample_rate} Hz is not "
                    f"supported; supported: {INPUT_FORMAT!r} at {INPUT_SAMPLE_RATE} Hz"
                )
        if event.voice is not None and event.voice not in services.tts.voices():
            raise Unsupported(
                f"no voice {event.voice!r}; voices: {', '.join(services.tts.voices())}"
            )
        reading: PassageRecord | None = None
        if event.mode == "read_aloud":
            passage_id = event.passage_id if "passage_id" in given else live.passage_id
            reading = await self._reading.passage(passage_id)
        if "passage_id" in given:
            if event.passage_id is not None:
                await self._require_passage(event.passage_id)
            await services.store.set_session_passage(live.id, event.passage_id)
            live.passage_id = event.passage_id
            services.hub.feed.student(
                live.class_id, live.user_id, live.id, passageId=event.passage_id
            )
        if event.voice is not None:
            live.voice = event.voice
        if event.audio is not None:
            live.audio_out = event.audio.output
            self._start_voice(live)
        if event.turn_detection is not None:
            self._start_voice(live).mode = event.turn_detection
        if reading is not None:
            self._reading.start(live, reading)
        elif event.mode == "conversation":
            self._reading.stop()

    def _start_voice(self, live: LiveSession) -> VoiceInput:
        if self._voice is None:
            live.voice_connections += 1
            services = self._services
            runner = services.runner
            self._voice = VoiceInput(
                segmenter=services.new_segmenter(),
                stt=services.stt,
                deliver=self.deliver,
                barge_in=lambda: runner.cancel(live, None),
                ask=lambda text, at: runner.ask(live, text, at),
                max_utterance_ms=self._limits.max_utterance_ms,
            )
            # Ended (cancelled and awaited) with the connection, in `_stop_tasks`.
            self._voice_task = asyncio.get_running_loop().create_task(self._voice.run())
        return self._voice

    async def _require_passage(self, passage_id: str) -> PassageRecord:
        passage = await self._services.catalog.get(passage_id)
        if passage is None:
            raise NotFound(f"no passage {passage_id!r}")
        return passage


def _is_text(event: ServerEvent) -> bool:
    return not isinstance(event, ReplyAudio)
