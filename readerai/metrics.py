"""Prometheus metrics of one app, in a registry of its own (no global state)."""

from __future__ import annotations

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
