"""The in-process bus delivers to every subscriber of a channel, bounded."""

from __future__ import annotations

import anyio
import pytest

from readerai.bus.factory import build_bus
from readerai.bus.memory import MemoryBus


async def test_every_subscriber_of_a_channel_gets_each_message() -> None:
    bus = build_bus("memory://")
    async with (
        bus.subscribe("class:1") as a,
        bus.subscribe("class:1") as b,
        bus.subscribe("class:2") as c,
    ):
        await bus.publish("class:1", b"hello")
        with anyio.fail_after(1):
            assert await anext(a) == b"hello"
            assert await anext(b) == b"hello"
        with anyio.move_on_after(0.05) as nothing:
            await anext(c)
        assert nothing.cancelled_caught


async def test_a_slow_subscriber_loses_its_oldest_messages_not_memory() -> None:
    bus = MemoryBus(queue_size=2)
    async with bus.subscribe("x") as sub:
        for i in range(5):
            await bus.publish("x", str(i).encode())
        assert [await anext(sub), await anext(sub)] == [b"3", b"4"]


def test_unknown_bus_scheme_is_refused_with_the_supported_list() -> None:
    with pytest.raises(ValueError, match="memory://"):
        build_bus("kafka://somewhere")
