"""The engine limiter: bounded concurrency, FIFO, visible positions."""

from __future__ import annotations

import asyncio

import pytest

from readerai.engines.limiter import EngineLimiter
from readerai.errors import EngineBusy


async def test_waiters_are_told_their_position_and_served_in_order() -> None:
    limiter = EngineLimiter(capacity=1, queue_limit=10)
    positions: dict[str, list[int]] = {"b": [], "c": []}
    order: list[str] = []
    release = asyncio.Event()

    async def call(name: str) -> None:
        async with limiter.slot(positions.setdefault(name, []).append):
            order.append(name)
            if name == "a":
                await release.wait()

    tasks = [asyncio.create_task(call(n)) for n in "abc"]
    await asyncio.sleep(0.01)
    assert (limiter.active, limiter.waiting) == (1, 2)
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert positions["b"] == [1] and positions["c"] == [2, 1]
    assert (limiter.active, limiter.waiting) == (0, 0)


async def test_cancelled_waiter_leaves_the_queue_and_others_move_up() -> None:
    limiter = EngineLimiter(capacity=1, queue_limit=10)
    hold = asyncio.Event()
    c_positions: list[int] = []

    async def holder() -> None:
        async with limiter.slot(lambda n: None):
            await hold.wait()

    async def waiter(record: list[int]) -> None:
        async with limiter.slot(record.append):
            pass

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    b = asyncio.create_task(waiter([]))
    c = asyncio.create_task(waiter(c_positions))
    await asyncio.sleep(0.01)
    b.cancel()
    await asyncio.sleep(0.01)
    assert c_positions == [2, 1]
    hold.set()
    await asyncio.gather(first, c)
    assert (limiter.active, limiter.waiting) == (0, 0)


async def test_a_full_queue_refuses_with_engine_busy() -> None:
    limiter = EngineLimiter(capacity=1, queue_limit=1)
    hold = asyncio.Event()

    async def call() -> None:
        async with limiter.slot(lambda n: None):
            await hold.wait()

    tasks = [asyncio.create_task(call()) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(EngineBusy):
        async with limiter.slot(lambda n: None):
            pass
    hold.set()
    await asyncio.gather(*tasks)
