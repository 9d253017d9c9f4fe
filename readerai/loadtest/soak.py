"""`readerai bench soak`: a long run at moderate load; do memory and tasks come back?

The coordinator runs the soak's load (`soakload.py`) twice against one server: a
warm-up of `--warmup` seconds, after which the clients leave and the server settles
for `--settle` seconds (the baseline), then the soak itself for `--duration`
seconds, after which the clients leave and it settles again (the after-leave
figures). A sampler reads the server every `--sample-every` seconds throughout:
RSS and CPU from /proc, the task, connection and live-session gauges from
`/metrics`, each sample labelled with the stage it was taken in. `soakresult.judge`
turns the samples into figures and a verdict.

Invariants: the sampler is a task of the soak's task group and ends with it; each
phase's client processes have closed their sessions and exited before the settle
that follows it starts (`run_phase` returns only then).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from rich.progress import Progress

from readerai.loadtest.phase import PhasePlan, run_phase
from readerai.loadtest.procstat import ProcReading, cpu_percent, read_proc
from readerai.loadtest.prometheus import parse_gauges, scrape
from readerai.loadtest.results import PhaseResult
from readerai.loadtest.servers import Target
from readerai.loadtest.soakresult import GAUGES, SoakResult, SoakSample, judge


@dataclass(frozen=True)
class SoakPlan:
    """The soak's timing and tolerances; the load itself is the `PhasePlan`."""

    warmup: float
    settle: float
    sample_every: float
    rss_margin_bytes: int
    task_margin: int


class SoakSampler:
    """Samples the server every `interval` seconds while `run` runs (cancel to stop)."""

    def __init__(self, target: Target, pid: int, http: httpx.AsyncClient, interval: float) -> None:
        self.target, self.pid, self.http, self.interval = target, pid, http, interval
        self.stage = "starting"
        self.samples: list[SoakSample] = []
        self._started = time.monotonic()
        self._last: ProcReading | None = None

    def enter(self, stage: str) -> None:
        """Label the samples from now on with `stage`."""
        self.stage = stage

    async def sample(self) -> None:
        stage = self.stage
        reading = await asyncio.to_thread(read_proc, self.pid)
        text = await scrape(self.http, self.target.http_url)
        gauges = parse_gauges(text, tuple(GAUGES)) if text is not None else {}
        cpu = cpu_percent(self._last, reading) if self._last is not None else 0.0
        self._last = reading
        self.samples.append(
            SoakSample.model_validate(
                {
                    "t": round(reading.at - self._started, 3),
                    "stage": stage,
                    "rss_bytes": reading.rss_bytes,
                    "cpu_percent": round(cpu, 2),
                    "threads": reading.threads,
                    **{GAUGES[name]: value for name, value in gauges.items()},
                }
            )
        )

    async def run(self) -> None:
        due = time.monotonic()
        while True:
            try:
                await self.sample()
            except (OSError, ValueError, IndexError):
                return  # the process is gone
            due += self.interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))


async def run_soak(
    target: Target, plan: PhasePlan, soak: SoakPlan, workdir: Path, progress: Progress
) -> tuple[PhaseResult, SoakResult]:
    """Warm up, settle, load, settle; the load's phase result and the soak's verdict."""
    if target.pid is None:
        raise RuntimeError("the soak needs the server's pid (--pid with --url)")
    async with (
        httpx.AsyncClient(trust_env=False, timeout=30.0) as http,
        asyncio.TaskGroup() as tasks,
    ):
        sampler = SoakSampler(target, target.pid, http, soak.sample_every)
        sampling = tasks.create_task(sampler.run())
        warm = None
        try:
            if soak.warmup > 0:
                sampler.enter("warmup")
                warm = await run_phase(
                    target, replace(plan, duration=soak.warmup), workdir, progress
                )
            await _settle(sampler, "baseline", soak, progress)
            loaded = await run_phase(target, plan, workdir, progress, on_stage=sampler.enter)
            await _settle(sampler, "after", soak, progress)
        finally:
            sampling.cancel()
    result = judge(
        sampler.samples,
        rss_margin_bytes=soak.rss_margin_bytes,
        task_margin=soak.task_margin,
        loaded_seconds=plan.duration,
    )
    if warm is not None:
        result.warmup_errors = warm.errors
    return loaded, result


async def _settle(sampler: SoakSampler, stage: str, soak: SoakPlan, progress: Progress) -> None:
    """Let the server settle for `soak.settle` seconds, sampled as `stage`."""
    sampler.enter(stage)
    bar = progress.add_task(f"readerai: {stage} (no clients)", total=max(1, int(soak.settle)))
    end = time.monotonic() + soak.settle
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        progress.update(bar, completed=int(soak.settle - max(0.0, end - time.monotonic())))
    progress.update(bar, completed=max(1, int(soak.settle)))
