"""The hub: the live sessions of this node, by id (and by class).

A session is live while a connection is attached or a reply is in flight; then the
hub forgets it, after writing its pending reading progress. A connection attaching
to a session that is being forgotten waits for that write, so what it restores is
never older than what the previous connection acknowledged.

Replies that are stored `in_progress` but not running here are resolved on attach:
- not checkpointed for `lease` seconds: their node died; they become `interrupted`;
- otherwise another node is writing them: the reply so far is rebuilt from the
  session's reply stream and followed live (`session/remote.py`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from readerai.engines.base import ChatTurn
from readerai.errors import BusUnavailable, NotFound
from readerai.logs import without_log_context
from readerai.protocol import (
    BroadcastView,
    ReplyStatus,
    ResponseDone,
    ServerEvent,
    SessionRestored,
)
from readerai.session.feed import ClassFeed
from readerai.session.live import LiveSession, Subscriber
from readerai.session.progress import ProgressWriter
from readerai.session.remote import RemoteFollower, RemoteReply, load_remote_reply
from readerai.session.router import SessionRouter
from readerai.session.turn import Turn
from readerai.session.views import message_view
from readerai.store import MessageRecord, SessionRecord, Store
from readerai.supervisor import TaskSupervisor

#: Earlier turns an engine sees (student and tutor messages).
ENGINE_HISTORY_MESSAGES = 6
#: Class broadcasts a connecting student sees.
RECENT_BROADCASTS = 20


class SessionHub:
    """Finds or creates the live session for a connection and forgets idle ones."""

    def __init__(
        self,
        store: Store,
        supervisor: TaskSupervisor,
        router: SessionRouter,
        *,
        history_limit: int,
        progress_interval: float,
        lease_seconds: float,
        stream_max_len: int,
        feed: ClassFeed | None = None,
    ) -> None:
        self._store = store
        self._supervisor = supervisor
        self._router = router
        self._follower = RemoteFollower(router.bus, store, lease_seconds)
        self.feed = feed or ClassFeed()
        self._history_limit = history_limit
        self.progress = ProgressWriter(
            store,
            progress_interval,
            lambda coro: supervisor.start(without_log_context(coro), name="progress.flush"),
        )
        self._lease = lease_seconds
        self._stream_max_len = stream_max_len
        self._live: dict[str, LiveSession] = {}
        self._classes: defaultdict[str, set[LiveSession]] = defaultdict(set)
        self._leaving: dict[str, asyncio.Task[Any]] = {}
        #: Set by the node: stop a session's local reply when another node asks.
        self.on_cancel_request: Callable[[LiveSession, str | None, int], None] | None = None
        router.bind(self)

    def __len__(self) -> int:
        return len(self._live)

    def get(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    async def attach(
        self,
        session_id: str,
        subscriber: Subscriber,
        last_seq: int | None,
        record: SessionRecord | None = None,
    ) -> LiveSession:
        """Subscribe `subscriber`, having queued `SESSION_RESTORED` (and any deltas after
        `last_seq` of the reply in flight) as its first events. NotFound if no session.

        `record`: the session as the caller just read it (the access check), so the
        store is not asked again when the session is not live here yet."""
        leaving = self._leaving.get(session_id)
        if leaving is not None:
            await asyncio.wait({leaving})
        live = await self._live_session(session_id, record)
        live.attaching += 1
        try:
            async with live.state_lock:
                messages, stored_progress = await self._store.restore_reads(
                    session_id, limit=self._history_limit
                )
                messages = await self._resolve_pending(live, messages)
                broadcasts = (
                    await self._store.recent_broadcasts(live.class_id, limit=RECENT_BROADCASTS)
                    if live.class_id
                    else []
                )
                if not live.history:
                    live.history.extend(_chat_turns(messages))
                # From here to subscribing nothing awaits: no event can slip between.
                turn = live.streaming_turn()
                if turn is not None and _ended_in(messages, turn.id):
                    turn = None  # a followed reply that ended: it is in `messages`
                shown = [m for m in messages if turn is None or not _reply_of(m, turn.id)]
                subscriber.deliver(
                    SessionRestored(
                        session_id=session_id,
                        passage_id=live.passage_id,
                        messages=[message_view(m) for m in shown],
                        progress=live.progress.merged(stored_progress),
                        inflight=turn.inflight() if turn else None,
                        broadcasts=[
                            BroadcastView(
                                broadcast_id=b.id,
                                class_id=b.class_id,
                                text=b.text,
                                sent_at=b.sent_at.isoformat(),
                            )
                            for b in broadcasts
                        ],
                        node_id=self._router.bus.node_id,
                    )
                )
                if turn is not None and last_seq is not None:
                    for delta in turn.deltas_after(last_seq):
                        subscriber.deliver(delta)
                live.subscribers.add(subscriber)
        finally:
            live.attaching -= 1
            live.release_if_idle()
        self.feed.student(
            live.class_id, live.user_id, live.id, online=True, passageId=live.passage_id
        )
        return live

    def detach(self, live: LiveSession, subscriber: Subscriber) -> None:
        live.subscribers.discard(subscriber)
        if not live.subscribers:
            self.feed.student(live.class_id, live.user_id, live.id, online=False)
        live.release_if_idle()

    # -- replies in flight elsewhere -----------------------------------------------

    async def _resolve_pending(
        self, live: LiveSession, messages: list[MessageRecord]
    ) -> list[MessageRecord]:
        """The recent `messages` as read, with other nodes' unfinished replies resolved
        (read again if any was interrupted or ended meanwhile)."""
        pending = self._foreign_pending(live, messages)
        if not pending:
            return messages
        cutoff = datetime.now(UTC) - timedelta(seconds=self._lease)
        if any(m.updated_at < cutoff for m in pending):
            await self._store.interrupt_stale_replies(live.id, older_than=cutoff)
            messages = await self._store.recent_messages(live.id, limit=self._history_limit)
            pending = self._foreign_pending(live, messages)
        if pending and live.remote is None and self._router.bus.shared:
            reply = pending[-1]
            question = next(
                (m.text for m in messages if m.turn_id == reply.turn_id and m.role == "student"),
                "",
            )
            remote: RemoteReply | None
            try:
                remote = await load_remote_reply(
                    self._router.bus, live.id, reply, question, self._stream_max_len
                )
            except BusUnavailable:
                # No stream to read: follow the stored checkpoints until it ends.
                remote = RemoteReply(
                    turn=Turn(id=reply.turn_id, question=question), message_id=reply.id
                )
            if remote is None:  # it ended while we looked
                return await self._store.recent_messages(live.id, limit=self._history_limit)
            self._follow(live, remote)
        return messages

    @staticmethod
    def _foreign_pending(live: LiveSession, messages: list[MessageRecord]) -> list[MessageRecord]:
        ours = live.streaming_turn()
        return [
            m
            for m in messages
            if m.role == "tutor"
            and m.status is ReplyStatus.IN_PROGRESS
            and (ours is None or m.turn_id != ours.id)
        ]

    def _follow(self, live: LiveSession, remote: RemoteReply) -> None:
        live.remote = remote

        async def finish(done: ResponseDone) -> None:
            async with live.state_lock:
                if live.remote is remote:
                    live.remote = None
                    live.history.extend(
                        [
                            ChatTurn(role="student", text=remote.turn.question),
                            ChatTurn(role="tutor", text=done.text),
                        ]
                    )
                    live.publish(done)
            remote.done.set()
            live.release_if_idle()

        remote.task = self._supervisor.start(
            self._follower.follow(live.id, remote, live.publish, finish),
            name="remote.follow",
            session_id=live.id,
            turn_id=remote.turn.id,
        )

    # -- LocalSessions: what the router delivers from other nodes -----------------

    def deliver(self, session_id: str, event: ServerEvent) -> None:
        live = self._live.get(session_id)
        if live is not None:
            live.publish(event)

    def deliver_to_class(self, class_id: str, event: ServerEvent) -> int:
        members = list(self._classes.get(class_id, ()))
        for live in members:
            live.publish(event)
        return len(members)

    def cancel_local(self, session_id: str, turn_id: str | None, seen_seq: int) -> None:
        live = self._live.get(session_id)
        if live is None or live.turn is None or self.on_cancel_request is None:
            return
        if turn_id is None or live.turn.id == turn_id:
            self.on_cancel_request(live, turn_id, seen_seq)

    def live_ids(self) -> list[str]:
        return list(self._live)

    async def _live_session(self, session_id: str, record: SessionRecord | None) -> LiveSession:
        live = self._live.get(session_id)
        if live is not None:
            return live
        if record is None or record.id != session_id:
            record = await self._store.get_session(session_id)
        if record is None:
            raise NotFound(f"no session {session_id[:64]!r}")
        live = self._live.get(session_id)  # another connection may have created it meanwhile
        if live is None:
            live = LiveSession(
                session_id,
                record.passage_id,
                self.progress.session(session_id),
                ENGINE_HISTORY_MESSAGES,
                class_id=record.class_id,
                user_id=record.user_id,
            )
            live.on_idle = self._forget
            self._live[session_id] = live
            if live.class_id is not None:
                self._classes[live.class_id].add(live)
            self._router.track(session_id)
        return live

    def _forget(self, live: LiveSession) -> None:
        if self._live.get(live.id) is not live:
            return
        del self._live[live.id]
        if live.class_id is not None:
            members = self._classes.get(live.class_id)
            if members is not None:
                members.discard(live)
                if not members:
                    del self._classes[live.class_id]
        if live.remote is not None and live.remote.task is not None:
            live.remote.task.cancel()  # nobody here to show it to
            live.remote = None
        self._router.untrack(live.id)
        self.feed.forget(live.id)
        task = self._supervisor.start(
            live.progress.flush(), name="progress.final_flush", session_id=live.id
        )
        self._leaving[live.id] = task
        task.add_done_callback(lambda _: self._leaving.pop(live.id, None))

    def stop_following(self) -> None:
        """Stop following other nodes' replies (on shutdown: they are not ours to end)."""
        for live in self._live.values():
            if live.remote is not None and live.remote.task is not None:
                live.remote.task.cancel()

    async def flush_all(self) -> None:
        """Write every live session's pending progress (on shutdown)."""
        await self.progress.flush()
        if self._leaving:
            await asyncio.wait(set(self._leaving.values()))


def _chat_turns(messages: list[MessageRecord]) -> list[ChatTurn]:
    return [
        ChatTurn(role="student" if m.role == "student" else "tutor", text=m.text)
        for m in messages[-ENGINE_HISTORY_MESSAGES:]
        if m.text and m.status is not ReplyStatus.IN_PROGRESS
    ]


def _reply_of(message: MessageRecord, turn_id: str) -> bool:
    return message.role == "tutor" and message.turn_id == turn_id


def _ended_in(messages: list[MessageRecord], turn_id: str) -> bool:
    return any(_reply_of(m, turn_id) and m.status is not ReplyStatus.IN_PROGRESS for m in messages)
