"""Writes that ride out a short database outage (a PostgreSQL restart or failover).

A write that fails with `StoreUnavailable` is tried again after 50 ms, 100 ms,
200 ms, … (at most 1 s apart) until the store's retry budget is spent; then the last
`StoreUnavailable` is raised. Any other error (`Conflict`, `NotFound`, a bad
statement) is raised at once: trying again would give the same answer. Reads are not
retried; a caller that reads can say "try again" sooner than a retry loop could.

Invariants: a retried write is a whole unit of work (its own transaction) run
again from the start, never the tail of one; cancellation interrupts the wait
between attempts and is never swallowed.

A write is safe to retry when it is idempotent (updates, upserts) or when its
failure means it did not commit. If the connection drops while COMMIT is in flight,
the outcome is unknown: a retried insert may then be stored twice, and a retried
`create_session` may report `Conflict` for the session it created itself.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import anyio
import structlog

from readerai.errors import StoreUnavailable

log = structlog.get_logger(__name__)

#: Wait before the first retry, doubled after each failed attempt.
FIRST_DELAY_SECONDS = 0.05
#: Longest wait between two attempts.
MAX_DELAY_SECONDS = 1.0

P = ParamSpec("P")
T = TypeVar("T")


def backoff_delays(
    first: float = FIRST_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS
) -> Iterator[float]:
    """The waits between attempts: `first`, doubling, never more than `cap`; endless."""
    delay = first
    while True:
        yield min(delay, cap)
        delay *= 2


@dataclass(frozen=True, slots=True)
class WriteRetry:
    """Retry policy for writes: keep trying for `budget` seconds (0: try once)."""

    budget: float

    async def run(self, write: Callable[[], Awaitable[T]], *, operation: str) -> T:
        """Await `write()`, again after each `StoreUnavailable` until the budget is spent."""
        deadline = anyio.current_time() + self.budget
        for attempt, delay in enumerate(backoff_delays(), start=1):
            try:
                return await write()
            except StoreUnavailable as exc:
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    raise
                wait = min(delay, remaining)
                log.warning(
                    "store.write_retry",
                    operation=operation,
                    attempt=attempt,
                    code=exc.code,
                    error=exc.message,
                    retry_in_ms=round(wait * 1000),
                )
            await anyio.sleep(wait)
        raise AssertionError("backoff_delays is endless")  # pragma: no cover


class RetriesWrites(Protocol):
    """A store whose writes `retried_write` may retry under its policy."""

    @property
    def write_retry(self) -> WriteRetry: ...


S = TypeVar("S", bound=RetriesWrites)


def retried_write(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make a store method that writes one unit of work retry it under `write_retry`."""

    @functools.wraps(method)
    async def write_with_retry(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        write = functools.partial(method, self, *args, **kwargs)
        return await self.write_retry.run(write, operation=method.__name__.lstrip("_"))

    return write_with_retry
