"""PNG plots of a report: latency distributions, server memory against sessions, and
for a soak, memory and tasks over time.

matplotlib is imported here only, and only when plots are asked for: the server
never needs it (it is in the `dev` extra). The `Agg` backend draws without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from readerai.loadtest.report import METRIC_ORDER, Report
from readerai.loadtest.soakresult import SoakResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_STYLES = {"readerai": "-", "plain": ":", "naive": "--", "upstream": "-."}


def write_plots(report: Report, directory: Path) -> list[Path]:
    """Draw the report's plots into `directory`; the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    scenario = report.options["scenario"]
    written = []

    figure, axes = plt.subplots(figsize=(9, 5.5))
    if _latency_cdf(axes, report):
        axes.set_title(f"{scenario}: latency distribution")
        path = directory / f"{scenario}-latency.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(9, 5.5))
    if _rss_against_sessions(axes, report):
        axes.set_title(f"{scenario}: server memory against open sessions")
        path = directory / f"{scenario}-rss.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    plt.close(figure)

    if report.soak is not None:
        figure, (rss_axes, task_axes) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
        _soak_timeline(rss_axes, task_axes, report.soak)
        verdict = "returned to baseline" if report.soak.passed else "did NOT return to baseline"
        rss_axes.set_title(f"soak: server memory and tasks over time ({verdict})")
        path = directory / "soak-timeline.png"
        figure.savefig(path, dpi=90, bbox_inches="tight")
        written.append(path)
        plt.close(figure)
    return written


def _latency_cdf(axes: Axes, report: Report) -> bool:
    """One cumulative distribution per (phase, latency); whether anything was drawn."""
    drawn = False
    for phase in report.phases:
        style = _STYLES.get(phase.target, "-")
        for colour, name in enumerate(METRIC_ORDER):
            values = phase.samples.get(name)
            if not values:
                continue
            ms = np.sort(np.asarray(values, dtype=np.float64)) * 1000
            share = np.arange(1, ms.size + 1) / ms.size
            # One colour per latency, one line style per server: like with like.
            label = f"{phase.target} {name} (n={ms.size})"
            axes.plot(ms, share, style, color=f"C{colour}", label=label)
            drawn = True
    if drawn:
        axes.set_xscale("log")
        axes.set_xlabel("latency (ms, log scale)")
        axes.set_ylabel("share of samples at or below")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return drawn


def _rss_against_sessions(axes: Axes, report: Report) -> bool:
    drawn = False
    for phase in report.phases:
        if phase.server is None or not phase.server.timeline:
            continue
        sessions = [s.sessions for s in phase.server.timeline]
        rss = [s.rss_bytes / 2**20 for s in phase.server.timeline]
        axes.plot(sessions, rss, _STYLES.get(phase.target, "-"), marker=".", label=phase.target)
        drawn = True
    if drawn:
        axes.set_xlabel("sessions open")
        axes.set_ylabel("server RSS (MiB)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", loc="upper left")
    return drawn


#: Stages of a soak shaded on its timeline, and their colours.
_STAGE_SHADES = {"warmup": "0.85", "ramping": "C1", "running": "C1", "stopping": "C1"}


def _soak_timeline(rss_axes: Axes, task_axes: Axes, soak: SoakResult) -> None:
    """RSS (with the baseline and its margin) above; task and session counts below."""
    t = [s.t for s in soak.samples]
    rss_axes.plot(t, [s.rss_bytes / 2**20 for s in soak.samples], color="C0", label="RSS")
    base = soak.baseline.rss_bytes / 2**20
    rss_axes.axhline(base, color="0.4", linestyle=":", label="baseline")
    rss_axes.axhline(
        base + soak.rss_margin_bytes / 2**20, color="C3", linestyle="--", label="baseline + margin"
    )
    rss_axes.set_ylabel("server RSS (MiB)")
    series = (
        ("event_loop_tasks", "event-loop tasks"),
        ("connections", "connections"),
        ("live_sessions", "live sessions"),
        ("background_tasks", "background tasks"),
    )
    for colour, (field, label) in enumerate(series):
        values = [getattr(s, field) for s in soak.samples]
        task_axes.plot(
            t, [np.nan if v is None else v for v in values], color=f"C{colour + 2}", label=label
        )
    task_axes.set_ylabel("count")
    task_axes.set_xlabel("seconds since the soak began (grey: warm-up, orange: load)")
    for axes in (rss_axes, task_axes):
        for stage, start, end in _stage_spans(soak):
            shade = _STAGE_SHADES.get(stage)
            if shade is not None:
                axes.axvspan(start, end, color=shade, alpha=0.15, linewidth=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", loc="upper left")


def _stage_spans(soak: SoakResult) -> list[tuple[str, float, float]]:
    """(stage, first sample's time, next stage's first sample's time), in order."""
    spans: list[tuple[str, float, float]] = []
    for sample in soak.samples:
        if spans and spans[-1][0] == sample.stage:
            spans[-1] = (sample.stage, spans[-1][1], sample.t)
        else:
            if spans:
                spans[-1] = (spans[-1][0], spans[-1][1], sample.t)
            spans.append((sample.stage, sample.t, sample.t))
    return spans
