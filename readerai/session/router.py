"""The router: delivers events to sessions and classes wherever they are connected.

Every node receives what is published to it (or to all nodes) on the bus and hands
it to its own live sessions. Three kinds of envelope cross nodes:

- `session`: an event for one session, sent only to the nodes whose presence says
  they hold it (the original design's `send_to_session`);
- `class`: an event for every connected member of a class, sent to all nodes; each
  node delivers it to its own members, so each connection gets it exactly once;
- `cancel`: stop the reply of a session that runs on this node (a barge-in that
  reached another node), with how far the student there had received it;
- `feed`: a report for the class's teacher dashboards (`session/feed.py`), sent to
  all nodes.

Presence is kept by the hub through `track` and `untrack`; when the bus comes back
after an outage, every live session's presence is written again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, Literal, Protocol

import pydantic_core
import structlog
from pydantic import BaseModel, ValidationError

from readerai.bus.base import ALL_NODES, Bus
from readerai.errors import BusUnavailable
from readerai.protocol import ServerEvent, decode_server_event, encode
from readerai.session.feed import ClassFeed
from readerai.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)


class Envelope(BaseModel):
    """What travels between nodes; `event` is an encoded server event."""

    kind: Literal["session", "class", "cancel", "feed"]
    target: str
    event: str | None = None
    turn_id: str | None = None
    seen_seq: int = 0


class LocalSessions(Protocol):
    """What the router needs of the hub (kept narrow so the two stay decoupled)."""

    def deliver(self, session_id: str, event: ServerEvent) -> None:
        """Publish `event` to the session if it is live on this node."""

    def deliver_to_class(self, class_id: str, event: ServerEvent) -> int:
        """Publish `event` to this node's live sessions of the class; how many."""

    def cancel_local(self, session_id: str, turn_id: str | None, seen_seq: int) -> None:
        """Stop the session's reply if it runs on this node."""

    def live_ids(self) -> list[str]:
        """Ids of the sessions live on this node."""


class SessionRouter:
    """Cross-node delivery for the live sessions of this node."""

    def __init__(self, bus: Bus, supervisor: TaskSupervisor) -> None:
        self.bus = bus
        self._supervisor = supervisor
        self._local: LocalSessions | None = None
        self._feed: ClassFeed | None = None

    def bind(self, local: LocalSessions) -> None:
        """Start handing what the bus delivers to `local` (the hub)."""
        self._local = local
        self.bus.on_message(self._receive)
        self.bus.on_reconnect(self._reregister)

    def bind_feed(self, feed: ClassFeed) -> None:
        """Carry `feed`'s reports to every node's dashboards."""
        self._feed = feed
        feed.send = self.send_feed

    # -- sending ----------------------------------------------------------------

    def send_feed(self, class_id: str, report: str) -> None:
        """Send a dashboard report to every node (in the background; never waits)."""
        payload = _pack(Envelope(kind="feed", target=class_id, event=report))
        self._background(self.bus.publish(ALL_NODES, payload), "feed.publish", class_id=class_id)

    async def send_to_session(self, session_id: str, event: ServerEvent) -> int:
        """Deliver `event` to the session on every node holding it; the node count.

        Raises `BusUnavailable` when the bus is down (only local delivery would work,
        and the caller must know the event may not have arrived).
        """
        nodes = await self.bus.presence(session_id)
        payload = _pack(Envelope(kind="session", target=session_id, event=encode(event)))
        for node in nodes:
            await self.bus.publish(node, payload)
        return len(nodes)

    async def send_to_class(self, class_id: str, event: ServerEvent) -> None:
        """Deliver `event` to every connected member of the class on every node."""
        payload = _pack(Envelope(kind="class", target=class_id, event=encode(event)))
        await self.bus.publish(ALL_NODES, payload)

    async def request_cancel(
        self, session_id: str, turn_id: str | None, seen_seq: int, node: str | None = None
    ) -> None:
        """Ask the node running the session's reply (or `node`) to stop it."""
        payload = _pack(
            Envelope(kind="cancel", target=session_id, turn_id=turn_id, seen_seq=seen_seq)
        )
        nodes = {node} if node else await self.bus.presence(session_id)
        for target in nodes - {self.bus.node_id}:
            await self.bus.publish(target, payload)

    # -- presence ---------------------------------------------------------------

    def track(self, session_id: str) -> None:
        """This node now holds `session_id` (recorded in the background)."""
        self._background(self.bus.add_presence(session_id), "presence.add", session_id=session_id)

    def untrack(self, session_id: str) -> None:
        """This node no longer holds `session_id`."""
        self._background(
            self.bus.remove_presence(session_id), "presence.remove", session_id=session_id
        )

    def _background(self, work: Coroutine[Any, Any, None], name: str, **context: Any) -> None:
        self._supervisor.start(_quietly(work, name), name=name, **context)

    async def _reregister(self) -> None:
        if self._local is None:
            return
        ids = self._local.live_ids()
        for session_id in ids:
            await self.bus.add_presence(session_id)
        log.info("bus.presence_restored", sessions=len(ids))

    # -- receiving --------------------------------------------------------------

    def _receive(self, payload: bytes) -> None:
        if self._local is None:
            return
        try:
            envelope = Envelope.model_validate(pydantic_core.from_json(payload))
            if envelope.kind == "feed":
                if self._feed is not None and envelope.event is not None:
                    self._feed.deliver(envelope.target, envelope.event)
                return
            event = decode_server_event(envelope.event) if envelope.event else None
        except (ValueError, ValidationError) as exc:
            log.warning("bus.bad_envelope", error=str(exc)[:200])
            return
        if envelope.kind == "session" and event is not None:
            self._local.deliver(envelope.target, event)
        elif envelope.kind == "class" and event is not None:
            self._local.deliver_to_class(envelope.target, event)
        elif envelope.kind == "cancel":
            self._local.cancel_local(envelope.target, envelope.turn_id, envelope.seen_seq)


def _pack(envelope: Envelope) -> bytes:
    return pydantic_core.to_json(envelope.model_dump(exclude_none=True))


async def _quietly(work: Awaitable[None], name: str) -> None:
    """Run bus bookkeeping; while the bus is down it is skipped (redone on reconnect)."""
    try:
        await work
    except BusUnavailable:
        log.debug("bus.skipped", work=name)
