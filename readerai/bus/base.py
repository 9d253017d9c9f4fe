"""The `Bus` interface: what nodes of one deployment share.

A node is one server process (one uvicorn worker). The bus gives nodes:

- messaging: `publish(to, payload)` delivers bytes to one node (`to` = its id) or to
  every node (`to` = `ALL_NODES`), including the sender; each node hands what it
  receives to the one handler set with `on_message`;
- presence: which nodes hold a live copy of a session, forgotten when a node dies;
- resumable streams: an append-only, bounded, expiring log per key, readable from
  any node (the reply in flight, so a client can resume it on another node);
- leases: a key held by one owner until released or expired (a turn runs on one node);
- a cluster-wide counting semaphore (concurrent engine calls across all nodes).

The in-process bus (`memory://`) serves one node and keeps no streams: a reconnect
always lands on the same process there. Every call on the Redis bus fails fast with
`BusUnavailable` while Redis is unreachable, and `on_reconnect` handlers run when it
returns, so that nodes can re-register what they hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

#: `publish(ALL_NODES, ...)` reaches every node, the sender included.
ALL_NODES = "*"


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of a resumable stream; `id` orders entries and resumes reads."""

    id: str
    payload: bytes


class Bus(Protocol):
    """Cross-node messaging, presence, streams, leases and a cluster semaphore."""

    #: This node's id, unique in the deployment (a new one per process start).
    node_id: str

    async def start(self) -> None:
        """Connect and start receiving; raise if the backend cannot be reached."""

    async def close(self) -> None:
        """Stop receiving, withdraw this node's presence and disconnect."""

    @property
    def healthy(self) -> bool:
        """False while the backend is unreachable (calls then fail fast)."""

    @property
    def shared(self) -> bool:
        """True when several processes can share this bus (False for `memory://`)."""

    def on_message(self, handler: Callable[[bytes], None]) -> None:
        """Set the handler for payloads published to this node or to every node.

        Called on the event loop, in publish order per sender; it must not block.
        """

    def on_reconnect(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Add a coroutine function run each time the backend comes back."""

    async def publish(self, to: str, payload: bytes) -> None:
        """Deliver `payload` to node `to`, or to every node for `ALL_NODES`.

        At most once per receiving node; a node that is gone receives nothing.
        """

    # -- presence ---------------------------------------------------------------

    async def add_presence(self, session_id: str) -> None:
        """Record that this node holds `session_id`."""

    async def remove_presence(self, session_id: str) -> None:
        """Forget that this node holds `session_id`."""

    async def presence(self, session_id: str) -> set[str]:
        """Ids of the live nodes holding `session_id` (dead nodes are left out)."""

    async def node_alive(self, node_id: str) -> bool:
        """Whether node `node_id` is running (its heartbeat has not expired)."""

    # -- resumable streams (Redis only; the memory bus raises `Unsupported`) -----

    @property
    def has_streams(self) -> bool:
        """Whether `append`/`read` are available."""

    async def append(self, key: str, payloads: list[bytes], *, max_len: int, ttl: float) -> None:
        """Append entries to stream `key` (trimmed to about `max_len`, expiring
        `ttl` seconds after the last append)."""

    async def read(self, key: str, after: str, *, block: float, count: int) -> list[StreamEntry]:
        """Up to `count` entries of `key` after id `after` ("0" = from the start),
        waiting up to `block` seconds for the first one (0 = do not wait)."""

    # -- leases ----------------------------------------------------------------

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> str | None:
        """Take `key` for `owner` for `ttl` seconds; None on success, else the holder."""

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Extend the lease if `owner` still holds it."""

    async def release_lease(self, key: str, owner: str) -> None:
        """Release the lease if `owner` holds it."""

    async def take_lease(self, key: str, owner: str, ttl: float) -> None:
        """Take `key` for `owner` whoever holds it (the holder is known to be dead)."""

    # -- cluster semaphore -----------------------------------------------------

    async def acquire_slot(self, name: str, token: str, limit: int, ttl: float) -> bool:
        """Hold one of `limit` slots of `name` as `token` for at most `ttl` seconds;
        False (at once) when all are taken."""

    async def release_slot(self, name: str, token: str) -> None:
        """Give back the slot held as `token`."""
