"""The turn runner: one reply at a time per session, with barge-in.

`ask` stores the question, acknowledges it, and starts the reply as a task owned by
the app's supervisor (not the connection), so the reply finishes and is stored even
if the socket drops. A new question or `cancel` stops the reply in flight first:

- the turn is flagged cancelled and its queued deltas are purged from every
  connection at once, so no delta of it is written after the cancel is processed;
- its task is cancelled, which closes the engine stream and aborts the upstream call;
- the task stores the reply as what was sent, then publishes `RESPONSE_DONE`;
- only then does the next turn begin: turns of one session never interleave.

Across nodes (see docs/scale-out.md):
- a turn runs on exactly one node: the node takes the session's turn lease on the
  bus before storing the question; if another node holds it, that node is asked to
  cancel its reply and the lease passes over once it is released (or its holder is
  found dead, or after `lease` seconds);
- the reply is stored as it streams: an `in_progress` row at the start, a
  checkpoint every second (heartbeat included), the final text and status at the
  end. A row that stops being checkpointed belongs to a dead node and is shown as
  `interrupted` (`session/hub.py`);
- the reply's events are copied to the session's reply stream, so a client that
  reconnects to another node resumes it there (`session/replystream.py`);
- a cancel for a reply running on another node is sent to that node, with how much
  of the reply the student here had received.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from readerai.bus.base import Bus
from readerai.engines.base import ChatTurn, Engine, EngineRequest
from readerai.engines.cluster import ClusterLimit
from readerai.engines.limiter import EngineLimiter
from readerai.errors import BusUnavailable, EngineTimeout, ReaderAIError
from readerai.grounding import cite, select_context
from readerai.logs import without_log_context
from readerai.metrics import Metrics
from readerai.protocol import (
    ErrorInfo,
    InterruptionAcknowledged,
    ReplyStatus,
    ResponseDone,
    ResponseQueued,
    ResponseStarted,
    ServerEvent,
    TurnReason,
)
from readerai.session.catalog import PassageCatalog
from readerai.session.checkpoints import ReplyCheckpoints
from readerai.session.feed import ClassFeed
from readerai.session.live import LiveSession, SpokenReply
from readerai.session.replystream import ReplyStream
from readerai.session.router import SessionRouter
from readerai.session.speaker import TurnSpeaker
from readerai.session.turn import Turn
from readerai.store import NewMessage, Store
from readerai.supervisor import TaskSupervisor
from readerai.tracing import AttributeValue, Tracing
from readerai.voice.base import TextToSpeech

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TurnLimits:
    """The settings a turn needs."""

    engine_timeout: float
    max_reply_tokens: int
    context_sentences: int
    #: A reply not checkpointed for this long is taken for dead (and its lease).
    lease_seconds: float = 5.0
    stream_max_len: int = 4096


def lease_key(session_id: str) -> str:
    """The bus lease that keeps a session's turns on one node."""
    return f"turn:{session_id}"


#: How often the node holding a lease looks for its release while taking it over.
LEASE_POLL_SECONDS = 0.05


class TurnRunner:
    """Runs turns for every live session on this node."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        limiter: EngineLimiter,
        cluster: ClusterLimit,
        catalog: PassageCatalog,
        supervisor: TaskSupervisor,
        metrics: Metrics,
        limits: TurnLimits,
        router: SessionRouter,
        tts: TextToSpeech | None = None,
        feed: ClassFeed | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._feed = feed or ClassFeed()
        self._tracing = tracing or Tracing(enabled=False, environ={})
        self._router = router
        self._bus: Bus = router.bus
        self._store = store
        self._engine = engine
        self._limiter = limiter
        self._cluster = cluster
        self._catalog = catalog
        self._supervisor = supervisor
        self._metrics = metrics
        self._limits = limits
        self._tts = tts
        self._checkpoints = ReplyCheckpoints(
            store,
            self._bus,
            lease_key,
            limits.lease_seconds,
            # One loop for every turn of the node: not bound to the turn that starts it.
            lambda coro: supervisor.start(without_log_context(coro), name="turn.checkpoints"),
        )

    async def ask(self, live: LiveSession, question: str, received_at: float) -> Turn:
        """Store `question`, acknowledge it and start its reply; cancels any reply first."""
        async with live.turn_lock:
            await self._cancel_locked(live, None)
            turn_id = uuid.uuid4().hex
            trace = self._tracing.turn(live.id, turn_id, len(question))
            turn = Turn(id=turn_id, question=question, trace=trace)
            # Log lines and spans from here on name the turn, in this task and in the
            # turn's tasks (a task keeps the context it was started in).
            bound = structlog.contextvars.bind_contextvars(turn_id=turn_id)
            try:
                with trace.active():
                    await self._begin(live, turn, received_at)
            finally:
                structlog.contextvars.reset_contextvars(**bound)
            self._feed.message(
                live.class_id,
                live.user_id,
                live.id,
                turnId=turn.id,
                role="student",
                text=question,
                status=ReplyStatus.COMPLETED.value,
            )
            return turn

    async def _begin(self, live: LiveSession, turn: Turn, received_at: float) -> None:
        """Take the lease, start the reply, store the question and acknowledge it."""
        await self._take_lease(live)
        # The reply starts while the question is stored: an upstream's first token
        # takes longer than the write. Its events wait at the turn's gate until the
        # acknowledgement is out.
        turn.task = self._supervisor.start(
            self._run(live, turn, received_at),
            name="turn",
            session_id=live.id,
            turn_id=turn.id,
        )
        try:
            # The question and its reply's `in_progress` row in one write: from the
            # acknowledgement on, a node's death leaves both behind.
            with self._tracing.span("store.question"):
                _, reply = await self._store.add_messages(
                    [
                        NewMessage(
                            live.id, turn.id, "student", turn.question, ReplyStatus.COMPLETED
                        ),
                        NewMessage(live.id, turn.id, "tutor", "", ReplyStatus.IN_PROGRESS),
                    ]
                )
        except BaseException:
            turn.gate.abandon()
            turn.task.cancel()
            await asyncio.wait({turn.task})
            raise
        turn.message_id = reply.id
        live.turn = turn
        live.publish(
            InterruptionAcknowledged(turn_id=turn.id, timestamp=datetime.now(UTC).isoformat())
        )
        self._metrics.ack_seconds.observe(time.perf_counter() - received_at)
        turn.gate.open()

    async def offer(self, live: LiveSession, text: str, reason: TurnReason) -> Turn | None:
        """Say `text` as a tutor turn nobody asked for (`reason`: why, sent with
        `RESPONSE_STARTED`), stored as a tutor message alone; no engine is used.

        Never interrupts: None, and nothing said, while a reply is in flight or
        another node holds the session's turn lease.
        """
        async with live.turn_lock:
            if live.streaming_turn() is not None or not await self._lease_free(live):
                return None
            turn = Turn(id=uuid.uuid4().hex, question="", script=text, reason=reason)
            turn.task = self._supervisor.start(
                self._run(live, turn, time.perf_counter()),
                name="turn.offer",
                session_id=live.id,
                turn_id=turn.id,
            )
            try:
                reply = await self._store.add_message(
                    session_id=live.id,
                    turn_id=turn.id,
                    role="tutor",
                    text="",
                    status=ReplyStatus.IN_PROGRESS,
                )
            except BaseException:
                turn.gate.abandon()
                turn.task.cancel()
                await asyncio.wait({turn.task})
                raise
            turn.message_id = reply.id
            live.turn = turn
            turn.gate.open()
            return turn

    async def _lease_free(self, live: LiveSession) -> bool:
        """Take the session's turn lease if no node holds it (True while the bus is down)."""
        try:
            holder = await self._bus.acquire_lease(
                lease_key(live.id), self._bus.node_id, self._limits.lease_seconds
            )
        except BusUnavailable:
            return True
        return holder is None

    async def cancel(self, live: LiveSession, turn_id: str | None) -> bool:
        """Cancel the reply in flight (only if it is `turn_id`, when given)."""
        async with live.turn_lock:
            return await self._cancel_locked(live, turn_id)

    def cancel_soon(self, live: LiveSession, turn_id: str | None, seen_seq: int) -> None:
        """Another node asks to stop this session's reply; its student had `seen_seq`."""
        turn = live.turn
        if turn is not None:
            turn.mark_sent(seen_seq)
        self._supervisor.start(
            self.cancel(live, turn_id), name="turn.remote_cancel", session_id=live.id
        )

    async def _cancel_locked(self, live: LiveSession, turn_id: str | None) -> bool:
        if live.turn is None and live.remote is not None:
            return await self._cancel_remote(live, turn_id)
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

    async def _cancel_remote(self, live: LiveSession, turn_id: str | None) -> bool:
        """Stop a reply that another node is writing, and wait for its end here."""
        remote = live.remote
        if remote is None or (turn_id is not None and remote.turn.id != turn_id):
            return False
        remote.turn.cancel_requested = True
        live.purge_turn(remote.turn.id)
        try:
            await self._router.request_cancel(live.id, remote.turn.id, remote.turn.sent_seq)
        except BusUnavailable:
            log.warning("turn.remote_cancel_unreachable", session_id=live.id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._limits.lease_seconds):
                await remote.done.wait()
        return True

    async def _take_lease(self, live: LiveSession) -> None:
        """Hold the session's turn lease; ask its holder to stop and wait if needed.

        While the bus is down, turns proceed without it (sessions keep working on
        their node); the lease only matters when one session is open on two nodes.
        """
        key, me, ttl = lease_key(live.id), self._bus.node_id, self._limits.lease_seconds
        deadline = time.monotonic() + ttl
        asked = False
        try:
            while (holder := await self._bus.acquire_lease(key, me, ttl)) is not None:
                if not asked:
                    await self._router.request_cancel(live.id, None, 0, node=holder)
                    asked = True
                if time.monotonic() > deadline or not await self._bus.node_alive(holder):
                    log.warning("turn.lease_taken_over", session_id=live.id, holder=holder)
                    await self._bus.take_lease(key, me, ttl)
                    return
                await asyncio.sleep(LEASE_POLL_SECONDS)
        except BusUnavailable:
            log.info("turn.lease_skipped", session_id=live.id, reason="bus unavailable")

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
        # This task's context only (a turn the tutor offers was not bound by `ask`).
        structlog.contextvars.bind_contextvars(turn_id=turn.id)
        bound = log.bind(session_id=live.id, turn_id=turn.id)
        status = ReplyStatus.FAILED
        request = EngineRequest(question=turn.question)
        stream = (
            ReplyStream(self._bus, self._supervisor, live.id, turn.id, self._limits.stream_max_len)
            if self._bus.has_streams
            else None
        )

        def publish_and_stream(event: ServerEvent) -> None:
            live.publish(event)
            if stream is not None:
                stream.feed(event)

        def emit(event: ServerEvent) -> None:
            turn.gate.send(publish_and_stream, event)

        def publish(event: ServerEvent) -> None:
            turn.gate.send(live.publish, event)

        speaker: TurnSpeaker | None = None
        speaking: asyncio.Task[None] | None = None
        if live.audio_out and self._tts is not None:
            speaker = TurnSpeaker(self._tts, live.voice, turn, publish)
            turn.timeline = speaker.timeline
            speaking = self._supervisor.start(
                speaker.run(), name="turn.speaker", session_id=live.id, turn_id=turn.id
            )
        try:
            self._checkpoints.add(live, turn)
            if turn.script is None:
                request = await self._request(live, turn)
            async with asyncio.timeout(self._limits.engine_timeout):
                async with self._engine_slot(turn, publish):
                    emit(ResponseStarted(turn_id=turn.id, reason=turn.reason))
                    async for text in self._reply(turn, request):
                        if not text:
                            continue
                        if turn.seq == 0 and turn.script is None:
                            self._tracing.event("first_token")
                            turn.first_delta_at = time.perf_counter()
                            self._metrics.first_delta_seconds.observe(
                                turn.first_delta_at - received_at
                            )
                        emit(turn.append(text))
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
            self._checkpoints.discard(turn)
            # Storing the reply must survive a second cancel (shutdown): run it as its
            # own supervised task and shield our wait on it.
            finish = self._supervisor.start(
                self._finish(live, turn, status, request, emit, stream),
                name="turn.finish",
                shielded=True,
                session_id=live.id,
                turn_id=turn.id,
            )
            try:
                await asyncio.shield(finish)
            finally:
                turn.trace.end(status.value, turn.error.code if turn.error else None)

    async def _store_reply(
        self, live: LiveSession, turn: Turn, text: str, status: ReplyStatus
    ) -> int:
        """Write the reply whole (over its `in_progress` row, if any); its message id."""
        if turn.message_id is not None:
            await self._store.update_message(
                turn.message_id, text=text, status=status, citations=turn.citations
            )
            return turn.message_id
        stored = await self._store.add_message(
            session_id=live.id,
            turn_id=turn.id,
            role="tutor",
            text=text,
            status=status,
            citations=turn.citations,
        )
        return stored.id

    @contextlib.asynccontextmanager
    async def _engine_slot(
        self, turn: Turn, publish: Callable[[ServerEvent], None]
    ) -> AsyncIterator[None]:
        """A slot of the engine, on this node and in the cluster; none for a scripted turn."""
        if turn.script is not None:
            yield
            return
        asked = time.perf_counter()
        async with (
            self._limiter.slot(lambda n: publish(ResponseQueued(turn_id=turn.id, position=n))),
            self._cluster.slot(lambda: publish(ResponseQueued(turn_id=turn.id, position=1))),
        ):
            waited = time.perf_counter() - asked
            self._metrics.engine_wait_seconds.observe(waited)
            attributes: dict[str, AttributeValue] = {
                "engine.name": self._engine.name,
                "engine.wait_ms": waited * 1e3,
            }
            with self._tracing.span("engine.stream", **attributes):
                yield

    def _reply(self, turn: Turn, request: EngineRequest) -> AsyncIterator[str]:
        """The reply's deltas: the engine's, or a scripted turn's line in one."""
        return self._engine.stream(request) if turn.script is None else _said(turn.script)

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
        self,
        live: LiveSession,
        turn: Turn,
        status: ReplyStatus,
        request: EngineRequest,
        emit: Callable[[ServerEvent], None],
        stream: ReplyStream | None,
    ) -> None:
        if not await turn.gate.stored():
            # The question was never stored nor acknowledged: nothing to store or send.
            with contextlib.suppress(BusUnavailable):
                await self._bus.release_lease(lease_key(live.id), self._bus.node_id)
            live.release_if_idle()
            return
        text = turn.finish(status)
        turn.citations = cite(text, request.context) if text else []
        error = turn.error
        async with live.state_lock:
            try:
                with self._tracing.span("store.reply"):
                    message_id = await self._store_reply(live, turn, text, status)
                if turn.timeline is not None and turn.timeline.spans:
                    live.remember_spoken(
                        turn.id,
                        SpokenReply(message_id, turn.text, status, turn.timeline, request.context),
                    )
            except ReaderAIError as exc:
                log.error("turn.store_failed", session_id=live.id, turn_id=turn.id, error=exc.code)
                error = error or exc
            if live.turn is turn:
                live.turn = None
            if turn.question:  # a turn the tutor started has no question
                live.history.append(ChatTurn(role="student", text=turn.question))
            live.history.append(ChatTurn(role="tutor", text=text))
            emit(
                ResponseDone(
                    turn_id=turn.id,
                    status=status,
                    text=text,
                    citations=turn.citations,
                    error=ErrorInfo(code=error.code, message=error.message) if error else None,
                )
            )
        if stream is not None:
            await stream.close()
        with contextlib.suppress(BusUnavailable):
            await self._bus.release_lease(lease_key(live.id), self._bus.node_id)
        self._feed.message(
            live.class_id,
            live.user_id,
            live.id,
            turnId=turn.id,
            role="tutor",
            text=text,
            status=status.value,
        )
        self._metrics.turns.labels(status=status.value).inc()
        if error is not None:
            self._metrics.turn_errors.labels(code=error.code).inc()
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


async def _said(line: str) -> AsyncIterator[str]:
    """A scripted turn's reply, as a one-delta stream."""
    yield line
