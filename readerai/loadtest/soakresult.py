"""What a soak measured, and its verdict: do memory and tasks return to their baseline?

The samples are cut into stages by the coordinator (`soak.py`): `warmup`, `baseline`
(the clients of the warm-up have left), `ramping`, `running`, `stopping` (the load),
`after` (the clients of the load have left). Figures:

- baseline and after: the median of the second half of their stage's samples (the
  first half may still be closing sockets and writing the last progress; the median
  ignores a periodic task caught running at one scrape);
- peak: the largest sample of the load, each figure on its own;
- the RSS slope: least squares over the second half of `running` (the first half
  still fills caches and the allocator's arenas), in bytes per second.

The verdict's tolerances, and why:
- RSS after ≤ baseline RSS + `rss_margin`. CPython keeps an arena of 1 MiB while
  any object in it lives, and the C allocator keeps freed heap it cannot trim, so
  RSS does not come back to the byte; the warm-up ran the same load first, so both
  figures are taken with the allocator already grown to most of the load's size.
  The default (8 MiB) is what a server whose Python objects did come back (after
  a full collection, the same number of objects, and of allocated blocks within
  0.4 %) still kept, with room: 4.5 MiB after five minutes of the default load,
  5.9 MiB after ten. It is what the 1,700 connections of the default run (the 500,
  and 1,200 leaving and coming back) would leave behind if each kept 4.8 KiB, a
  sixth of an idle session's memory; a cycle holding every closed connection left
  28 MiB;
- RSS slope ≤ `rss_margin` / the load's duration: at that slope the run would end
  a whole margin higher than it began;
- background and event-loop tasks after ≤ baseline + `task_margin` (default 2: a
  periodic task running at the scrape; a leak of a task per session is hundreds);
- connections and live sessions after ≤ baseline, exactly.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, computed_field

#: The gauges of `/metrics` sampled, and the field of `SoakSample` each goes to.
GAUGES = {
    "readerai_background_tasks": "background_tasks",
    "readerai_event_loop_tasks": "event_loop_tasks",
    "readerai_connections": "connections",
    "readerai_live_sessions": "live_sessions",
}
LOADED_STAGES = ("ramping", "running", "stopping")


class SoakSample(BaseModel):
    """The server at one moment; gauges are `None` if `/metrics` did not answer."""

    t: float
    stage: str
    rss_bytes: int
    cpu_percent: float
    #: The server's OS threads (each may hold a C allocator arena of its own).
    threads: int = 0
    background_tasks: float | None = None
    event_loop_tasks: float | None = None
    connections: float | None = None
    live_sessions: float | None = None


class Figures(BaseModel):
    """One figure per measure over a window of samples (median, or max for the peak)."""

    samples: int
    rss_bytes: float
    cpu_percent: float
    threads: float
    background_tasks: float | None
    event_loop_tasks: float | None
    connections: float | None
    live_sessions: float | None


class Check(BaseModel):
    """One comparison of the verdict: `measured` must be at most `limit`.

    `figure` is the field of `Figures` compared, or `rss_slope`."""

    figure: str
    name: str
    measured: float
    limit: float
    rule: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return self.measured <= self.limit


class SoakResult(BaseModel):
    """The soak's samples, figures and verdict."""

    samples: list[SoakSample]
    baseline: Figures
    peak: Figures
    after: Figures
    rss_slope_bytes_per_second: float | None
    slope_window: tuple[float, float] | None
    rss_margin_bytes: int
    task_margin: int
    checks: list[Check]
    passed: bool
    #: Errors the clients met during the warm-up (the load's own are in its phase).
    warmup_errors: dict[str, int] = {}


def judge(
    samples: list[SoakSample], *, rss_margin_bytes: int, task_margin: int, loaded_seconds: float
) -> SoakResult:
    """Figures and verdict of a soak's samples (see the module docstring)."""
    baseline = _figures(_second_half(samples, "baseline"), statistics.median)
    after = _figures(_second_half(samples, "after"), statistics.median)
    peak = _figures([s for s in samples if s.stage in LOADED_STAGES], max)
    slope, window = rss_slope(_second_half(samples, "running"))
    mib = rss_margin_bytes / 2**20
    checks = [
        Check(
            figure="rss_bytes",
            name="RSS after leave (bytes)",
            measured=after.rss_bytes,
            limit=baseline.rss_bytes + rss_margin_bytes,
            rule=f"≤ baseline + {mib:g} MiB",
        )
    ]
    if slope is not None and loaded_seconds > 0:
        checks.append(
            Check(
                figure="rss_slope",
                name="RSS slope under load (bytes/s)",
                measured=slope,
                limit=rss_margin_bytes / loaded_seconds,
                rule=f"≤ {mib:g} MiB over the {loaded_seconds:g} s of load",
            )
        )
    for field, margin in (
        ("background_tasks", task_margin),
        ("event_loop_tasks", task_margin),
        ("connections", 0),
        ("live_sessions", 0),
    ):
        was, now = getattr(baseline, field), getattr(after, field)
        if was is not None and now is not None:
            checks.append(
                Check(
                    figure=field,
                    name=f"{field.replace('_', ' ')} after leave",
                    measured=now,
                    limit=was + margin,
                    rule=f"≤ baseline + {margin}" if margin else "≤ baseline",
                )
            )
    return SoakResult(
        samples=samples,
        baseline=baseline,
        peak=peak,
        after=after,
        rss_slope_bytes_per_second=slope,
        slope_window=window,
        rss_margin_bytes=rss_margin_bytes,
        task_margin=task_margin,
        checks=checks,
        passed=all(c.passed for c in checks),
    )


def rss_slope(samples: Sequence[SoakSample]) -> tuple[float | None, tuple[float, float] | None]:
    """Least-squares slope of RSS over time (bytes/s) and its window; None under 3 samples."""
    if len(samples) < 3:
        return None, None
    t = np.asarray([s.t for s in samples], dtype=np.float64)
    rss = np.asarray([s.rss_bytes for s in samples], dtype=np.float64)
    slope = float(np.polyfit(t, rss, 1)[0])
    return slope, (samples[0].t, samples[-1].t)


def _second_half(samples: list[SoakSample], stage: str) -> list[SoakSample]:
    mine = [s for s in samples if s.stage == stage]
    return mine[len(mine) // 2 :]


def _figures(window: list[SoakSample], pick: Callable[[list[float]], float]) -> Figures:
    if not window:
        raise RuntimeError("no samples in a stage of the soak: sample more often")

    def figure(field: str) -> float | None:
        values = [v for s in window if (v := getattr(s, field)) is not None]
        return float(pick(values)) if values else None

    return Figures(
        samples=len(window),
        rss_bytes=float(pick([float(s.rss_bytes) for s in window])),
        cpu_percent=float(pick([s.cpu_percent for s in window])),
        threads=float(pick([float(s.threads) for s in window])),
        background_tasks=figure("background_tasks"),
        event_loop_tasks=figure("event_loop_tasks"),
        connections=figure("connections"),
        live_sessions=figure("live_sessions"),
    )
