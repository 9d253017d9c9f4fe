"""Group commit: concurrent writes of one kind share one transaction.

Every turn writes its question before it is acknowledged, so under load many
sessions write at once. Each write alone costs a few driver round trips; written
together they cost about the same as one. While anything is pending one task writes
it, batch after batch, each batch all that is pending (whole submissions, up to
`max_batch` items), and ends when nothing is. Each caller waits on its own result,
so every caller of a batch resumes as soon as it is written: with a lock handed
from caller to caller, as before, the k-th caller of a batch resumed k turns of the
event loop later, each behind whatever else the loop had queued.

Invariants: items are written in arrival order; a result or an exception reaches
every caller whose item was in a batch; a batch, once started, runs to the end
whoever is cancelled (the writer is no caller's task, and `drain` awaits it), so
one cancelled caller never fails the others.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Writes a batch; returns, per item in order, its result or the exception for it.
BatchWriter = Callable[[list[T]], Awaitable[list[R | Exception]]]


@dataclass(eq=False)
class _Pending(Generic[T, R]):
    item: T
    result: asyncio.Future[R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit(Generic[T, R]):
    """Batches concurrent `submit` calls into calls of `write_batch`."""

    def __init__(self, write_batch: BatchWriter[T, R], max_batch: int = 256) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        #: Submissions waiting, each a list of items written in one batch together.
        self._pending: list[list[_Pending[T, R]]] = []
        #: The task writing batches, one after another, while any are pending.
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write `item` (with whatever else is pending) and return its result."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[T]) -> list[R]:
        """Write `items` in this order, in one batch (with whatever else is pending).

        Raises the first item's exception if any item failed. A caller cancelled
        while it waits leaves its items to be written, their results unread.
        """
        if len(items) > self._max_batch:
            raise ValueError(f"at most {self._max_batch} items at once")
        mine: list[_Pending[T, R]] = [_Pending(item) for item in items]
        self._pending.append(mine)
        if self._writer is None:
            # A batch holds many callers' items: it logs in no caller's context.
            self._writer = asyncio.get_running_loop().create_task(
                self._write_pending(), context=contextvars.Context()
            )
        # A submission's items are written in one batch and their results set in
        # order: the last one's is set last.
        try:
            await mine[-1].result
        except asyncio.CancelledError:
            for pending in mine:
                pending.result.cancel()  # none of them is read now
            raise
        except Exception:  # noqa: BLE001 - raised below, in item order
            pass
        # Every outcome is read, so that none is logged as never retrieved.
        errors = [pending.result.exception() for pending in mine]
        for error in errors:
            if error is not None:
                raise error
        return [pending.result.result() for pending in mine]

    def _next_batch(self) -> list[_Pending[T, R]]:
        """Whole submissions, oldest first, up to `max_batch` items (at least one)."""
        batch: list[_Pending[T, R]] = []
        taken = 0
        for submission in self._pending:
            if batch and len(batch) + len(submission) > self._max_batch:
                break
            batch += submission
            taken += 1
        del self._pending[:taken]
        return batch

    async def drain(self) -> None:
        """Wait for what is pending to be written (before closing the connection pool)."""
        if self._writer is not None:
            await asyncio.wait({self._writer})

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                await self._write(self._next_batch())
        except asyncio.CancelledError:
            for submission in self._pending:
                for pending in submission:
                    pending.result.cancel()
            self._pending.clear()
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[_Pending[T, R]]) -> None:
        try:
            outcomes = await self._write_batch([p.item for p in batch])
        except asyncio.CancelledError:
            for pending in batch:
                pending.result.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            outcomes = [exc] * len(batch)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.result.done():
                continue  # its caller was cancelled
            if isinstance(outcome, Exception):
                pending.result.set_exception(outcome)
            else:
                pending.result.set_result(outcome)
