"""The cycle collector's tuning: what survives is frozen out of its passes, and the
periodic full pass still frees a cycle that became garbage after it was frozen."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
import structlog

from readerai.collector import full_collection, keep_freezing


class Node:
    """A container the collector tracks; `link` makes cycles."""

    def __init__(self) -> None:
        self.link: Node | None = None


def in_collector_sight(obj: object) -> bool:
    """Whether a collector pass would visit `obj` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """gc.freeze is process-wide: leave the test process as it was."""
    yield
    gc.unfreeze()


async def test_what_outlives_a_freeze_period_leaves_the_collectors_sight() -> None:
    alive = Node()
    assert in_collector_sight(alive)
    freezing = asyncio.create_task(keep_freezing(0.05, 0))
    try:
        await asyncio.sleep(0.2)
        assert not in_collector_sight(alive)
        made_later = Node()
        await asyncio.sleep(0.2)
        assert not in_collector_sight(made_later)
    finally:
        freezing.cancel()


async def test_a_cycle_dropped_after_its_freeze_waits_for_the_full_pass() -> None:
    cycle = Node()
    cycle.link = cycle
    gone = weakref.ref(cycle)
    freezing = asyncio.create_task(keep_freezing(0.05, 0))
    await asyncio.sleep(0.2)  # frozen
    del cycle
    gc.collect()
    assert gone() is not None, "a frozen cycle was collected: nothing was frozen"
    freezing.cancel()
    with structlog.testing.capture_logs() as logs:
        freed = full_collection()
    assert gone() is None
    assert freed >= 1
    (line,) = [e for e in logs if e["event"] == "gc.full_collection"]
    assert line["freed"] == freed and line["seconds"] >= 0


async def test_the_freezer_runs_the_full_pass_on_its_schedule() -> None:
    with structlog.testing.capture_logs() as logs:
        freezing = asyncio.create_task(keep_freezing(0.05, 0.2))
        await asyncio.sleep(0.5)
        freezing.cancel()
    passes = [e for e in logs if e["event"] == "gc.full_collection"]
    assert 1 <= len(passes) <= 3, passes
