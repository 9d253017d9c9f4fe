"""The Redis bus: two `RedisBus` instances on one private Redis behave as two nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from readerai.bus.base import ALL_NODES
from readerai.bus.redis import RedisBus
from readerai.errors import BusUnavailable
from tests.fixtures_redis import RedisServer, redis_server
from tests.fixtures_server import free_port

__all__ = ["redis_server"]  # re-exported so pytest finds the fixture here


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `check()` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"condition not met in {within}s"
        await asyncio.sleep(0.01)


class Node:
    """A started bus and what it received."""

    def __init__(self, url: str) -> None:
        self.bus = RedisBus(url)
        self.received: list[bytes] = []
        self.bus.on_message(self.received.append)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    a, b = Node(redis_server.url), Node(redis_server.url)
    await a.bus.start()
    await b.bus.start()
    try:
        yield a, b
    finally:
        await a.bus.close()
        await b.bus.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client, to look at what the bus wrote."""
    # No driver info: redis-py would read its package metadata from disk on the loop.
    client = Redis.from_url(redis_server.url, driver_info=None)
    try:
        yield client
    finally:
        await client.aclose()


# -- messaging -------------------------------------------------------------------------


async def test_publish_to_a_node_reaches_only_that_node(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.bus.publish(b.bus.node_id, b"for b")
    await a.bus.publish(ALL_NODES, b"marker")
    await eventually(lambda: a.received == [b"marker"] and b.received == [b"for b", b"marker"])


async def test_publish_to_all_nodes_reaches_each_once_in_order(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    sent = [str(i).encode() for i in range(50)]
    for payload in sent:
        await a.bus.publish(ALL_NODES, payload)
    await eventually(lambda: len(a.received) >= 50 and len(b.received) >= 50)
    await asyncio.sleep(0.1)  # a duplicate would have arrived by now
    assert a.received == sent
    assert b.received == sent


async def test_a_failing_handler_does_not_stop_delivery(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    received: list[bytes] = []

    def handler(payload: bytes) -> None:
        if payload == b"bad":
            raise ValueError("cannot handle this one")
        received.append(payload)

    b.bus.on_message(handler)
    with capture_logs() as logs:
        await a.bus.publish(b.bus.node_id, b"bad")
        await a.bus.publish(b.bus.node_id, b"good")
        await eventually(lambda: received == [b"good"])
    assert [e["event"] for e in logs] == ["bus.redis.handler_failed"]


# -- presence --------------------------------------------------------------------------


async def test_presence_is_seen_from_every_node_and_withdrawn_on_close(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.bus.add_presence("s1")
    assert await b.bus.presence("s1") == {a.bus.node_id}
    assert await b.bus.node_alive(a.bus.node_id)
    await a.bus.close()
    assert await b.bus.presence("s1") == set()
    assert not await b.bus.node_alive(a.bus.node_id)


async def test_a_dead_node_is_left_out_of_presence_and_forgotten(
    nodes: tuple[Node, Node], raw: Redis
) -> None:
    a, b = nodes
    await a.bus.add_presence("s1")
    await b.bus.add_presence("s1")
    assert await a.bus.presence("s1") == {a.bus.node_id, b.bus.node_id}
    await raw.delete(f"readerai:alive:{a.bus.node_id}")  # as if its heartbeat expired
    assert await b.bus.presence("s1") == {b.bus.node_id}
    assert await raw.hkeys("readerai:presence:s1") == [b.bus.node_id.encode()]


async def test_removed_presence_is_gone(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.bus.add_presence("s1")
    await a.bus.remove_presence("s1")
    assert await b.bus.presence("s1") == set()


# -- streams ---------------------------------------------------------------------------


async def test_stream_reads_return_entries_in_order_after_an_id(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.bus.append("r1", [b"one", b"two"], max_len=100, ttl=60)
    await a.bus.append("r1", [b"three"], max_len=100, ttl=60)
    entries = await b.bus.read("r1", "0", block=0, count=10)
    assert [e.payload for e in entries] == [b"one", b"two", b"three"]
    later = await b.bus.read("r1", entries[0].id, block=0, count=10)
    assert later == entries[1:]
    assert await b.bus.read("r1", "0", block=0, count=2) == entries[:2]
    assert await b.bus.read("missing", "0", block=0, count=10) == []


async def test_a_blocking_read_returns_as_soon_as_another_node_appends(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.bus.append("r1", [b"old"], max_len=100, ttl=60)
    [old] = await b.bus.read("r1", "0", block=0, count=10)
    started = time.monotonic()
    reader = asyncio.create_task(b.bus.read("r1", old.id, block=5, count=10))
    await asyncio.sleep(0.2)
    assert not reader.done()
    await a.bus.append("r1", [b"new"], max_len=100, ttl=60)
    entries = await asyncio.wait_for(reader, 2)
    assert [e.payload for e in entries] == [b"new"]
    assert time.monotonic() - started < 2


async def test_a_blocking_read_with_nothing_new_returns_empty_after_block(
    nodes: tuple[Node, Node],
) -> None:
    _, b = nodes
    started = time.monotonic()
    assert await b.bus.read("r1", "0", block=0.2, count=10) == []
    assert 0.15 < time.monotonic() - started < 1.5
    assert b.bus.healthy


async def test_a_stream_is_trimmed_to_about_max_len(nodes: tuple[Node, Node], raw: Redis) -> None:
    a, _ = nodes
    for batch in range(20):
        await a.bus.append("r1", [b"%d" % (batch * 50 + i) for i in range(50)], max_len=20, ttl=60)
    length = await raw.xlen("readerai:stream:r1")
    assert 20 <= length <= 20 + 100  # `~`: Redis trims whole nodes of 100 entries


async def test_a_stream_expires_ttl_after_the_last_append(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.bus.append("r1", [b"one"], max_len=100, ttl=0.3)
    assert len(await b.bus.read("r1", "0", block=0, count=10)) == 1
    await asyncio.sleep(0.5)
    assert await b.bus.read("r1", "0", block=0, count=10) == []


# -- leases ----------------------------------------------------------------------------


async def test_a_lease_is_held_by_one_owner_until_released(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert await a.bus.acquire_lease("turn", "owner-a", ttl=10) is None
    assert await b.bus.acquire_lease("turn", "owner-b", ttl=10) == "owner-a"
    assert await a.bus.acquire_lease("turn", "owner-a", ttl=10) is None  # already ours
    assert await a.bus.renew_lease("turn", "owner-a", ttl=10)
    assert not await b.bus.renew_lease("turn", "owner-b", ttl=10)
    await b.bus.release_lease("turn", "owner-b")  # not the holder: no effect
    assert await b.bus.acquire_lease("turn", "owner-b", ttl=10) == "owner-a"
    await a.bus.release_lease("turn", "owner-a")
    assert await b.bus.acquire_lease("turn", "owner-b", ttl=10) is None


async def test_take_lease_overrides_the_holder(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert await a.bus.acquire_lease("turn", "owner-a", ttl=10) is None
    await b.bus.take_lease("turn", "owner-b", ttl=10)
    assert await a.bus.acquire_lease("turn", "owner-a", ttl=10) == "owner-b"
    assert not await a.bus.renew_lease("turn", "owner-a", ttl=10)


async def test_a_lease_expires_after_its_ttl(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert await a.bus.acquire_lease("turn", "owner-a", ttl=0.2) is None
    await asyncio.sleep(0.4)
    assert await b.bus.acquire_lease("turn", "owner-b", ttl=10) is None


# -- cluster semaphore -----------------------------------------------------------------


async def test_slots_are_limited_across_nodes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert await a.bus.acquire_slot("engine", "t1", limit=2, ttl=30)
    assert await b.bus.acquire_slot("engine", "t2", limit=2, ttl=30)
    assert not await a.bus.acquire_slot("engine", "t3", limit=2, ttl=30)
    await b.bus.release_slot("engine", "t2")
    assert await a.bus.acquire_slot("engine", "t3", limit=2, ttl=30)
    assert not await b.bus.acquire_slot("engine", "t4", limit=2, ttl=30)


async def test_expired_slots_are_reclaimed(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert await a.bus.acquire_slot("engine", "t1", limit=2, ttl=0.2)
    assert await a.bus.acquire_slot("engine", "t2", limit=2, ttl=0.2)
    assert not await b.bus.acquire_slot("engine", "t3", limit=2, ttl=30)
    await asyncio.sleep(0.4)
    assert await b.bus.acquire_slot("engine", "t3", limit=2, ttl=30)
    assert await b.bus.acquire_slot("engine", "t4", limit=2, ttl=30)


# -- outages ---------------------------------------------------------------------------


def every_call(bus: RedisBus) -> list[Callable[[], Awaitable[Any]]]:
    """One of each public call, ready to run."""
    return [
        lambda: bus.publish(ALL_NODES, b"x"),
        lambda: bus.add_presence("s1"),
        lambda: bus.remove_presence("s1"),
        lambda: bus.presence("s1"),
        lambda: bus.node_alive(bus.node_id),
        lambda: bus.append("r1", [b"x"], max_len=10, ttl=10),
        lambda: bus.read("r1", "0", block=0, count=10),
        lambda: bus.read("r1", "0", block=5, count=10),
        lambda: bus.acquire_lease("turn", "me", ttl=10),
        lambda: bus.renew_lease("turn", "me", ttl=10),
        lambda: bus.release_lease("turn", "me"),
        lambda: bus.take_lease("turn", "me", ttl=10),
        lambda: bus.acquire_slot("engine", "t1", limit=1, ttl=10),
        lambda: bus.release_slot("engine", "t1"),
    ]


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_calls_fail_fast_while_redis_is_down_and_the_bus_recovers(
    redis_server: RedisServer, outage: str
) -> None:
    node = Node(redis_server.url)
    reconnects: list[bool] = []

    async def on_reconnect() -> None:
        reconnects.append(node.bus.healthy)

    node.bus.on_reconnect(on_reconnect)
    await node.bus.start()
    try:
        for call in every_call(node.bus):  # connections in both pools, soon stale
            await call()
        with capture_logs() as logs:
            await asyncio.to_thread(getattr(redis_server, outage))
            await eventually(lambda: not node.bus.healthy, within=1.5)
            for call in every_call(node.bus):
                started = time.monotonic()
                with pytest.raises(BusUnavailable):
                    await call()
                assert time.monotonic() - started < 0.5

            await asyncio.to_thread(redis_server.restart)
            await eventually(lambda: node.bus.healthy and reconnects == [True], within=10)
        events = [e["event"] for e in logs if e["log_level"] != "debug"]
        assert events == ["bus.redis.down", "bus.redis.up"]
        assert await node.bus.node_alive(node.bus.node_id)  # beat again into the empty Redis
        for call in every_call(node.bus):
            await call()
        await node.bus.publish(node.bus.node_id, b"back")
        await eventually(lambda: node.received[-1:] == [b"back"])
    finally:
        await node.bus.close()


async def test_start_refuses_an_unreachable_redis_and_names_it() -> None:
    port = free_port()
    bus = RedisBus(f"redis://:s3cret@127.0.0.1:{port}/0")
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=f"127.0.0.1:{port}") as raised:
        await bus.start()
    assert "s3cret" not in str(raised.value)
    assert not bus.healthy
    assert time.monotonic() - started < 3
    await bus.close()


async def test_calls_before_start_and_after_close_fail_fast(redis_server: RedisServer) -> None:
    bus = RedisBus(redis_server.url)
    with pytest.raises(BusUnavailable):
        await bus.publish(ALL_NODES, b"x")
    await bus.start()
    await bus.close()
    await bus.close()  # idempotent
    with pytest.raises(BusUnavailable):
        await bus.publish(ALL_NODES, b"x")
