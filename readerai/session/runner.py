"""The turn runner: one reply at a time per session, with barge-in.

`ask` stores the question, acknowledges it, and starts the reply as a task owned by
the app's supervisor (not the connection), so the reply finishes and is stored even
if the socket drops. A new question or `cancel` stops the reply in flight first:

- the turn is flagged cancelled and its queued deltas are purged from every
  connection at once, so no delta of it is written after the cancel is processed;
- its task is cancelled, which closes the engine stream and aborts the upstream call;
- the task stores the reply as what was sent, then publishes `RESPONSE_DONE`;
- only then does the next turn begin: turns of one session never interleave.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from readerai.engines.base import ChatTurn, Engine, EngineRequest
from readerai.engines.limiter import EngineLimiter
from readerai.errors import EngineTimeout, ReaderAIError
from readerai.grounding import cite, select_context
from readerai.metrics import Metrics
from readerai.protocol import (
    ErrorInfo,
    InterruptionAcknowledged,
    ReplyStatus,
    ResponseDone,
    ResponseQueued,
    ResponseStarted,
)
from readerai.session.catalog import PassageCatalog
from readerai.session.live import LiveSession, SpokenReply
from readerai.session.speaker import TurnSpeaker
from readerai.session.turn import Turn
from readerai.store import Store
from readerai.supervisor import TaskSupervisor
from readerai.voice.base import TextToSpeech

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TurnLimits:
    """The settings a turn needs."""

    engine_timeout: float
    max_reply_tokens: int
    context_sentences: int


class TurnRunner:
    """Runs turns for every live session on this node."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        limiter: EngineLimiter,
        catalog: PassageCatalog,
        supervisor: TaskSupervisor,
        metrics: Metrics,
        limits: TurnLimits,
        tts: TextToSpeech | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._limiter = limiter
        self._catalog = catalog
        self._supervisor = supervisor
        self._metrics = metrics
        self._limits = limits
        self._tts = tts

    async def ask(self, live: LiveSession, question: str, received_at: float) -> Turn:
        """Store `question`, acknowledge it and start its reply; cancels any reply first."""
        async with live.turn_lock:
            await self._cancel_locked(live, None)
            turn_id = uuid.uuid4().hex
            await self._store.add_message(
                session_id=live.id,
                turn_id=turn_id,
                role="student",
                text=question,
                status=ReplyStatus.COMPLETED,
            )
            turn = Turn(id=turn_id, question=question)
            live.turn = turn
            live.publish(
                InterruptionAcknowledged(turn_id=turn_id, timestamp=datetime.now(UTC).isoformat())
            )
            self._metrics.ack_seconds.observe(time.perf_counter() - received_at)
            turn.task = self._supervisor.start(
                self._run(live, turn, received_at),
                name="turn",
                session_id=live.id,
                turn_id=turn_id,
            )
            return turn

    async def cancel(self, live: LiveSession, turn_id: str | None) -> bool:
        """Cancel the reply in flight (only if it is `turn_id`, when given)."""
        async with live.turn_lock:
            return await self._cancel_locked(live, turn_id)

    async def _cancel_locked(self, live: LiveSession, turn_id: str | None) -> bool:
        turn = live.turn
        if turn is None or (turn_id is not None and turn.id != turn_id):
            return False
        turn.cancel_requested = True
        live.purge_turn(turn.id)
        if turn.task is not None:
            turn.task.cancel()
            # Wait without being cancellable by it: the task stores itself, then
            # publishes RESPONSE_DONE; the next turn must start after that.
            await asyncio.wait({turn.task})
        return True

    async def playback_stopped(self, live: LiveSession, turn_id: str, played_ms: float) -> None:
        """The client stopped playing `turn_id`'s audio at `played_ms`: cut the stored
        reply to what the student heard (the reply becomes `cancelled`)."""
        turn = live.turn
        if turn is not None and turn.id == turn_id:
            turn.played_ms = played_ms  # used when the cancel that follows stores it
            return
        reply = live.spoken.get(turn_id)
        if reply is None or played_ms >= reply.timeline.total_ms:
            return
        heard = reply.timeline.heard_text(reply.text, played_ms)
        await self._store.update_message(
            reply.message_id,
            text=heard,
            status=ReplyStatus.CANCELLED,
            citations=cite(heard, reply.context) if heard else [],
        )
        reply.status = ReplyStatus.CANCELLED
        log.info("turn.cut_to_heard", session_id=live.id, turn_id=turn_id, ms=played_ms)

    async def _run(self, live: LiveSession, turn: Turn, received_at: float) -> None:
        bound = log.bind(session_id=live.id, turn_id=turn.id)
        status = ReplyStatus.FAILED
        request = EngineRequest(question=turn.question)
        speaker: TurnSpeaker | None = None
        speaking: asyncio.Task[None] | None = None
        if live.audio_out and self._tts is not None:
            speaker = TurnSpeaker(self._tts, live.voice, turn, live.publish)
            turn.timeline = speaker.timeline
            speaking = self._supervisor.start(
                speaker.run(), name="turn.speaker", session_id=live.id, turn_id=turn.id
            )
        try:
            request = await self._request(live, turn)
            async with asyncio.timeout(self._limits.engine_timeout):
                async with self._limiter.slot(
                    lambda n: live.publish(ResponseQueued(turn_id=turn.id, position=n))
                ):
                    live.publish(ResponseStarted(turn_id=turn.id))
                    async for text in self._engine.stream(request):
                        if not text:
                            continue
                        if turn.seq == 0:
                            turn.first_delta_at = time.perf_counter()
                            self._metrics.first_delta_seconds.observe(
                                turn.first_delta_at - received_at
                            )
                        live.publish(turn.append(text))
                        if speaker is not None:
                            speaker.feed(text)
                # The engine slot is free; the reply is done when its audio is out.
                if speaker is not None and speaking is not None:
                    speaker.finish()
                    # `wait`, not `await speaking`: a cancel of this turn must not wait
                    # for a sentence being synthesised in a worker thread.
                    await asyncio.wait({speaking})
            status = ReplyStatus.COMPLETED
        except asyncio.CancelledError:
            status = ReplyStatus.CANCELLED if turn.cancel_requested else ReplyStatus.INTERRUPTED
            raise
        except TimeoutError:
            turn.error = EngineTimeout(f"no complete reply within {self._limits.engine_timeout}s")
        except ReaderAIError as exc:
            turn.error = exc
        except Exception as exc:  # noqa: BLE001 - logged; the turn ends as failed
            bound.exception("turn.engine_failed")
            turn.error = ReaderAIError(f"the tutor failed: {type(exc).__name__}")
        finally:
            if speaking is not None and not speaking.done():
                speaking.cancel()  # no sentence is synthesised after the turn ends
            # Storing the reply must survive a second cancel (shutdown): run it as its
            # own supervised task and shield our wait on it.
            finish = self._supervisor.start(
                self._finish(live, turn, status, request),
                name="turn.finish",
                shielded=True,
                session_id=live.id,
                turn_id=turn.id,
            )
            await asyncio.shield(finish)

    async def _request(self, live: LiveSession, turn: Turn) -> EngineRequest:
        passage = await self._catalog.get(live.passage_id) if live.passage_id else None
        context: list[tuple[int, str]] = []
        if passage is not None:
            context = select_context(
                passage.sentences, turn.question, self._limits.context_sentences
            )
        return EngineRequest(
            question=turn.question,
            context=context,
            passage_title=passage.title if passage else None,
            history=list(live.history),
            max_tokens=self._limits.max_reply_tokens,
        )

    async def _finish(
        self, live: LiveSession, turn: Turn, status: ReplyStatus, request: EngineRequest
    ) -> None:
        text = turn.finish(status)
        turn.citations = cite(text, request.context) if text else []
        error = turn.error
        async with live.state_lock:
            try:
                stored = await self._store.add_message(
                    session_id=live.id,
                    turn_id=turn.id,
                    role="tutor",
                    text=text,
                    status=status,
                    citations=turn.citations,
                )
                if turn.timeline is not None and turn.timeline.spans:
                    live.remember_spoken(
                        turn.id,
                        SpokenReply(stored.id, turn.text, status, turn.timeline, request.context),
                    )
            except ReaderAIError as exc:
                log.error("turn.store_failed", session_id=live.id, turn_id=turn.id, error=exc.code)
                error = error or exc
            if live.turn is turn:
                live.turn = None
            live.history.extend(
                [ChatTurn(role="student", text=turn.question), ChatTurn(role="tutor", text=text)]
            )
            live.publish(
                ResponseDone(
                    turn_id=turn.id,
                    status=status,
                    text=text,
                    citations=turn.citations,
                    error=ErrorInfo(code=error.code, message=error.message) if error else None,
                )
            )
        self._metrics.turns.labels(status=status.value).inc()
        log.info(
            "turn.finished",
            session_id=live.id,
            turn_id=turn.id,
            status=status.value,
            chars=len(text),
            seq=turn.seq,
            first_delta_ms=round((turn.first_delta_at - turn.started_at) * 1000)
            if turn.first_delta_at
            else None,
        )
        live.release_if_idle()
