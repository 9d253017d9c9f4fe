"""Figures that compare two phases: ReaderAI against a baseline, or the upstream.

Ratios are ReaderAI / baseline, so 2.0 means ReaderAI takes twice the time (or
memory) of the baseline, or, for throughput, carries twice as much.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from readerai.loadtest.results import PhaseResult


class Ratio(BaseModel):
    """One figure of ReaderAI next to the same figure of a baseline."""

    metric: str
    baseline: str
    readerai: float
    baseline_value: float
    ratio: float | None


class StreamOverhead(BaseModel):
    """What ReaderAI adds to an upstream's stream (seconds; positive = slower).

    `first_token_*`: question sent → first `RESPONSE_DELTA`, minus request sent → first
    token read directly; `ack_p50` is the part spent storing the question before the
    engine is called. `per_token`: median per-token time of a reply, same difference.
    """

    first_token_p50: float
    first_token_p99: float
    per_token_p50: float
    token_gap_p99: float
    ack_p50: float | None
    readerai_first_token_p50: float
    direct_first_token_p50: float


def _figures() -> dict[str, Callable[[PhaseResult], float | None]]:
    def summary(name: str, field: str) -> Callable[[PhaseResult], float | None]:
        def get(phase: PhaseResult) -> float | None:
            found = phase.summaries.get(name)
            return getattr(found, field) if found else None

        return get

    def rss_per_session(phase: PhaseResult) -> float | None:
        return phase.server.rss_per_session_bytes if phase.server else None

    def cpu_run(phase: PhaseResult) -> float | None:
        return phase.server.cpu_percent_run if phase.server else None

    def per_cpu_second(count: str) -> Callable[[PhaseResult], float | None]:
        # Capacity when the clients share the cores: events handled per second of
        # server CPU (both servers carry the same offered rate in a run).
        def get(phase: PhaseResult) -> float | None:
            rate, cpu = phase.throughput.get(count), cpu_run(phase)
            return rate / (cpu / 100) if rate and cpu else None

        return get

    return {
        "ack p50 (s)": summary("ack", "p50"),
        "ack p99 (s)": summary("ack", "p99"),
        "acknowledged per second": lambda phase: phase.throughput.get("acknowledged"),
        "acknowledged per CPU-second": per_cpu_second("acknowledged"),
        "progress round trip p50 (s)": summary("progress_rtt", "p50"),
        "progress round trip p99 (s)": summary("progress_rtt", "p99"),
        "progress per CPU-second": per_cpu_second("progress_sent"),
        "connect p50 (s)": summary("connect", "p50"),
        "connect p99 (s)": summary("connect", "p99"),
        "RSS per session (bytes)": rss_per_session,
        "server CPU during run (%)": cpu_run,
    }


def ratios(readerai: PhaseResult, baselines: list[PhaseResult]) -> list[Ratio]:
    """Every figure both phases have, ReaderAI / baseline."""
    rows = []
    for baseline in baselines:
        for metric, figure in _figures().items():
            ours, theirs = figure(readerai), figure(baseline)
            if ours is None or theirs is None:
                continue
            rows.append(
                Ratio(
                    metric=metric,
                    baseline=baseline.target,
                    readerai=ours,
                    baseline_value=theirs,
                    ratio=ours / theirs if theirs else None,
                )
            )
    return rows


def stream_overhead(readerai: PhaseResult, direct: PhaseResult) -> StreamOverhead | None:
    """ReaderAI's stream minus the upstream's; `None` if either has no first token."""
    ours, theirs = readerai.summaries.get("first_delta"), direct.summaries.get("first_token")
    if ours is None or theirs is None:
        return None
    our_pace, their_pace = readerai.summaries.get("per_token"), direct.summaries.get("per_token")
    our_gap, their_gap = readerai.summaries.get("token_gap"), direct.summaries.get("token_gap")
    ack = readerai.summaries.get("ack")
    return StreamOverhead(
        first_token_p50=ours.p50 - theirs.p50,
        first_token_p99=ours.p99 - theirs.p99,
        per_token_p50=our_pace.p50 - their_pace.p50 if our_pace and their_pace else 0.0,
        token_gap_p99=our_gap.p99 - their_gap.p99 if our_gap and their_gap else 0.0,
        ack_p50=ack.p50 if ack else None,
        readerai_first_token_p50=ours.p50,
        direct_first_token_p50=theirs.p50,
    )
