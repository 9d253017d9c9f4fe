"""The task supervisor tracks, logs and drains background work."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import structlog

from readerai.supervisor import TaskSupervisor


async def test_tasks_are_tracked_until_they_end() -> None:
    supervisor = TaskSupervisor()
    gate = asyncio.Event()
    task = supervisor.start(gate.wait(), name="waiter")
    assert len(supervisor) == 1
    gate.set()
    await task
    assert len(supervisor) == 0


async def test_a_failing_task_is_logged_with_its_context() -> None:
    supervisor = TaskSupervisor()

    async def boom() -> None:
        raise ValueError("kaput")

    with structlog.testing.capture_logs() as logs:
        task = supervisor.start(boom(), name="boom", session_id="s1")
        with pytest.raises(ValueError):
            await task
        await asyncio.sleep(0)
    assert any(e["event"] == "task.failed" and e["session_id"] == "s1" for e in logs)


async def test_drain_waits_then_cancels_but_never_cancels_shielded_work() -> None:
    supervisor = TaskSupervisor()
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def endless() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            finished.append("endless cancelled")
            raise

    async def store_it() -> None:
        await asyncio.sleep(0.2)
        finished.append("stored")

    supervisor.start(quick(), name="quick")
    supervisor.start(endless(), name="endless")
    supervisor.start(store_it(), name="store", shielded=True)
    await supervisor.drain(0.05)
    assert sorted(finished) == ["endless cancelled", "quick", "stored"]
    assert len(supervisor) == 0


class Holder:
    """Holds its own task, as a turn or a follower does."""

    task: asyncio.Task[None] | None = None


async def test_a_cancelled_task_is_freed_without_the_cycle_collector() -> None:
    supervisor = TaskSupervisor()

    async def wait_forever(holder: Holder) -> None:
        await asyncio.Event().wait()

    gc.disable()  # only reference counting may free it
    try:
        holder = Holder()
        holder.task = supervisor.start(wait_forever(holder), name="held")
        gone = weakref.ref(holder)
        await asyncio.sleep(0)
        holder.task.cancel()
        await asyncio.wait({holder.task})
        await asyncio.sleep(0)  # the supervisor's done callback
        del holder
        assert gone() is None, "kept by the CancelledError the task held: a cycle"
    finally:
        gc.enable()
