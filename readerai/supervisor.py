"""The task supervisor: the one owner of background work that outlives a request.

Invariants:
- every task it starts is kept until it ends, so nothing is garbage-collected mid-run;
- a task's failure is logged with the name and context it was started with, never lost;
- `drain(deadline)` waits for running tasks (and any they start meanwhile) up to the
  deadline, then cancels the rest and gives them a bounded moment to finish their
  cleanup (a cancelled turn still stores itself, in a task it starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: After cancelling, how long tasks get to store what they hold.
CANCEL_GRACE = 5.0


class TaskSupervisor:
    """Starts, tracks and drains the app's background tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shielded: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        shielded: bool = False,
        **context: Any,
    ) -> asyncio.Task[Any]:
        """Run `coro` as a tracked task; its failure is logged with `name` and `context`.

        A `shielded` task (storing what must not be lost) is never cancelled by `drain`.
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if shielded:
            self._shielded.add(task)
        task.add_done_callback(lambda t: self._finished(t, context))
        return task

    def _finished(self, task: asyncio.Task[Any], context: dict[str, Any]) -> None:
        self._tasks.discard(task)
        self._shielded.discard(task)
        if task.cancelled():
            # A cancelled task keeps the CancelledError it ended with, whose traceback
            # holds its frames and all they hold, often the object that holds the task
            # (a turn, a follower): a cycle only the collector's full pass frees, rare
            # by design (`readerai.collector`). Asking for it hands it over.
            with contextlib.suppress(asyncio.CancelledError):
                task.exception()
            return
        exc = task.exception()
        if exc is not None:
            log.error("task.failed", task=task.get_name(), exc_info=exc, **context)

    async def drain(self, deadline: float) -> None:
        """Let tasks finish for `deadline` seconds, then cancel what is left."""
        await self._wait_all(deadline)
        for task in self._tasks - self._shielded:
            task.cancel()
        await self._wait_all(CANCEL_GRACE)
        for task in list(self._tasks):
            log.error("task.stuck_on_shutdown", task=task.get_name())

    async def _wait_all(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self._tasks and (remaining := end - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
