"""The hub: the live sessions of this node, by id.

A session is live while a connection is attached or a reply is in flight; then the
hub forgets it, after writing its pending reading progress. A connection attaching
to a session that is being forgotten waits for that write, so what it restores is
never older than what the previous connection acknowledged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from readerai.engines.base import ChatTurn
from readerai.errors import NotFound
from readerai.protocol import SessionRestored
from readerai.session.live import LiveSession, Subscriber
from readerai.session.progress import ProgressBuffer
from readerai.session.views import message_view
from readerai.store import MessageRecord, Store
from readerai.supervisor import TaskSupervisor

#: Earlier turns an engine sees (student and tutor messages).
ENGINE_HISTORY_MESSAGES = 6


class SessionHub:
    """Finds or creates the live session for a connection and forgets idle ones."""

    def __init__(
        self,
        store: Store,
        supervisor: TaskSupervisor,
        *,
        history_limit: int,
        progress_interval: float,
    ) -> None:
        self._store = store
        self._supervisor = supervisor
        self._history_limit = history_limit
        self._progress_interval = progress_interval
        self._live: dict[str, LiveSession] = {}
        self._leaving: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._live)

    def get(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    async def attach(
        self, session_id: str, subscriber: Subscriber, last_seq: int | None
    ) -> LiveSession:
        """Subscribe `subscriber`, having queued `SESSION_RESTORED` (and any deltas after
        `last_seq` of the reply in flight) as its first events. NotFound if no session."""
        leaving = self._leaving.get(session_id)
        if leaving is not None:
            await asyncio.wait({leaving})
        live = await self._live_session(session_id)
        live.attaching += 1
        try:
            async with live.state_lock:
                messages = await self._store.recent_messages(session_id, limit=self._history_limit)
                stored_progress = await self._store.get_progress(session_id)
                if not live.history:
                    live.history.extend(_chat_turns(messages))
                # From here to subscribing nothing awaits: no event can slip between.
                turn = live.turn
                subscriber.deliver(
                    SessionRestored(
                        session_id=session_id,
                        passage_id=live.passage_id,
                        messages=[message_view(m) for m in messages],
                        progress=live.progress.merged(stored_progress),
                        inflight=turn.inflight() if turn else None,
                    )
                )
                if turn is not None and last_seq is not None:
                    for delta in turn.deltas_after(last_seq):
                        subscriber.deliver(delta)
                live.subscribers.add(subscriber)
        finally:
            live.attaching -= 1
            live.release_if_idle()
        return live

    def detach(self, live: LiveSession, subscriber: Subscriber) -> None:
        live.subscribers.discard(subscriber)
        live.release_if_idle()

    async def _live_session(self, session_id: str) -> LiveSession:
        live = self._live.get(session_id)
        if live is not None:
            return live
        record = await self._store.get_session(session_id)
        if record is None:
            raise NotFound(f"no session {session_id[:64]!r}")
        live = self._live.get(session_id)  # another connection may have created it meanwhile
        if live is None:
            progress = ProgressBuffer(
                self._store,
                session_id,
                self._progress_interval,
                lambda coro: self._supervisor.start(
                    coro, name="progress.flush", session_id=session_id
                ),
            )
            live = LiveSession(session_id, record.passage_id, progress, ENGINE_HISTORY_MESSAGES)
            live.on_idle = self._forget
            self._live[session_id] = live
        return live

    def _forget(self, live: LiveSession) -> None:
        if self._live.get(live.id) is not live:
            return
        del self._live[live.id]
        task = self._supervisor.start(
            live.progress.flush(), name="progress.final_flush", session_id=live.id
        )
        self._leaving[live.id] = task
        task.add_done_callback(lambda _: self._leaving.pop(live.id, None))

    async def flush_all(self) -> None:
        """Write every live session's pending progress (on shutdown)."""
        for live in list(self._live.values()):
            await live.progress.flush()
        if self._leaving:
            await asyncio.wait(set(self._leaving.values()))


def _chat_turns(messages: list[MessageRecord]) -> list[ChatTurn]:
    return [
        ChatTurn(role="student" if m.role == "student" else "tutor", text=m.text)
        for m in messages[-ENGINE_HISTORY_MESSAGES:]
        if m.text
    ]
