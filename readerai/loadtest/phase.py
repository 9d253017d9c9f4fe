"""One phase of a benchmark: K client processes load one server, and are measured.

The coordinator starts the client processes, shows the ramp as a progress bar,
tells them to run, waits out the run (sending the class broadcasts itself for
fanout), tells them to stop, and merges their reports with the server's RSS, CPU
and event-loop lag over the same window.

Invariants: every client process and the sampler belong to the phase's task group;
a client process that dies or reports `fatal` fails the phase (the others are
stopped), and its stderr is kept in `client-N.log` of the work folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import Progress

from readerai.loadtest.procstat import ProcessSampler, ProcReading, cpu_percent
from readerai.loadtest.prometheus import LagSummary, lag_between, scrape_lag
from readerai.loadtest.results import BroadcastResult, PhaseResult, ServerStats, merge_results
from readerai.loadtest.servers import Target, stop_process
from readerai.loadtest.wire import (
    Command,
    SoakMix,
    WorkerConfig,
    WorkerMode,
    WorkerReport,
    WorkerResult,
)

#: Sessions one source address can hold towards one server port, with room to spare.
SESSIONS_PER_ADDRESS = 25_000
#: Pause after the ramp so memory settles before it is read.
SETTLE_SECONDS = 1.0

#: Told the moment a phase enters a stage: "ramping", "running", "stopping".
StageHook = Callable[[str], None]


@dataclass(frozen=True)
class PhasePlan:
    """What one phase does; rates and ramp are totals over all client processes."""

    scenario: str
    mode: WorkerMode
    sessions: int
    clients: int
    ramp: float
    rate: float
    duration: float
    drain: float
    passage_id: str | None = None
    class_id: str | None = None
    max_tokens: int = 64
    #: `soak`: the kinds of events making up `rate`.
    soak: SoakMix | None = None
    #: Class broadcasts per second the coordinator sends during the run (`listen`: `rate`).
    broadcast_rate: float = 0.0


class ClientProcess:
    """One `python -m readerai.loadtest.client` and what it has reported."""

    def __init__(self, index: int, process: asyncio.subprocess.Process, log: Path) -> None:
        self.index = index
        self.process = process
        self.log = log
        self.opened = 0
        self.failed = 0
        self.ramped = asyncio.Event()
        self.finished = asyncio.Event()
        self.result: WorkerResult | None = None

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def pump(self) -> None:
        """Read reports until the process closes stdout; raise if it failed."""
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            report = WorkerReport.model_validate_json(line)
            if report.kind in ("opening", "ramped"):
                self.opened, self.failed = report.opened, report.failed
            if report.kind == "ramped":
                self.ramped.set()
            elif report.kind == "result":
                self.result = report.result
                self.finished.set()
            elif report.kind == "fatal":
                raise RuntimeError(f"client {self.index} failed: {report.message}")
        code = await self.process.wait()
        if self.result is None:
            tail = (await asyncio.to_thread(self.log.read_text, errors="replace"))[-3000:]
            raise RuntimeError(f"client {self.index} exited ({code}) without a result:\n{tail}")


def worker_configs(target: Target, plan: PhasePlan) -> list[WorkerConfig]:
    """Each client process's share of the sessions, ramp and rate."""
    spread = plan.sessions > SESSIONS_PER_ADDRESS
    share, extra = divmod(plan.sessions, plan.clients)
    return [
        WorkerConfig(
            index=i,
            mode=plan.mode,
            http_url=target.http_url,
            ws_url=target.ws_url,
            token=target.token,
            sessions=share + (1 if i < extra else 0),
            ramp_per_second=plan.ramp / plan.clients,
            rate=plan.rate / plan.clients,
            passage_id=plan.passage_id,
            class_id=plan.class_id,
            source_address=f"127.0.0.{2 + i}" if spread else None,
            drain_seconds=plan.drain,
            max_tokens=plan.max_tokens,
            replies=target.prometheus,
            soak=plan.soak.share(plan.clients) if plan.soak else None,
        )
        for i in range(plan.clients)
    ]


async def run_phase(
    target: Target,
    plan: PhasePlan,
    workdir: Path,
    progress: Progress,
    on_stage: StageHook | None = None,
) -> PhaseResult:
    """Load `target` as `plan` says; the merged measurements.

    When it returns, the client processes have closed their sessions and exited."""
    configs = worker_configs(target, plan)
    async with (
        httpx.AsyncClient(
            base_url=target.http_url,
            headers={"Authorization": f"Bearer {target.token}"} if target.token else {},
            trust_env=False,
            timeout=30.0,
        ) as http,
        _clients(configs, workdir) as clients,
        asyncio.TaskGroup() as tasks,
    ):
        for client in clients:
            tasks.create_task(client.pump())
        phase = _Phase(target, plan, http, clients, on_stage or (lambda _: None))
        result = await phase.measure(tasks, progress)
    return result


@contextlib.asynccontextmanager
async def _clients(
    configs: list[WorkerConfig], workdir: Path
) -> AsyncIterator[list[ClientProcess]]:
    clients: list[ClientProcess] = []
    try:
        for config in configs:
            log = workdir / f"client-{config.index}.log"
            stderr = await asyncio.to_thread(log.open, "ab")
            try:
                process = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "readerai.loadtest.client"),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                    limit=2**30,  # a result is one (long) line
                )
            finally:
                stderr.close()
            client = ClientProcess(config.index, process, log)
            clients.append(client)
            await client.send(config.model_dump_json())
        yield clients
    finally:
        for client in clients:
            await stop_process(client.process)


class _Phase:
    """The coordinator's side of one phase, from ramp to merged result."""

    def __init__(
        self,
        target: Target,
        plan: PhasePlan,
        http: httpx.AsyncClient,
        clients: list[ClientProcess],
        stage: StageHook,
    ) -> None:
        self.target, self.plan, self.http, self.clients = target, plan, http, clients
        self.stage = stage
        self.sampler = ProcessSampler(target.pid, self.opened) if target.pid is not None else None

    def opened(self) -> int:
        return sum(c.opened for c in self.clients)

    async def measure(self, tasks: asyncio.TaskGroup, progress: Progress) -> PhaseResult:
        plan = self.plan
        sampling = tasks.create_task(self.sampler.run()) if self.sampler else None
        before = await self._read()
        self.stage("ramping")
        ramp_started = time.monotonic()
        await self._ramp(progress)
        ramp_seconds = time.monotonic() - ramp_started
        await asyncio.sleep(SETTLE_SECONDS)
        ramped = await self._read()
        lag_before = await self._lag_buckets()
        await self._tell(Command(command="run"))
        self.stage("running")
        run_started = time.monotonic()
        broadcast_rate = plan.rate if plan.mode == "listen" else plan.broadcast_rate
        broadcasts = await self._broadcasts(broadcast_rate) if broadcast_rate > 0 else 0
        await asyncio.sleep(max(0.0, run_started + plan.duration - time.monotonic()))
        run_ended = await self._read()
        run_seconds = time.monotonic() - run_started
        lag = await self._lag_since(lag_before)
        self.stage("stopping")
        await self._tell(Command(command="stop", broadcasts=broadcasts))
        results = await self._results()
        if sampling is not None:
            sampling.cancel()
        server = self._server_stats(before, ramped, run_ended)
        return merge_results(
            target=self.target.name,
            scenario=plan.scenario,
            mode=plan.mode,
            sessions=plan.sessions,
            clients=len(self.clients),
            ramp_asked=plan.ramp,
            ramp_seconds=ramp_seconds,
            run_seconds=run_seconds,
            results=results,
            server=server,
            loop_lag=lag,
            broadcasts=_time_to_last(results, broadcasts),
        )

    async def _ramp(self, progress: Progress) -> None:
        bar = progress.add_task(
            f"{self.target.name}: opening sessions", total=max(1, self.plan.sessions)
        )
        while not all(c.ramped.is_set() for c in self.clients):
            done = sum(c.opened + c.failed for c in self.clients)
            progress.update(bar, completed=done)
            await asyncio.sleep(0.1)
        progress.update(bar, completed=self.plan.sessions)

    async def _tell(self, command: Command) -> None:
        for client in self.clients:
            await client.send(command.model_dump_json())

    async def _results(self) -> list[WorkerResult]:
        async with asyncio.timeout(self.plan.drain + 60.0):
            for client in self.clients:
                await client.finished.wait()
        return [c.result for c in self.clients if c.result is not None]

    async def _read(self) -> ProcReading | None:
        if self.sampler is None:
            return None
        return await self.sampler.read()

    async def _lag_buckets(self) -> dict[float, float] | None:
        if not self.target.prometheus:
            return None
        return await scrape_lag(self.http, self.target.http_url)

    async def _lag_since(self, before: dict[float, float] | None) -> LagSummary | None:
        after = await self._lag_buckets()
        return lag_between(before, after) if before and after else None

    async def _broadcasts(self, rate: float) -> int:
        """Broadcast to the class at `rate` per second for the run; how many were sent."""
        plan = self.plan
        count = max(1, int(plan.duration * rate))
        start = time.monotonic()
        for k in range(count):
            await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
            # The send time travels in the text: receivers measure against it.
            text = f"bench broadcast {k} {time.monotonic():.6f}"
            response = await self.http.post(
                f"/api/classes/{plan.class_id}/broadcasts", json={"text": text}
            )
            if response.status_code != 202:
                raise RuntimeError(f"broadcast refused: {response.status_code} {response.text}")
        return count

    def _server_stats(
        self, before: ProcReading | None, ramped: ProcReading | None, ended: ProcReading | None
    ) -> ServerStats | None:
        if self.sampler is None or before is None or ramped is None or ended is None:
            return None
        opened = self.opened()
        return ServerStats(
            rss_start_bytes=before.rss_bytes,
            rss_ramped_bytes=ramped.rss_bytes,
            rss_end_bytes=ended.rss_bytes,
            rss_peak_bytes=self.sampler.peak_rss(),
            rss_per_session_bytes=(ramped.rss_bytes - before.rss_bytes) / opened if opened else 0,
            cpu_percent_ramp=cpu_percent(before, ramped),
            cpu_percent_run=cpu_percent(ramped, ended),
            timeline=self.sampler.samples,
        )


def _time_to_last(results: list[WorkerResult], sent: int) -> list[BroadcastResult]:
    receivers: Counter[str] = Counter()
    latest: dict[str, float] = {}
    for result in results:
        for broadcast_id, (count, last) in result.broadcasts.items():
            receivers[broadcast_id] += count
            latest[broadcast_id] = max(latest.get(broadcast_id, 0.0), last)
    return [
        BroadcastResult(broadcast_id=b, receivers=receivers[b], time_to_last=latest[b])
        for b in sorted(latest, key=lambda b: latest[b])
    ][:sent]
