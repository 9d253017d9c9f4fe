"""The benchmark's report: the machine, every phase, comparisons, a soak's verdict;
terminal and JSON."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from readerai.loadtest.comparisons import Ratio, StreamOverhead, ratios, stream_overhead
from readerai.loadtest.options import BenchOptions
from readerai.loadtest.results import PhaseResult
from readerai.loadtest.soakresult import Figures, SoakResult

#: Latencies in the order they are shown.
METRIC_ORDER = (
    "open",
    "connect",
    "ack",
    "first_delta",
    "first_token",
    "token_gap",
    "per_token",
    "cancel",
    "progress_rtt",
    "broadcast",
)


class Machine(BaseModel):
    cpu: str
    cores: int
    memory_bytes: int
    python: str
    platform: str

    def __str__(self) -> str:
        gib = self.memory_bytes / 2**30
        return (
            f"{self.cpu}, {self.cores} cores, {gib:.1f} GiB RAM, "
            f"Python {self.python}, {self.platform}"
        )


class Report(BaseModel):
    """Everything a run measured; `phases[0]` is ReaderAI under the scenario's load."""

    command: str
    machine: Machine
    started_at: str
    options: dict[str, Any]
    phases: list[PhaseResult]
    ratios: list[Ratio]
    stream: StreamOverhead | None
    notes: list[str]
    soak: SoakResult | None = None

    @classmethod
    def build(
        cls,
        command: str,
        machine: Machine,
        started_at: str,
        options: BenchOptions,
        phases: list[PhaseResult],
        notes: list[str],
        soak: SoakResult | None = None,
    ) -> Report:
        main = phases[0]
        baselines = [p for p in phases if p.target in ("plain", "naive")]
        direct = next((p for p in phases if p.mode == "direct"), None)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}
        settings.pop("token", None)
        settings.pop("auth_secret", None)
        return cls(
            command=command,
            machine=machine,
            started_at=started_at,
            options=settings,
            phases=phases,
            ratios=ratios(main, baselines),
            stream=stream_overhead(main, direct) if direct else None,
            notes=notes,
            soak=soak,
        )


def describe_machine() -> Machine:
    """This machine, from /proc; blocking (call it before the event loop runs)."""
    cpu = platform.processor() or "unknown CPU"
    memory = 0
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
        with open("/proc/meminfo") as info:
            memory = int(info.readline().split()[1]) * 1024
    except OSError:
        pass
    return Machine(
        cpu=cpu,
        cores=os.cpu_count() or 1,
        memory_bytes=memory,
        python=platform.python_version(),
        platform=platform.platform(terse=True),
    )


def print_header(console: Console, command: str, machine: Machine) -> None:
    console.print(f"[bold]command:[/bold] {command}")
    console.print(f"[bold]machine:[/bold] {machine}")


def print_report(console: Console, report: Report) -> None:
    for phase in report.phases:
        _print_phase(console, phase)
    if report.stream is not None:
        _print_stream(console, report.stream)
    if report.ratios:
        _print_ratios(console, report.ratios)
    if report.soak is not None:
        _print_soak(console, report.soak)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def _print_phase(console: Console, phase: PhaseResult) -> None:
    ramp_rate = phase.opened / phase.ramp_seconds if phase.ramp_seconds > 0 else 0.0
    console.print()
    console.rule(f"[bold]{phase.target}[/bold] · {phase.scenario}")
    console.print(
        f"sessions {phase.opened} opened of {phase.sessions} ({phase.failed} failed) from "
        f"{phase.clients} client processes; ramp {phase.ramp_seconds:.1f} s "
        f"({ramp_rate:.0f}/s of {phase.ramp_asked:g}/s asked); run {phase.run_seconds:.1f} s; "
        f"client CPU {phase.client_cpu_seconds:.1f} s; send lag max "
        f"{phase.send_lag_max * 1000:.1f} ms"
    )
    table = Table("latency (ms)", "n", "p50", "p90", "p99", "p99.9", "max", box=None)
    names = [m for m in METRIC_ORDER if m in phase.summaries]
    names += sorted(set(phase.summaries) - set(names))
    for name in names:
        s = phase.summaries[name]
        cells = (s.p50, s.p90, s.p99, s.p999, s.max)
        table.add_row(name, str(s.n), *(f"{v * 1000:.2f}" for v in cells))
    if names:
        console.print(table)
    if phase.throughput:
        rates = ", ".join(f"{k} {v:.1f}/s" for k, v in phase.throughput.items())
        console.print(f"throughput: {rates}")
    if phase.broadcasts:
        lasts = sorted(b.time_to_last for b in phase.broadcasts)
        receivers = min(b.receivers for b in phase.broadcasts)
        console.print(
            f"broadcasts: {len(lasts)}, each to ≥{receivers} sessions; time to last "
            f"median {lasts[len(lasts) // 2] * 1000:.1f} ms, max {lasts[-1] * 1000:.1f} ms"
        )
    if phase.server is not None:
        server = phase.server
        console.print(
            f"server: RSS {_mib(server.rss_start_bytes)} → {_mib(server.rss_ramped_bytes)} "
            f"after ramp (peak {_mib(server.rss_peak_bytes)}), "
            f"{server.rss_per_session_bytes / 1024:.1f} KiB per session; CPU "
            f"{server.cpu_percent_ramp:.0f}% during ramp, {server.cpu_percent_run:.0f}% during run"
        )
    if phase.loop_lag is not None:
        lag = phase.loop_lag
        console.print(
            f"event-loop lag: p50 {_ms(lag.p50)}, p99 {_ms(lag.p99)}, "
            f"max ≤ {_ms(lag.max_bucket)} ({lag.probes} probes)"
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(phase.counts.items()))
    console.print(f"counts: {counts or 'none'}")
    errors = ", ".join(f"{k} {v}" for k, v in sorted(phase.errors.items()))
    console.print(f"errors: {'[red]' + errors + '[/red]' if errors else 'none'}")


def _print_stream(console: Console, stream: StreamOverhead) -> None:
    console.print()
    console.rule("[bold]stream[/bold] · ReaderAI minus reading the upstream directly")
    ack = (
        f"; of which storing the question (ack p50) {_ms(stream.ack_p50)}" if stream.ack_p50 else ""
    )
    console.print(
        f"added to first token: p50 {_ms(stream.first_token_p50)}, "
        f"p99 {_ms(stream.first_token_p99)} (first token p50 {_ms(stream.readerai_first_token_p50)}"
        f" through ReaderAI, {_ms(stream.direct_first_token_p50)} direct){ack}"
    )
    console.print(
        f"added per token: p50 {_ms(stream.per_token_p50)}; "
        f"token gap p99 added {_ms(stream.token_gap_p99)}"
    )


def _print_ratios(console: Console, rows: list[Ratio]) -> None:
    console.print()
    console.rule("[bold]ReaderAI / baseline[/bold]")
    table = Table("metric", "baseline", "ReaderAI", "baseline value", "ratio", box=None)
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
        table.add_row(
            row.metric,
            row.baseline,
            _figure(row.metric, row.readerai),
            _figure(row.metric, row.baseline_value),
            ratio,
        )
    console.print(table)


def _print_soak(console: Console, soak: SoakResult) -> None:
    console.print()
    console.rule("[bold]soak[/bold] · does the server return to its baseline?")
    table = Table("", "baseline", "peak (load)", "after leave", "limit", "", box=None)
    checks = {c.figure: c for c in soak.checks}
    rows = (
        ("RSS (MiB)", "rss_bytes"),
        ("background tasks", "background_tasks"),
        ("event-loop tasks", "event_loop_tasks"),
        ("connections", "connections"),
        ("live sessions", "live_sessions"),
        ("CPU (% of a core)", "cpu_percent"),
        ("threads", "threads"),
    )
    for label, field in rows:
        check = checks.get(field)
        cells = [_soak_figure(f, field) for f in (soak.baseline, soak.peak, soak.after)]
        limit = _soak_value(check.limit, field) if check else ""
        verdict = ("[green]ok[/green]" if check.passed else "[red]FAIL[/red]") if check else ""
        table.add_row(label, *cells, limit, verdict)
    console.print(table)
    slope = soak.rss_slope_bytes_per_second
    if slope is not None and soak.slope_window is not None:
        start, end = soak.slope_window
        check = checks.get("rss_slope")
        limit = f" (limit {check.limit / 1024:.2f} KiB/s)" if check else ""
        console.print(
            f"RSS slope over the second half of the load ({start:.0f}-{end:.0f} s): "
            f"{slope / 1024:+.2f} KiB/s{limit}"
        )
    console.print(
        f"samples: {len(soak.samples)}; baseline and after are medians of "
        f"{soak.baseline.samples} and {soak.after.samples} samples"
    )
    if soak.warmup_errors:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(soak.warmup_errors.items()))
        console.print(f"warm-up errors: [red]{errors}[/red]")
    if soak.passed:
        console.print("[green]PASS[/green]: RSS and task counts returned to their baseline")
    else:
        failed = ", ".join(c.name for c in soak.checks if not c.passed) or "no figures"
        console.print(f"[red]FAIL[/red]: {failed}")


def _soak_figure(figures: Figures, field: str) -> str:
    value = getattr(figures, field)
    return "—" if value is None else _soak_value(value, field)


def _soak_value(value: float, field: str) -> str:
    if field == "rss_bytes":
        return f"{value / 2**20:.1f}"
    if field == "cpu_percent":
        return f"{value:.1f}"
    return f"{value:g}"


def _figure(metric: str, value: float) -> str:
    if metric.endswith("(s)"):
        return _ms(value)
    if metric.endswith("(bytes)"):
        return f"{value / 1024:.1f} KiB"
    return f"{value:.1f}"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if math.isinf(seconds):
        return "> 1 s"
    return f"{seconds * 1000:.2f} ms"


def _mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"
