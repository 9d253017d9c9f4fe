"""Garbage-collector settings for a long-running server with many live connections.

CPython's cycle collector stops the event loop for as long as a pass takes, and a
pass over the oldest generation visits every tracked object. With the defaults
(a young pass every 700 allocations), a node holding 2,000 sessions ran a full pass
every two seconds or so under reading-progress load, each 60 to 400 ms long: that,
not our code, was the p99 latency (`readerai bench progress --sessions 2000 --rate
2000`: round trip p99 45 ms, event-loop lag max 250 ms).

Two changes, measured by the same command (p99 4.4 ms, lag max 50 ms):
- everything alive once the node is ready (models, settings, caches, imported
  modules) is moved out of the collector's sight with `gc.freeze()`: it lives as
  long as the process and was most of what every full pass visited;
- young passes run every `YOUNG_THRESHOLD` allocations instead of 700, so objects
  that live for one event (the great majority) are freed by reference counting
  before a pass can promote them, and far fewer reach the old generation.

Cycles are still collected; only less often, in larger and cheaper batches.
"""

from __future__ import annotations

import gc

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
