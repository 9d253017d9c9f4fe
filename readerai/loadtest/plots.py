"""PNG plots of a report: latency distributions, and server memory against sessions.

matplotlib is imported here only, and only when plots are asked for: the server
never needs it (it is in the `dev` extra). The `Agg` backend draws without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from readerai.loadtest.report import METRIC_ORDER, Report

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
