"""Garbage-collector settings for a long-running server with many live connections.

CPython's cycle collector stops the event loop for as long as a pass takes, and a
pass over an older generation visits every tracked object in it. With the defaults
(a young pass every 700 allocations), a node holding 2,000 sessions ran a full pass
every two seconds or so under reading-progress load, each 60 to 400 ms long: that,
not our code, was the p99 latency (`readerai bench progress --sessions 2000 --rate
2000`: round trip p99 45 ms, event-loop lag max 250 ms).

Three changes, each measured:
- everything alive once the node is ready (models, settings, caches, imported
  modules) is moved out of the collector's sight with `gc.freeze()`: it lives as
  long as the process and was most of what every full pass visited;
- young passes run every `YOUNG_THRESHOLD` allocations instead of 700, so objects
  that live for one event (the great majority) are freed by reference counting
  before a pass can promote them, and far fewer reach the old generation (the two:
  p99 4.4 ms, lag max 50 ms by the command above);
- what survives the young passes is frozen too, every `gc_freeze_seconds`
  (`keep_freezing`): live sessions' objects (some 54 each) were what the middle
  passes visited, 250-530 ms each at 10,000 sessions, and they found nothing to
  collect. Frozen, the middle passes see only what was promoted since the last
  freeze (5,000 sessions, 400 questions/s: ack p99 17.8-21.4 → 9.3 ms, max 149 →
  34 ms; docs/performance.md).

Reference counting still frees frozen objects the moment they are unused; only a
cycle that becomes garbage after its objects were frozen waits, for the full pass
every `gc_full_collection_seconds`, which unfreezes everything, collects and logs
what it found (none, in every benchmark so far: the connection code breaks its
cycles on close, `readerai.session.actor`).
"""

from __future__ import annotations

import asyncio
import gc
import time

import structlog

log = structlog.get_logger(__name__)

#: Allocations between young-generation passes (CPython's default: 700).
YOUNG_THRESHOLD = 20_000
#: Young passes per middle pass, middle passes per full pass (defaults: 10, 10).
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 10


def tune_for_serving() -> None:
    """Freeze what is alive now and space the collector's passes (see the module)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def full_collection() -> int:
    """Hand every frozen object back to the collector, run a full pass, freeze what
    is left; how many objects the pass freed (logged, with how long it took)."""
    started = time.perf_counter()
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    log.info(
        "gc.full_collection",
        freed=freed,
        seconds=round(time.perf_counter() - started, 3),
    )
    return freed


async def keep_freezing(every: float, full_every: float) -> None:
    """Every `every` seconds freeze what is alive; every `full_every` seconds (0:
    never) run `full_collection` instead. Endless: cancel it to stop."""
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(every)
        if full_every and time.monotonic() - last_full >= full_every:
            full_collection()
            last_full = time.monotonic()
        else:
            gc.freeze()
