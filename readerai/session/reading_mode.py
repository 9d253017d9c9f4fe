"""Read-aloud mode of one connection, as the connection actor delegates it.

`ReadingMode` starts and stops the `ReadAloudFollower` of the passage being read
(`SESSION_UPDATE {mode: read_aloud | conversation}`), hands it the connection's audio
frames, and records each position reached (heard, or reported by the client with
`READING_PROGRESS`): kept in the session's progress and shown on the class dashboard.

Tasks: each follower runs as one task created here; `tasks` are cancelled and awaited
by the actor when the connection ends, with its other tasks. A follower stopped by a
mode change finishes on its own (it hears the audio it has) and leaves the set.

A reading started again (after a question asked in conversation mode, say) resumes
where the student was: its task first waits for the readings still finishing (their
last position counts), then starts after the word at the session's stored position
(`resume_at`). Stall help is read when a reading starts: the class's
(`Store.reading_help`), or the node's settings for a student in no class; it is
said as a tutor turn (`TurnRunner.offer`, reason `reading_help`).

Push-to-talk (`asking`, set by the actor from `AUDIO_START` to `AUDIO_COMMIT`): the
audio is a question for voice input meanwhile; the reading, still followed, gets the
audio after it. Its stall clock runs on its own audio, so the question is no stall.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

import anyio.to_thread
import structlog

from readerai.errors import InvalidPayload, NotFound, ReaderAIError, Unsupported
from readerai.protocol import ServerEvent
from readerai.readaloud.align import Position
from readerai.session.live import LiveSession
from readerai.session.read_aloud import Conclude, ReadAloudFollower, StallHelp, resume_at
from readerai.store import PassageRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from readerai.session.actor import SessionServices

#: Longest a reading started again waits for the one before to end (its last words
#: heard, the reading stored) before it resumes from the position stored by then.
PREVIOUS_READING_WAIT = 5.0


class ReadingMode:
    """The reading followed on one connection, if any, and its tasks."""

    def __init__(
        self,
        services: SessionServices,
        deliver: Callable[[ServerEvent], None],
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        self._services = services
        self._deliver = deliver
        self._log = log
        #: The reading followed; audio frames go to it, not to voice input.
        self.reading: ReadAloudFollower | None = None
        #: Followers' tasks, the current one and those still finishing.
        self.tasks: set[asyncio.Task[None]] = set()
        #: Push-to-talk held (`AUDIO_START` to `AUDIO_COMMIT`): audio is a question.
        self.asking = False

    @property
    def following(self) -> bool:
        """A reading is followed: audio frames are the student reading."""
        return self.reading is not None

    def accept(self, pcm: bytes) -> bool:
        """Give `pcm` to the reading followed; False when none is, or the student is
        asking a question meanwhile (push-to-talk): the audio is for voice input."""
        if self.reading is None or self.asking:
            return False
        self.reading.accept(pcm)
        return True

    def reached(self, live: LiveSession, passage_id: str, position: int) -> None:
        """The student is at `position` of `passage_id` (reported, or heard reading):
        keep it and show it on the class dashboard."""
        live.progress.update(passage_id, position)
        self._services.hub.feed.student(
            live.class_id,
            live.user_id,
            live.id,
            coalesce=True,
            passageId=passage_id,
            position=position,
        )

    async def passage(self, passage_id: str | None) -> PassageRecord:
        """The passage read-aloud mode would follow; refused when it cannot."""
        read_aloud = self._services.read_aloud
        if read_aloud is None:
            raise Unsupported("read_aloud mode is not available on this server")
        read_aloud.model()  # raises when no model is loaded
        if passage_id is None:
            raise InvalidPayload(
                "read_aloud mode needs a passage: send passageId with it, or set one before"
            )
        passage = await self._services.catalog.get(passage_id)
        if passage is None:
            raise NotFound(f"no passage {passage_id!r}")
        return passage

    def start(self, live: LiveSession, passage: PassageRecord) -> None:
        """Follow a reading of `passage`; one already followed of it goes on."""
        if self.reading is not None and self.reading.passage_id == passage.id:
            return
        self.stop()
        read_aloud = self._services.read_aloud
        assert read_aloud is not None  # checked by `passage`

        def reached(position: Position) -> None:
            self.reached(live, passage.id, position.char_offset)

        self.reading = ReadAloudFollower(
            passage_id=passage.id,
            passage_text=passage.text,
            model=read_aloud.model(),
            limiter=read_aloud.limiter,
            deliver=self._deliver,
            reached=reached,
            conclude=self._conclusion(live, passage.id),
        )
        previous = set(self.tasks)  # readings still finishing
        # Ended (cancelled and awaited) with the connection, in the actor's `_stop_tasks`.
        task = asyncio.get_running_loop().create_task(
            self._follow(live, passage, self.reading, previous)
        )
        self.tasks.add(task)
        task.add_done_callback(self._done)
        self._log.info("read_aloud.started", passage_id=passage.id)

    async def _follow(
        self,
        live: LiveSession,
        passage: PassageRecord,
        follower: ReadAloudFollower,
        previous: set[asyncio.Task[None]],
    ) -> None:
        """Run `follower` from where the student was, once earlier readings ended."""
        if previous:
            await asyncio.wait(previous, timeout=PREVIOUS_READING_WAIT)
        start = await self._resume_word(live, passage)
        await follower.run(start=start, stall=await self._stall_help(live))

    async def _resume_word(self, live: LiveSession, passage: PassageRecord) -> int:
        """Passage words already read, by the session's stored position (`resume_at`)."""
        try:
            stored = await self._services.store.get_progress(live.id)
        except ReaderAIError as exc:
            self._log.warning("read_aloud.position_unknown", error=exc.code)
            return 0
        positions = {view.passage_id: view.position for view in live.progress.merged(stored)}
        start = await anyio.to_thread.run_sync(resume_at, passage.text, positions.get(passage.id))
        if start:
            self._log.info("read_aloud.resumed", passage_id=passage.id, word_index=start)
        return start

    async def _stall_help(self, live: LiveSession) -> StallHelp | None:
        """How to help the student if they stall: their class's choice, or the node's."""
        read_aloud = self._services.read_aloud
        assert read_aloud is not None  # checked by `passage`
        chosen = read_aloud.default_help
        if live.class_id is not None:
            try:
                chosen = await self._services.store.reading_help(live.class_id)
            except ReaderAIError as exc:
                self._log.warning("read_aloud.help_unknown", error=exc.code)
        if chosen.offer == "off":
            return None
        runner = self._services.runner

        async def say(line: str) -> None:
            try:
                await runner.offer(live, line, "reading_help")
            except ReaderAIError as exc:  # no help this time; the reading goes on
                self._log.warning("read_aloud.help_failed", error=exc.code)

        return StallHelp(
            seconds=chosen.stall_seconds,
            offer=chosen.offer,
            busy=lambda: live.streaming_turn() is not None,
            say=say,
        )

    def _conclusion(self, live: LiveSession, passage_id: str) -> Conclude | None:
        """Where a reading goes when it ends: scored and stored as the student's."""
        readings = self._services.readings
        if readings is None:
            return None
        return functools.partial(
            readings.record,
            session_id=live.id,
            user_id=live.user_id,
            class_id=live.class_id,
            passage_id=passage_id,
        )

    def stop(self) -> None:
        """Back to conversation: the reading hears what it has, reports, and ends."""
        if self.reading is not None:
            self.reading.finish()
            self.reading = None

    def close(self) -> None:
        """The connection has ended and its tasks with it: let go of the reading and of
        the actor's `deliver`, which holds the actor (a cycle that only a full GC pass
        would free, keeping the whole connection in memory until then)."""
        self.reading = None
        self.tasks.clear()
        self._deliver = _nowhere

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("read_aloud.task_failed", exc_info=task.exception())


def _nowhere(_event: ServerEvent) -> None:
    """Where events go once the connection has ended."""
