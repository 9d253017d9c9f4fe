"""`readerai bench readaloud`: what one reader saw, and the figures of each round.

A `ReaderTrace` is one student's reading as the client saw it: when each
`READING_PROGRESS` arrived (seconds from the reading's first frame) and the
`READING_RESULT`. `figures` turns the traces of one round (K readers at once) and
the server's CPU and loop lag into a `Round`:

- lag: for each passage word said, from the end of its sound (Piper's own
  durations, `Reading.word_ends`) to the first `READING_PROGRESS` whose `wordIndex`
  reaches it; words said but never reached are counted apart;
- miscues: those of `READING_RESULT` against the script's edits (a true positive is
  the same kind at the same passage word; an insertion, the same word said);
- CPU: server CPU-seconds over the round per second of audio heard, i.e. the share
  of one core a reader costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from readerai.loadtest.readings import MiscueKey, Reading
from readerai.readaloud import MiscueKind, normalize


@dataclass
class ReaderTrace:
    """One reading as its client saw it; times in seconds from its first frame."""

    reading: Reading
    progress: list[tuple[float, int]] = field(default_factory=list)  # (arrived, wordIndex)
    result: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    send_lag_max: float = 0.0  # how late the client itself sent a frame, at worst

    def lags(self) -> tuple[list[float], int]:
        """Lag of each passage word said, and how many said were never reached."""
        lags: list[float] = []
        missed = 0
        for word, end in enumerate(self.reading.word_ends):
            if end is None:
                continue
            arrived = next((t for t, reached in self.progress if reached >= word), None)
            if arrived is None:
                missed += 1
            else:
                lags.append(arrived - end)
        return lags, missed

    def reached_last(self) -> bool:
        last = self.reading.script.last_word
        return any(reached >= last for _, reached in self.progress)

    def miscues(self) -> set[MiscueKey] | None:
        """The miscues `READING_RESULT` reported, keyed as the script's truth."""
        if self.result is None:
            return None
        found: set[MiscueKey] = set()
        for miscue in self.result.get("miscues", []):
            kind = MiscueKind(miscue["kind"])
            index = miscue.get("wordIndex")
            found.add(
                (kind, normalize(miscue.get("heard", ""))) if index is None else (kind, index)
            )
        return found


class WordLag(BaseModel):
    """Word spoken -> its highlight, in seconds (negative: heard before its sound ended)."""

    n: int
    p50: float
    p95: float
    max: float
    mean: float


def summarize_lags(lags: list[float]) -> WordLag | None:
    if not lags:
        return None
    values = np.asarray(lags, dtype=np.float64)
    p50, p95 = (float(q) for q in np.percentile(values, (50, 95)))
    return WordLag(
        n=int(values.size), p50=p50, p95=p95, max=float(values.max()), mean=float(values.mean())
    )


class MiscueScore(BaseModel):
    """Miscues reported against the edits made, over the readings scored."""

    readings: int
    true_positives: int
    reported: int
    edits: int
    precision: float | None
    recall: float | None
    wcpm_error_max: float | None  # |reported / synthesised - 1|, worst reading


class TraceView(BaseModel):
    """One reading's raw figures: its word ends and the progress seen (seconds)."""

    script: str
    word_ends: list[float | None]
    progress: list[tuple[float, int]]
    wcpm_reported: float | None
    wcpm_synthesised: float
    miscues_reported: list[str] | None
    miscues_made: list[str]


def view(trace: ReaderTrace) -> TraceView:
    found = trace.miscues()
    return TraceView(
        script=trace.reading.script.name,
        word_ends=[None if e is None else round(e, 3) for e in trace.reading.word_ends],
        progress=[(round(t, 3), i) for t, i in trace.progress],
        wcpm_reported=None if trace.result is None else trace.result.get("wcpm"),
        wcpm_synthesised=round(trace.reading.wcpm(), 1),
        miscues_reported=None if found is None else sorted(f"{k}:{w}" for k, w in found),
        miscues_made=sorted(f"{k}:{w}" for k, w in trace.reading.script.truth()),
    )


class Round(BaseModel):
    """K readers at once: the figures, and whether the node kept up."""

    readers: int
    audio_seconds: float
    lag: WordLag | None
    words_said: int
    words_never_reached: int
    readers_reaching_last_word: int
    miscues: MiscueScore
    server_cpu_seconds: float
    cpu_percent_per_reader: float  # server CPU per second of audio, in % of one core
    loop_lag_p99_ms: float | None
    loop_lag_probes: int
    errors: list[str]
    client_send_lag_max_ms: float
    holds: bool
    why_not: list[str]
    readings: list[TraceView]


@dataclass(frozen=True)
class Limits:
    """When a round no longer holds."""

    loop_lag_p99: float = 0.020  # seconds
    word_lag_p95: float = 4.0  # seconds: recognition fell behind the reading
    never_reached: float = 0.05  # share of the words said


def score(traces: list[ReaderTrace]) -> MiscueScore:
    scored = [(t, found) for t in traces if (found := t.miscues()) is not None]
    truth = [t.reading.script.truth() for t, _ in scored]
    hits = sum(len(found & true) for (_, found), true in zip(scored, truth, strict=True))
    reported = sum(len(found) for _, found in scored)
    edits = sum(len(true) for true in truth)
    errors = [
        abs(float(t.result["wcpm"]) / t.reading.wcpm() - 1)
        for t, _ in scored
        if t.result is not None and "wcpm" in t.result
    ]
    return MiscueScore(
        readings=len(scored),
        true_positives=hits,
        reported=reported,
        edits=edits,
        precision=hits / reported if reported else (1.0 if scored else None),
        recall=hits / edits if edits else None,
        wcpm_error_max=max(errors, default=None),
    )


def figures(
    traces: list[ReaderTrace],
    cpu_seconds: float,
    loop_lag_p99: float | None,
    loop_lag_probes: int,
    limits: Limits,
) -> Round:
    """One round's figures from its readers' traces and the server's CPU and loop lag."""
    lags: list[float] = []
    missed = said = 0
    for trace in traces:
        lag, never = trace.lags()
        lags += lag
        missed += never
        said += len(lag) + never
    audio = sum(t.reading.seconds for t in traces)
    lag_summary = summarize_lags(lags)
    errors = [error for trace in traces for error in trace.errors]
    why_not: list[str] = []
    if loop_lag_p99 is None or loop_lag_p99 > limits.loop_lag_p99:
        why_not.append(f"event-loop lag p99 above {limits.loop_lag_p99 * 1000:g} ms")
    if lag_summary is None or lag_summary.p95 > limits.word_lag_p95:
        why_not.append(f"word lag p95 above {limits.word_lag_p95:g} s: behind the reading")
    if missed > limits.never_reached * said:
        why_not.append(f"more than {limits.never_reached:.0%} of the words said never reached")
    if errors:
        why_not.append(f"{len(errors)} errors")
    return Round(
        readers=len(traces),
        audio_seconds=round(audio, 3),
        lag=lag_summary,
        words_said=said,
        words_never_reached=missed,
        readers_reaching_last_word=sum(t.reached_last() for t in traces),
        miscues=score(traces),
        server_cpu_seconds=round(cpu_seconds, 3),
        cpu_percent_per_reader=round(100 * cpu_seconds / audio, 2) if audio else 0.0,
        loop_lag_p99_ms=None if loop_lag_p99 is None else round(loop_lag_p99 * 1000, 2),
        loop_lag_probes=loop_lag_probes,
        errors=errors,
        client_send_lag_max_ms=round(1000 * max(t.send_lag_max for t in traces), 2),
        holds=not why_not,
        why_not=why_not,
        readings=[view(trace) for trace in traces],
    )


def describe(round_: Round) -> str:
    """One line for the terminal."""
    lag = round_.lag
    lags = (
        "no word reached"
        if lag is None
        else (
            f"lag p50 {lag.p50 * 1000:.0f} ms, p95 {lag.p95 * 1000:.0f} ms, "
            f"max {lag.max * 1000:.0f} ms"
        )
    )
    m = round_.miscues
    miscues = (
        "no READING_RESULT"
        if m.readings == 0
        else f"miscues P {_ratio(m.precision)} R {_ratio(m.recall)} ({m.readings} readings)"
    )
    loop = "n/a" if round_.loop_lag_p99_ms is None else f"{round_.loop_lag_p99_ms:.1f} ms"
    verdict = "holds" if round_.holds else "does not hold: " + "; ".join(round_.why_not)
    return (
        f"K={round_.readers}: {lags}, {round_.words_never_reached}/{round_.words_said} "
        f"never reached; {miscues}; server CPU {round_.cpu_percent_per_reader:.1f} % "
        f"of a core per reader; loop lag p99 {loop}; {verdict}"
    )


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
