"""Group commit: concurrent writes share batches; a submission is never split."""

from __future__ import annotations

import asyncio

from readerai.store.group_commit import GroupCommit


class Recorder:
    """A batch writer that remembers its batches and yields once per batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def write(self, batch: list[int]) -> list[int | Exception]:
        await asyncio.sleep(0)
        self.batches.append(batch)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in batch]


async def test_concurrent_submissions_share_batches_in_arrival_order() -> None:
    recorder = Recorder()
    writes = GroupCommit(recorder.write)
    results = await asyncio.gather(*(writes.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert [i for batch in recorder.batches for i in batch] == list(range(10))
    assert len(recorder.batches) < 10, "later writers joined a batch"


async def test_a_multi_item_submission_is_written_whole_in_one_batch() -> None:
    recorder = Recorder()
    writes = GroupCommit(recorder.write, max_batch=4)
    singles = [writes.submit(i) for i in range(3)]
    pair = writes.submit_many([100, 101])
    results = await asyncio.gather(*singles, pair)
    assert results[-1] == [1000, 1010]
    assert any(batch[-2:] == [100, 101] for batch in recorder.batches)
    assert all(len(batch) <= 4 for batch in recorder.batches)


async def test_a_failed_item_fails_only_its_own_submission() -> None:
    writes = GroupCommit(Recorder().write)
    good, bad = await asyncio.gather(
        writes.submit_many([1, 2]), writes.submit_many([3, -4]), return_exceptions=True
    )
    assert good == [10, 20]
    assert isinstance(bad, ValueError) and "bad -4" in str(bad)


class Gated(Recorder):
    """A batch writer whose batches wait for `gate`: callers pile up meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def write(self, batch: list[int]) -> list[int | Exception]:
        await self.gate.wait()
        return await super().write(batch)


async def test_every_caller_of_a_batch_resumes_in_the_same_turn_of_the_loop() -> None:
    writer = Gated()
    writes = GroupCommit(writer.write)
    turns = 0

    async def tick() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    resumed: dict[int, int] = {}

    async def submit(i: int) -> None:
        await writes.submit(i)
        resumed[i] = turns

    ticker = asyncio.create_task(tick())
    try:
        first = asyncio.create_task(submit(0))
        await asyncio.sleep(0)
        later = [asyncio.create_task(submit(i)) for i in range(1, 21)]
        await asyncio.sleep(0)
        writer.gate.set()
        await asyncio.gather(first, *later)
    finally:
        ticker.cancel()
    assert writer.batches == [[0], list(range(1, 21))]
    spread = max(resumed[i] for i in range(1, 21)) - min(resumed[i] for i in range(1, 21))
    assert spread <= 1, f"the callers of one batch resumed over {spread} turns of the loop"


async def test_cancelled_callers_leave_their_items_written_and_the_others_answered() -> None:
    writer = Gated()
    writes = GroupCommit(writer.write)
    first = asyncio.create_task(writes.submit(1))
    await asyncio.sleep(0)  # its batch is being written
    second = asyncio.create_task(writes.submit(2))
    third = asyncio.create_task(writes.submit(3))
    fourth = asyncio.create_task(writes.submit(4))
    await asyncio.sleep(0)
    first.cancel()
    third.cancel()
    writer.gate.set()
    assert list(await asyncio.gather(second, fourth)) == [20, 40]
    assert first.cancelled() and third.cancelled()
    assert writer.batches == [[1], [2, 3, 4]]
    await writes.drain()
