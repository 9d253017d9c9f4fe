"""The shared bus (`redis://`, `rediss://`, `unix://`): every node of a deployment on one Redis.

Keys, all under `prefix`:

    {prefix}:node:{node_id}      pub/sub channel of one node
    {prefix}:all                 pub/sub channel of every node
    {prefix}:alive:{node_id}     heartbeat, refreshed every 2 s, expires after 6 s
    {prefix}:presence:{session}  hash node_id -> unix time, for a day after the last add
    {prefix}:stream:{key}        resumable stream (field `p` holds the payload)
    {prefix}:lease:{key}         lease, value = owner
    {prefix}:slots:{name}        cluster semaphore, sorted set token -> expiry (ms)

Invariants:
- `start()` owns two tasks, kept in attributes until `close()` cancels and awaits
  them: the listener (delivers messages, and reconnects after an outage) and the
  heartbeat. Neither ends on an error; both log what goes wrong.
- While `healthy` is False every public call raises `BusUnavailable` at once, without
  touching the network. Any call that loses Redis flips it; only the listener flips
  it back, after it has resubscribed and beaten, and then runs the `on_reconnect`
  handlers.
- No call waits on a dead Redis for longer than about a second (`read`: its `block`
  plus a second). Blocking reads use a pool of their own, so they never hold up the
  connections that other calls need.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from readerai.bus.base import ALL_NODES, StreamEntry
from readerai.errors import BusUnavailable

log = structlog.get_logger(__name__)

#: What "Redis is unreachable" looks like (asyncio's TimeoutError is an OSError).
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
#: Deadline of one call, and the connect and socket timeouts under it (seconds).
CALL_TIMEOUT = 1.0
#: Connections per pool; the blocking-read pool also bounds concurrent blocking reads.
MAX_CONNECTIONS = 64
HEARTBEAT_INTERVAL = 2.0
ALIVE_TTL_MS = 6000
PRESENCE_TTL = 86400
#: Reconnect backoff: the first delay doubles up to the cap, each one jittered.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0
#: How often the listener looks up from the socket to see whether a call lost Redis.
LISTENER_POLL = 0.5

# Lease and slot scripts: compare and act in one atomic step. A Lua false is a nil reply.
ACQUIRE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"""


def masked(url: str) -> str:
    """`url` with its password replaced by `***`, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def _pool(url: str, socket_timeout: float | None) -> Redis:
    # No retries inside redis-py: a failure marks the bus down at once, and the
    # listener's backoff is the one retry loop. No driver info: redis-py would read
    # its package metadata from disk (on the event loop) for every new connection.
    # RESP2: under RESP3 redis-py enables maintenance notifications, which turns off
    # its check for pooled connections that Redis closed (as after a restart).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=CALL_TIMEOUT,
        socket_connect_timeout=CALL_TIMEOUT,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        driver_info=None,
        protocol=2,
    )
    return Redis.from_pool(pool)


class RedisBus:
    """The bus of a deployment of several processes, sharing one Redis."""

    def __init__(self, url: str, *, prefix: str = "readerai") -> None:
        self.node_id = uuid.uuid4().hex[:12]
        self._url = masked(url)
        self._prefix = prefix
        self._commands = _pool(url, socket_timeout=CALL_TIMEOUT)
        # A blocking read's deadline is its own `block` + CALL_TIMEOUT, set per call.
        self._readers = _pool(url, socket_timeout=None)
        self._read_slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._channels = (self._key("node", self.node_id), self._key("all"))
        self._alive_key = self._key("alive", self.node_id)
        self._scripts = {
            name: self._commands.register_script(source)
            for name, source in (
                ("acquire_lease", ACQUIRE_LEASE),
                ("renew_lease", RENEW_LEASE),
                ("release_lease", RELEASE_LEASE),
                ("acquire_slot", ACQUIRE_SLOT),
            )
        }
        self._log = log.bind(node_id=self.node_id, redis=self._url)
        self._handler: Callable[[bytes], None] | None = None
        self._reconnect_handlers: list[Callable[[], Awaitable[None]]] = []
        self._sessions: set[str] = set()
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._healthy = False
        self._closed = False

    # -- lifetime ----------------------------------------------------------------

    async def start(self) -> None:
        try:
            async with asyncio.timeout(2 * CALL_TIMEOUT):
                await self._connect()
        except (*CONNECTION_ERRORS, RedisError) as exc:
            await self._disconnect()
            raise BusUnavailable(f"cannot reach Redis at {self._url}: {_describe(exc)}") from exc
        self._healthy = True
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen(), name=f"bus.listener.{self.node_id}")
        self._heartbeat = loop.create_task(self._beat(), name=f"bus.heartbeat.{self.node_id}")
        for task in (self._listener, self._heartbeat):
            task.add_done_callback(self._task_ended)
        self._log.info("bus.redis.started")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._listener, self._heartbeat) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self._withdraw()
        self._healthy = False
        await self._disconnect()
        self._log.info("bus.redis.closed")

    async def _withdraw(self) -> None:
        """Delete this node's heartbeat and presence now rather than when they expire."""
        if not self._healthy:
            return
        with contextlib.suppress(BusUnavailable):
            async with self._call() as client, client.pipeline(transaction=False) as pipe:
                pipe.delete(self._alive_key)
                for session_id in self._sessions:
                    pipe.hdel(self._key("presence", session_id), self.node_id)
                await pipe.execute()
        self._sessions.clear()

    async def _disconnect(self) -> None:
        await self._drop_pubsub()
        await self._commands.aclose()
        await self._readers.aclose()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error(
                "bus.redis.task_failed", task=task.get_name(), exc_info=task.exception()
            )

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def shared(self) -> bool:
        return True

    def on_message(self, handler: Callable[[bytes], None]) -> None:
        self._handler = handler

    def on_reconnect(self, handler: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_handlers.append(handler)

    # -- connection, listener and heartbeat ----------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    @contextlib.asynccontextmanager
    async def _call(
        self, client: Redis | None = None, deadline: float = CALL_TIMEOUT
    ) -> AsyncIterator[Redis]:
        """Fail fast while down; bound the body by `deadline`; a lost Redis marks us down."""
        if not self._healthy:
            raise BusUnavailable(f"Redis at {self._url} is unavailable")
        try:
            async with asyncio.timeout(deadline):
                yield self._commands if client is None else client
        except CONNECTION_ERRORS as exc:
            self._mark_down(exc)
            raise BusUnavailable(f"lost Redis at {self._url}: {type(exc).__name__}") from exc

    def _mark_down(self, error: BaseException) -> None:
        if self._healthy and not self._closed:
            self._healthy = False
            self._log.warning("bus.redis.down", error=_describe(error))

    async def _connect(self) -> None:
        """Check Redis, subscribe on a fresh connection and beat once."""
        await self._commands.ping()
        await self._drop_pubsub()
        self._pubsub = self._commands.pubsub()
        await self._pubsub.subscribe(*self._channels)
        # Wait for Redis to confirm: from then on, nothing published to us is missed.
        confirmed = 0
        while confirmed < len(self._channels):
            message = await self._pubsub.get_message(timeout=CALL_TIMEOUT)
            if message is None:
                raise TimeoutError("Redis did not confirm the subscription")
            if message["type"] == "subscribe":
                confirmed += 1
            else:
                self._deliver(message)
        await self._commands.set(self._alive_key, int(time.time()), px=ALIVE_TTL_MS)

    async def _drop_pubsub(self) -> None:
        # Disconnects without a network round trip: safe while Redis is down.
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def _listen(self) -> None:
        """Deliver messages; after an outage, reconnect. Ends only when cancelled."""
        while True:
            try:
                await self._receive()
            except CONNECTION_ERRORS as exc:
                self._mark_down(exc)
            except Exception as exc:  # noqa: BLE001 - logged; reconnect rather than go deaf
                self._log.exception("bus.redis.listener_failed")
                self._mark_down(exc)
            await self._recover()

    async def _receive(self) -> None:
        while self._healthy and self._pubsub is not None:
            message = await self._pubsub.get_message(timeout=LISTENER_POLL)
            if message is not None:
                self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] != "message" or self._handler is None:
            return
        try:
            self._handler(message["data"])
        except Exception:  # noqa: BLE001 - logged; one bad payload must not stop delivery
            self._log.exception("bus.redis.handler_failed")

    async def _recover(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            await asyncio.sleep(random.uniform(delay / 2, delay))
            try:
                async with asyncio.timeout(2 * CALL_TIMEOUT):
                    await self._connect()
                break
            except (*CONNECTION_ERRORS, RedisError) as exc:
                self._log.debug("bus.redis.reconnect_failed", error=type(exc).__name__)
                delay = min(2 * delay, BACKOFF_MAX)
        self._healthy = True
        self._log.info("bus.redis.up")
        for handler in list(self._reconnect_handlers):
            try:
                await handler()
            except Exception:  # noqa: BLE001 - logged; the other handlers still run
                self._log.exception("bus.redis.reconnect_handler_failed")

    async def _beat(self) -> None:
        """Keep this node's alive key from expiring while the node runs."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            if not self._healthy:
                continue  # the listener beats as soon as Redis is back
            try:
                async with self._call() as client:
                    await client.set(self._alive_key, int(time.time()), px=ALIVE_TTL_MS)
            except BusUnavailable:
                pass  # logged once by _mark_down
            except Exception:  # noqa: BLE001 - logged; the next beat tries again
                self._log.exception("bus.redis.heartbeat_failed")

    # -- messaging and presence ----------------------------------------------------

    async def publish(self, to: str, payload: bytes) -> None:
        channel = self._key("all") if to == ALL_NODES else self._key("node", to)
        async with self._call() as client:
            await client.publish(channel, payload)

    async def add_presence(self, session_id: str) -> None:
        key = self._key("presence", session_id)
        async with self._call() as client, client.pipeline(transaction=True) as pipe:
            pipe.hset(key, self.node_id, int(time.time()))
            pipe.expire(key, PRESENCE_TTL)
            await pipe.execute()
        self._sessions.add(session_id)

    async def remove_presence(self, session_id: str) -> None:
        self._sessions.discard(session_id)
        async with self._call() as client:
            await client.hdel(self._key("presence", session_id), self.node_id)

    async def presence(self, session_id: str) -> set[str]:
        key = self._key("presence", session_id)
        async with self._call() as client:
            nodes = [_text(node) for node in await client.hkeys(key)]
            if not nodes:
                return set()
            beats = await client.mget([self._key("alive", node) for node in nodes])
            dead = [node for node, beat in zip(nodes, beats, strict=True) if beat is None]
            if dead:
                await client.hdel(key, *dead)
        return set(nodes) - set(dead)

    async def node_alive(self, node_id: str) -> bool:
        async with self._call() as client:
            return bool(await client.exists(self._key("alive", node_id)))

    # -- resumable streams -----------------------------------------------------------

    @property
    def has_streams(self) -> bool:
        return True

    async def append(self, key: str, payloads: list[bytes], *, max_len: int, ttl: float) -> None:
        stream = self._key("stream", key)
        async with self._call() as client, client.pipeline(transaction=True) as pipe:
            for payload in payloads:
                pipe.xadd(stream, {"p": payload}, maxlen=max_len, approximate=True)
            pipe.pexpire(stream, max(1, round(ttl * 1000)))
            await pipe.execute()

    async def read(self, key: str, after: str, *, block: float, count: int) -> list[StreamEntry]:
        stream = self._key("stream", key)
        if block <= 0:
            return await self._xread(self._commands, stream, after, count, None)
        if not self._healthy:
            raise BusUnavailable(f"Redis at {self._url} is unavailable")
        try:
            async with asyncio.timeout(block):
                await self._read_slots.acquire()
        except TimeoutError:
            # Every blocking-read connection stayed busy for `block`: answer with what is there.
            return await self._xread(self._commands, stream, after, count, None)
        try:
            return await self._xread(self._readers, stream, after, count, block)
        finally:
            self._read_slots.release()

    async def _xread(
        self, client: Redis, stream: str, after: str, count: int, block: float | None
    ) -> list[StreamEntry]:
        block_ms = None if block is None else max(1, round(block * 1000))
        async with self._call(client, deadline=(block or 0) + CALL_TIMEOUT):
            reply = await client.xread({stream: after}, count=count, block=block_ms)
        # Nothing when no entry came in time.
        streams = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or [])
        return [
            StreamEntry(id=_text(entry_id), payload=fields[b"p"])
            for _, entries in streams
            for entry_id, fields in entries
        ]

    # -- leases and the cluster semaphore --------------------------------------------

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> str | None:
        async with self._call() as client:
            holder = await self._scripts["acquire_lease"](
                keys=[self._key("lease", key)], args=[owner, _ms(ttl)], client=client
            )
        return None if holder is None else _text(holder)

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        async with self._call() as client:
            renewed = await self._scripts["renew_lease"](
                keys=[self._key("lease", key)], args=[owner, _ms(ttl)], client=client
            )
        return bool(renewed)

    async def release_lease(self, key: str, owner: str) -> None:
        async with self._call() as client:
            await self._scripts["release_lease"](
                keys=[self._key("lease", key)], args=[owner], client=client
            )

    async def take_lease(self, key: str, owner: str, ttl: float) -> None:
        async with self._call() as client:
            await client.set(self._key("lease", key), owner, px=_ms(ttl))

    async def acquire_slot(self, name: str, token: str, limit: int, ttl: float) -> bool:
        async with self._call() as client:
            taken = await self._scripts["acquire_slot"](
                keys=[self._key("slots", name)], args=[token, limit, _ms(ttl)], client=client
            )
        return bool(taken)

    async def release_slot(self, name: str, token: str) -> None:
        async with self._call() as client:
            await client.zrem(self._key("slots", name), token)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds, never 0 (which Redis refuses)."""
    return max(1, round(seconds * 1000))
