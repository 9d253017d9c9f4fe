"""Event-loop lag: how late a timer fires. A blocked loop shows up here first."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram

#: How often the loop is probed.
INTERVAL = 0.1


async def watch_loop_lag(histogram: Histogram, interval: float = INTERVAL) -> None:
    """Record, every `interval`, how much later than asked a sleep returned."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, time.perf_counter() - asked - interval))
