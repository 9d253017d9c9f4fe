"""The in-process bus: one node, so everything it is asked to deliver stays here."""

from __future__ import annotations

import pytest

from readerai.bus.base import ALL_NODES
from readerai.bus.factory import build_bus
from readerai.bus.memory import MemoryBus
from readerai.errors import Unsupported


async def test_messages_to_this_node_or_all_nodes_reach_the_handler_in_order() -> None:
    bus = build_bus("memory://")
    received: list[bytes] = []
    bus.on_message(received.append)
    await bus.publish(bus.node_id, b"one")
    await bus.publish(ALL_NODES, b"two")
    await bus.publish("another-node", b"lost")
    assert received == [b"one", b"two"]
    assert not bus.shared and bus.healthy


async def test_presence_is_this_node_while_the_session_is_held() -> None:
    bus = MemoryBus()
    await bus.add_presence("s1")
    assert await bus.presence("s1") == {bus.node_id}
    await bus.remove_presence("s1")
    assert await bus.presence("s1") == set()
    assert await bus.node_alive(bus.node_id) and not await bus.node_alive("other")


async def test_leases_have_one_holder_until_released_or_expired() -> None:
    bus = MemoryBus()
    assert await bus.acquire_lease("turn:s1", "a", 10) is None
    assert await bus.acquire_lease("turn:s1", "b", 10) == "a"
    assert await bus.renew_lease("turn:s1", "a", 10) and not await bus.renew_lease(
        "turn:s1", "b", 10
    )
    await bus.release_lease("turn:s1", "b")  # not the holder: no effect
    assert await bus.acquire_lease("turn:s1", "b", 10) == "a"
    await bus.release_lease("turn:s1", "a")
    assert await bus.acquire_lease("turn:s1", "b", 0.001) is None
    await bus.take_lease("turn:s1", "c", 10)
    assert await bus.acquire_lease("turn:s1", "b", 10) == "c"


async def test_slots_are_bounded_and_expire() -> None:
    bus = MemoryBus()
    assert await bus.acquire_slot("engine", "t1", 2, 10)
    assert await bus.acquire_slot("engine", "t2", 2, 10)
    assert not await bus.acquire_slot("engine", "t3", 2, 10)
    await bus.release_slot("engine", "t1")
    assert await bus.acquire_slot("engine", "t3", 2, 10)


async def test_the_in_process_bus_keeps_no_streams() -> None:
    bus = MemoryBus()
    assert not bus.has_streams
    with pytest.raises(Unsupported):
        await bus.read("reply:s1", "0", block=0, count=10)


def test_unknown_bus_scheme_is_refused_with_the_supported_list() -> None:
    with pytest.raises(ValueError, match="redis://"):
        build_bus("kafka://somewhere")
