"""The soak's load: questions, reading progress, and sessions leaving and coming back.

One open-loop schedule drives every kind: `fire(i)` does the kind that is furthest
behind its own rate (`SoakMix`), so each kind keeps its rate exactly. A session
leaves by closing its WebSocket (a client-initiated close) and comes back at once:
every other one connects again to the same session, as a student's page does after
a dropped connection; the others open a new session (a new student). So the node
forgets sessions and creates sessions it never saw, all run long. What a leaving
session still awaited is counted as `abandoned`, not as an error. Class broadcasts
(sent by the coordinator) are timed as in `listen`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from readerai.loadtest.loads import ListenLoad, ProgressLoad, QuestionLoad, Tally
from readerai.loadtest.sessions import BenchSession
from readerai.loadtest.wire import SoakMix

Kind = Literal["questions", "progress", "reconnects"]
#: Closes a session and opens it again (`True`: as a new session); owned by the worker.
Rejoin = Callable[[BenchSession, bool], Coroutine[Any, Any, None]]


class SoakLoad:
    """The `soak` mode; `sessions` is the worker's list, which leaving sessions leave."""

    def __init__(
        self,
        tally: Tally,
        sessions: list[BenchSession],
        mix: SoakMix,
        passage_id: str,
        *,
        replies: bool,
        rejoin: Rejoin,
        tasks: asyncio.TaskGroup,
    ) -> None:
        self.tally = tally
        self.sessions = sessions
        self.questions = QuestionLoad(tally, sessions, replies=replies)
        self.progress = ProgressLoad(tally, sessions, passage_id)
        self.listen = ListenLoad(tally, sessions)
        self._rates: dict[Kind, float] = {
            "questions": mix.questions,
            "progress": mix.progress,
            "reconnects": mix.reconnects,
        }
        self._fired: Counter[Kind] = Counter()
        self._rejoin = rejoin
        #: Every rejoin runs in the worker's readers group, which outlives the load.
        self._tasks = tasks
        self.rejoining = 0

    def _next_kind(self) -> Kind:
        """The kind whose next event is due first on its own schedule."""
        kinds = [k for k, rate in self._rates.items() if rate > 0]
        return min(kinds, key=lambda k: self._fired[k] / self._rates[k])

    async def fire(self, index: int) -> None:
        kind = self._next_kind()
        n = self._fired[kind]
        self._fired[kind] += 1
        if not self.sessions:
            self.tally.counts["skipped_no_session"] += 1
        elif kind == "questions":
            await self.questions.fire(n)
        elif kind == "progress":
            await self.progress.fire(n)
        else:
            self._leave(n)

    def _leave(self, n: int) -> None:
        session = self.sessions.pop(n % len(self.sessions))
        session.leaving = True
        abandoned = session.awaited()
        if abandoned:
            self.tally.counts["abandoned"] += abandoned
        self.rejoining += 1
        self._tasks.create_task(self._come_back(session, fresh=n % 2 == 1))

    async def _come_back(self, session: BenchSession, *, fresh: bool) -> None:
        try:
            await self._rejoin(session, fresh)
        finally:
            self.rejoining -= 1

    async def on_event(self, session: BenchSession, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "PONG":
            await self.progress.on_event(session, event)
        elif kind == "CLASS_BROADCAST":
            await self.listen.on_event(session, event)
        else:
            await self.questions.on_event(session, event)

    def outstanding(self) -> int:
        return self.questions.outstanding() + self.progress.outstanding() + self.rejoining
