"""What a phase measured, merged over its client processes; the JSON report's parts."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from readerai.loadtest.procstat import ProcSample
from readerai.loadtest.prometheus import LagSummary
from readerai.loadtest.stats import Summary, summarize
from readerai.loadtest.wire import WorkerResult

#: Counts reported per second of run as throughput.
THROUGHPUT_COUNTS = (
    "questions_sent",
    "acknowledged",
    "done:completed",
    "done:cancelled",
    "progress_sent",
    "streams_completed",
)


class ServerStats(BaseModel):
    """The server process over the phase (from /proc)."""

    rss_start_bytes: int
    rss_ramped_bytes: int
    rss_end_bytes: int
    rss_peak_bytes: int
    rss_per_session_bytes: float
    cpu_percent_ramp: float
    cpu_percent_run: float
    timeline: list[ProcSample]


class BroadcastResult(BaseModel):
    """One class broadcast: how many received it, and when the last one did."""

    broadcast_id: str
    receivers: int
    time_to_last: float


class PhaseResult(BaseModel):
    """Everything one phase measured (latencies in seconds)."""

    target: str
    scenario: str
    mode: str
    sessions: int
    opened: int
    failed: int
    clients: int
    ramp_asked: float
    ramp_seconds: float
    run_seconds: float
    summaries: dict[str, Summary]
    throughput: dict[str, float]
    counts: dict[str, int]
    errors: dict[str, int]
    server: ServerStats | None
    loop_lag: LagSummary | None
    broadcasts: list[BroadcastResult]
    client_cpu_seconds: float
    send_lag_max: float
    samples: dict[str, list[float]]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def merge_results(
    *,
    target: str,
    scenario: str,
    mode: str,
    sessions: int,
    clients: int,
    ramp_asked: float,
    ramp_seconds: float,
    run_seconds: float,
    results: list[WorkerResult],
    server: ServerStats | None,
    loop_lag: LagSummary | None,
    broadcasts: list[BroadcastResult],
) -> PhaseResult:
    """One phase's result from its client processes' results."""
    samples: dict[str, list[float]] = {}
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for result in results:
        for name, values in result.samples.items():
            samples.setdefault(name, []).extend(values)
        counts.update(result.counts)
        errors.update(result.errors)
    summaries = {name: s for name, values in samples.items() if (s := summarize(values))}
    throughput = {
        name: counts[name] / run_seconds
        for name in THROUGHPUT_COUNTS
        if counts[name] and run_seconds > 0
    }
    if "broadcast" in samples and run_seconds > 0:
        throughput["broadcast_deliveries"] = len(samples["broadcast"]) / run_seconds
    return PhaseResult(
        target=target,
        scenario=scenario,
        mode=mode,
        sessions=sessions,
        opened=sum(r.opened for r in results),
        failed=sum(r.failed for r in results),
        clients=clients,
        ramp_asked=ramp_asked,
        ramp_seconds=ramp_seconds,
        run_seconds=run_seconds,
        summaries=summaries,
        throughput=throughput,
        counts=dict(counts),
        errors=dict(errors),
        server=server,
        loop_lag=loop_lag,
        broadcasts=broadcasts,
        client_cpu_seconds=sum(r.cpu_seconds for r in results),
        send_lag_max=max((r.send_lag_max for r in results), default=0.0),
        samples={name: [round(v, 7) for v in values] for name, values in samples.items()},
    )
