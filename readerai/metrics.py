"""Prometheus metrics of one app, in a registry of its own (no global state)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The node's metrics; `registry` is what `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("readerai_connections", "Open WebSocket connections.", registry=r)
        self.live_sessions = Gauge(
            "readerai_live_sessions", "Sessions held in memory on this node.", registry=r
        )
        self.turns = Counter(
            "readerai_turns", "Finished turns by reply status.", ["status"], registry=r
        )
        self.errors = Counter(
            "readerai_client_errors", "ERROR events sent, by code.", ["code"], registry=r
        )
        self.ack_seconds = Histogram(
            "readerai_ack_seconds",
            "Question received to INTERRUPTION_ACKNOWLEDGED queued.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_delta_seconds = Histogram(
            "readerai_first_delta_seconds",
            "Question received to first RESPONSE_DELTA.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_waiting = Gauge(
            "readerai_engine_waiting", "Turns waiting for an engine slot.", registry=r
        )
        self.loop_lag_seconds = Histogram(
            "readerai_event_loop_lag_seconds",
            "How late a 100 ms timer fires on the event loop.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.engine_active = Gauge("readerai_engine_active", "Engine calls running.", registry=r)
        #: Read when /metrics is collected (on the event loop): see `watch_tasks`.
        self.background_tasks = Gauge(
            "readerai_background_tasks",
            "Tasks the node's supervisor runs (turns, flushes, checkpoints).",
            registry=r,
        )
        self.event_loop_tasks = Gauge(
            "readerai_event_loop_tasks",
            "Every asyncio task on the event loop (connections included).",
            registry=r,
        )

    def watch_tasks(self, supervised: Callable[[], int]) -> None:
        """Report `supervised()` and the loop's task count whenever /metrics is read.

        Both are read at collection time, which /metrics does on the event loop; a
        leak shows as a count that does not return to its baseline.
        """
        self.background_tasks.set_function(lambda: float(supervised()))
        self.event_loop_tasks.set_function(_loop_tasks)


def _loop_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected off the event loop: no figure
        return float("nan")
