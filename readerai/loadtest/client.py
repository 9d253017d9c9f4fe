"""A client process of the benchmark: `python -m readerai.loadtest.client`.

Reads a `WorkerConfig` and then commands on stdin, and reports on stdout (see
`readerai.loadtest.wire`). It opens its share of the sessions at its share of the
ramp rate, runs its mode's load on an open-loop schedule until told to stop, drains
what is still awaited, reports, closes its sessions and exits.

Invariants: every session's reader task belongs to the process's task group and
ends when its connection closes; a reader never raises (a dropped connection is
counted as an error unless the process is closing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import AsyncIterator

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException

from readerai.loadtest.loads import (
    DirectLoad,
    IdleLoad,
    ListenLoad,
    Load,
    ProgressLoad,
    QuestionLoad,
    Tally,
)
from readerai.loadtest.sessions import BenchSession, OpenFailed, SessionOpener
from readerai.loadtest.soakload import SoakLoad
from readerai.loadtest.wire import Command, SoakMix, WorkerConfig, WorkerReport, WorkerResult

#: How often opening progress is reported while ramping.
REPORT_SECONDS = 0.25
#: Close handshakes running at once when the process ends.
CLOSING_CONCURRENCY = 500


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def emit(report: WorkerReport) -> None:
    """One report line on stdout (a pipe the coordinator drains continuously)."""
    sys.stdout.write(report.model_dump_json() + "\n")
    sys.stdout.flush()


class Worker:
    """One client process's sessions, load and measurements."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.tally = Tally()
        self.sessions: list[BenchSession] = []
        self.failed = 0
        self.closing = False
        self.send_lag_max = 0.0

    async def run(self, commands: asyncio.StreamReader) -> None:
        config = self.config
        async with self._http() as http, asyncio.TaskGroup() as readers:
            opener = self._opener(http)
            load = self._load(http, readers, opener)
            await self._ramp(opener, load, readers)
            self._report("ramped")
            await _expect(commands, "run")
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as driving:
                driving.create_task(self._drive(load, stopping))
                stop = await _expect(commands, "stop")
                stopping.set()
            if isinstance(load, ListenLoad):
                load.expected = stop.broadcasts
            await self._drain(load)
            emit(WorkerReport(kind="result", index=config.index, result=self._result(load)))
            await self._close_all()

    def _http(self) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient | None]:
        config = self.config
        if config.token is None and config.mode != "direct":
            return contextlib.nullcontext(None)
        transport = httpx.AsyncHTTPTransport(
            local_address=config.source_address,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        base = config.http_url.rstrip("/")
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        return httpx.AsyncClient(
            base_url=f"{base}/v1" if config.mode == "direct" else base,
            headers=headers,
            transport=transport,
            timeout=60.0,
            trust_env=False,
        )

    def _opener(self, http: httpx.AsyncClient | None) -> SessionOpener:
        config = self.config
        return SessionOpener(
            http if config.token else None,
            config.ws_url,
            config.token,
            passage_id=config.passage_id,
            class_id=config.class_id,
            source_address=config.source_address,
            create_concurrency=config.create_concurrency,
        )

    def _load(
        self, http: httpx.AsyncClient | None, tasks: asyncio.TaskGroup, opener: SessionOpener
    ) -> Load:
        mode, tally, sessions = self.config.mode, self.tally, self.sessions
        if mode == "soak":

            async def rejoin(session: BenchSession, fresh: bool) -> None:
                # `soak` is bound below, before the load ever fires.
                await self._rejoin(opener, soak, tasks, session, fresh=fresh)

            soak = SoakLoad(
                tally,
                sessions,
                self.config.soak or SoakMix(),
                self.config.passage_id or "bench",
                replies=self.config.replies,
                rejoin=rejoin,
                tasks=tasks,
            )
            return soak
        if mode == "progress":
            return ProgressLoad(tally, sessions, self.config.passage_id or "bench")
        if mode in ("questions", "bargein"):
            return QuestionLoad(
                tally, sessions, replies=self.config.replies, cancel=mode == "bargein"
            )
        if mode == "listen":
            return ListenLoad(tally, sessions)
        if mode == "direct":
            assert http is not None
            return DirectLoad(tally, http, self.config.max_tokens, tasks)
        return IdleLoad(tally)

    async def _ramp(self, opener: SessionOpener, load: Load, readers: asyncio.TaskGroup) -> None:
        """Open the sessions at the ramp rate, at most `connect_concurrency` at once."""
        config = self.config
        opening = asyncio.Semaphore(config.connect_concurrency)
        async with asyncio.TaskGroup() as ramp:
            reporter = ramp.create_task(self._report_opening())
            start = time.perf_counter()
            async with asyncio.TaskGroup() as starts:
                for i in range(config.sessions):
                    await _sleep_until(start + i / config.ramp_per_second)
                    await opening.acquire()
                    starts.create_task(self._open_one(opener, load, readers, opening))
            reporter.cancel()

    async def _open_one(
        self,
        opener: SessionOpener,
        load: Load,
        readers: asyncio.TaskGroup,
        opening: asyncio.Semaphore,
    ) -> None:
        try:
            opened = await self._try_open(opener)
        finally:
            opening.release()
        if opened is not None:
            session, total, handshake = opened
            self.sessions.append(session)
            self.tally.samples["open"].append(total)
            self.tally.samples["connect"].append(handshake)
            readers.create_task(self._read(session, load))

    async def _try_open(
        self, opener: SessionOpener, session_id: str | None = None
    ) -> tuple[BenchSession, float, float] | None:
        """`opener.open(session_id)`, or None with the failure counted."""
        try:
            return await opener.open(session_id)
        except OpenFailed as exc:
            self._open_failed(exc.kind)
        except (OSError, TimeoutError, WebSocketException, httpx.HTTPError, ValueError) as exc:
            self._open_failed(type(exc).__name__)
        return None

    async def _rejoin(
        self,
        opener: SessionOpener,
        load: Load,
        readers: asyncio.TaskGroup,
        session: BenchSession,
        *,
        fresh: bool,
    ) -> None:
        """Close `session` (already out of `sessions`), then open it again, or a new one."""
        await session.ws.close()
        self.tally.counts["left"] += 1
        if self.closing:
            return
        opened = await self._try_open(opener, None if fresh else session.id)
        if opened is None:
            return
        again, total, _ = opened
        if self.closing:  # `_close_all` has already gone through `sessions`
            await again.ws.close()
            return
        self.tally.counts["came_back_new" if fresh else "came_back"] += 1
        self.tally.samples["reopen"].append(total)
        self.sessions.append(again)
        readers.create_task(self._read(again, load))

    def _open_failed(self, kind: str) -> None:
        self.failed += 1
        self.tally.errors[f"open:{kind}"] += 1

    async def _read(self, session: BenchSession, load: Load) -> None:
        try:
            async for frame in session.ws:
                if isinstance(frame, str):
                    await load.on_event(session, json.loads(frame))
        except ConnectionClosed:
            pass
        if not (self.closing or session.leaving):
            code = session.ws.close_code
            self.tally.errors[f"closed:{code}"] += 1

    async def _report_opening(self) -> None:
        while True:
            self._report("opening")
            await asyncio.sleep(REPORT_SECONDS)

    def _report(self, kind: str) -> None:
        emit(
            WorkerReport.model_validate(
                {
                    "kind": kind,
                    "index": self.config.index,
                    "opened": len(self.sessions),
                    "failed": self.failed,
                }
            )
        )

    async def _drive(self, load: Load, stopping: asyncio.Event) -> None:
        """Fire events at `rate` per second until `stopping`, on a fixed schedule."""
        rate = self.config.rate
        if rate <= 0 or (not self.sessions and self.config.mode != "direct"):
            return
        start = time.perf_counter()
        index = 0
        while not stopping.is_set():
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                continue
            self.send_lag_max = max(self.send_lag_max, -delay)
            try:
                await load.fire(index)
            except ConnectionClosed:
                self.tally.errors["send_on_closed"] += 1
            index += 1

    async def _drain(self, load: Load) -> None:
        deadline = time.perf_counter() + self.config.drain_seconds
        # Polled: `outstanding()` walks every session, too dear to run on each event.
        while load.outstanding() and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        left = load.outstanding()
        if left:
            self.tally.errors["unanswered_at_end"] += left

    def _result(self, load: Load) -> WorkerResult:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return WorkerResult(
            opened=len(self.sessions),
            failed=self.failed,
            samples=dict(self.tally.samples),
            counts=dict(self.tally.counts),
            errors=dict(self.tally.errors),
            broadcasts=self.tally.broadcasts,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            send_lag_max=self.send_lag_max,
        )

    async def _close_all(self) -> None:
        self.closing = True
        gate = asyncio.Semaphore(CLOSING_CONCURRENCY)

        async def close(session: BenchSession) -> None:
            async with gate:
                await session.ws.close()

        async with asyncio.TaskGroup() as closing:
            for session in self.sessions:
                closing.create_task(close(session))


async def _sleep_until(when: float) -> None:
    delay = when - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _expect(commands: asyncio.StreamReader, name: str) -> Command:
    line = await commands.readline()
    if not line:
        raise SystemExit("the coordinator went away")
    command = Command.model_validate_json(line)
    if command.command != name:
        raise SystemExit(f"expected {name!r}, got {command.command!r}")
    return command


@contextlib.asynccontextmanager
async def _stdin() -> AsyncIterator[asyncio.StreamReader]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        yield reader
    finally:
        transport.close()


async def _main() -> None:
    async with _stdin() as commands:
        config = WorkerConfig.model_validate_json(await commands.readline())
        try:
            await Worker(config).run(commands)
        except Exception as exc:
            emit(WorkerReport(kind="fatal", index=config.index, message=repr(exc)))
            raise


def main() -> None:
    """Entry point: the config is the first line of stdin."""
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main())
    else:
        uvloop.run(_main())


if __name__ == "__main__":
    main()
