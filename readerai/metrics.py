"""Prometheus metrics of one app, in a registry of its own (no global state).

One process (`readerai serve`): `/metrics` renders the app's registry. Several
worker processes (`readerai serve --workers N`): the parent gives them a private
directory in `PROMETHEUS_MULTIPROC_DIR`; prometheus-client then keeps every value in
a per-process file there, and `/metrics`, whichever worker answers, renders all of
them together (`MultiProcessCollector`): counters and histograms summed over the
workers (the dead ones included, so totals never go back), gauges as their
`multiprocess_mode` says (`livesum`: summed over the live workers; the parent marks
a dead worker's gauges dead).

Gauges that describe state (sessions held, tasks, queue depths) are *sampled*: set
from a reading function by `sample()`, which `/metrics` calls before rendering and,
with several workers, each worker also calls every `SAMPLE_SECONDS` (a worker that
is not answering the scrape must still report).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from readerai.protocol import ReplyStatus

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Model work (a queue wait, a transcription, a sentence spoken) takes longer.
_WORK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Where prometheus-client keeps the values of several worker processes.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How often each worker refreshes its sampled gauges when there are several workers.
SAMPLE_SECONDS = 1.0

#: How several workers' values of a gauge combine (prometheus-client's modes).
GaugeMode = Literal["livesum", "livemax", "livemin"]


class Metrics:
    """The node's metrics; `render()` is what `/metrics` serves.

    `multiprocess_dir` is `PROMETHEUS_MULTIPROC_DIR` when this process is one of
    several workers (prometheus-client then writes every value to a file there).
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self._sampled: list[tuple[Gauge, Callable[[], float]]] = []
        #: The outbound queue of every open connection (for their depth).
        self._queues: set[Sized] = set()
        r = self.registry
        self.connections = Gauge(
            "readerai_connections",
            "Open WebSocket connections.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.live_sessions = self._gauge(
            "readerai_live_sessions", "Sessions held in memory on this node."
        )
        self.turns = Counter(
            "readerai_turns", "Finished turns by reply status.", ["status"], registry=r
        )
        for status in ReplyStatus:
            if status is not ReplyStatus.IN_PROGRESS:
                self.turns.labels(status=status.value)  # every status shows, even at 0
        self.errors = Counter(
            "readerai_client_errors", "ERROR events sent, by code.", ["code"], registry=r
        )
        self.turn_errors = Counter(
            "readerai_turn_errors",
            "Turns that ended with an error (in RESPONSE_DONE), by code.",
            ["code"],
            registry=r,
        )
        self.http_errors = Counter(
            "readerai_http_errors",
            "Error bodies the HTTP API sent, by code.",
            ["code"],
            registry=r,
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
        self.engine_waiting = self._gauge(
            "readerai_engine_waiting", "Turns waiting for an engine slot."
        )
        self.engine_active = self._gauge("readerai_engine_active", "Engine calls running.")
        self.engine_wait_seconds = Histogram(
            "readerai_engine_wait_seconds",
            "How long a turn waited for an engine slot (this node's, then the cluster's).",
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.stt_seconds = Histogram(
            "readerai_stt_seconds",
            "Speech-to-text of one utterance (queue for the model included).",
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.tts_seconds = Histogram(
            "readerai_tts_seconds",
            "Text-to-speech of one sentence of a reply (queue for the model included).",
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.loop_lag_seconds = Histogram(
            "readerai_event_loop_lag_seconds",
            "How late a 100 ms timer fires on the event loop.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.outbound_queued = self._gauge(
            "readerai_outbound_queued",
            "Events waiting in the outbound queues of all open connections.",
            read=lambda: float(sum(len(q) for q in self._queues)),
        )
        self.outbound_queue_max = self._gauge(
            "readerai_outbound_queue_max",
            "Events waiting in the fullest outbound queue of one connection.",
            read=lambda: float(max((len(q) for q in self._queues), default=0)),
            mode="livemax",
        )
        self.background_tasks = self._gauge(
            "readerai_background_tasks",
            "Tasks the node's supervisor runs (turns, flushes, checkpoints).",
        )
        self.event_loop_tasks = self._gauge(
            "readerai_event_loop_tasks",
            "Every asyncio task on the event loop (connections included).",
            read=_loop_tasks,
        )
        self.bus_up = self._gauge(
            "readerai_bus_up",
            "1 while the bus answers (cross-node features work), else 0; the lowest worker.",
            mode="livemin",
        )
        #: Set by each readiness check and scrape (a store ping), not sampled.
        self.store_up = Gauge(
            "readerai_store_up",
            "1 if the store answered its last ping (by /readyz or /metrics), else 0.",
            registry=r,
            multiprocess_mode="livemostrecent",
        )

    def _gauge(
        self,
        name: str,
        documentation: str,
        *,
        read: Callable[[], float] | None = None,
        mode: GaugeMode = "livesum",
    ) -> Gauge:
        gauge = Gauge(
            name,
            documentation,
            registry=self.registry,
            multiprocess_mode=mode,
        )
        if read is not None:
            self._sampled.append((gauge, read))
        return gauge

    def read_from(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Set `gauge` from `read()` whenever the metrics are sampled."""
        self._sampled.append((gauge, read))

    def watch_tasks(self, supervised: Callable[[], int]) -> None:
        """Report `supervised()` (the supervisor's tasks) whenever the metrics are sampled."""
        self.read_from(self.background_tasks, lambda: float(supervised()))

    def connection_opened(self, outbound: Sized) -> None:
        """A connection opened; `outbound` is its outbound queue (its depth is sampled)."""
        self.connections.inc()
        self._queues.add(outbound)

    def connection_closed(self, outbound: Sized) -> None:
        self.connections.dec()
        self._queues.discard(outbound)

    def sample(self) -> None:
        """Set every sampled gauge from its reading (on the event loop: some read tasks)."""
        for gauge, read in self._sampled:
            gauge.set(read())

    async def keep_sampling(self, interval: float = SAMPLE_SECONDS) -> None:
        """Sample every `interval` seconds, for as long as the node runs (several workers)."""
        while True:
            self.sample()
            await asyncio.sleep(interval)

    def render(self) -> bytes:
        """The exposition text. With several workers it reads their files: blocking, so
        call it in a worker thread then (`sample()` first, on the loop)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _loop_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # read off the event loop: no figure
        return float("nan")
