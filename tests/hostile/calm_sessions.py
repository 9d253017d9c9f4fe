"""Well-behaved sessions in a process of their own: `python -m tests.hostile.calm_sessions`.

The flood test's yardstick. It reads a `CalmConfig` line on stdin, opens that many
sessions the way the benchmark does (`readerai.loadtest.sessions`), and reports
`{"kind": "ready"}`. Then, for each `Phase` line, its sessions ask questions on an
open-loop schedule (`readerai.loadtest.loads.QuestionLoad`: round robin, `rate` per
second in all, whether or not earlier ones were answered) for `seconds`, wait for
the answers still due, and report the phase's acknowledgement latencies. End of
stdin closes the sessions and ends the process.

It runs apart from the test process so the hostile peers' work there cannot slow
the clients that measure. `CalmProcess` is the test's side of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import anyio
import httpx
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed

from readerai.loadtest.client import raise_fd_limit
from readerai.loadtest.loads import QuestionLoad, Tally
from readerai.loadtest.sessions import BenchSession, SessionOpener
from tests.fixtures_server import ROOT, ServerProcess, mint_token

#: Sessions being opened at once.
OPENING = 64
#: Longest wait, after a phase, for the answers still due.
DRAIN_SECONDS = 10.0


class CalmConfig(BaseModel):
    http_url: str
    ws_url: str
    token: str
    sessions: int
    rate: float
    passage_id: str


class Phase(BaseModel):
    name: str
    seconds: float


class CalmSessions:
    """The sessions, and the load of the phase running (a fresh tally per phase)."""

    def __init__(self, config: CalmConfig) -> None:
        self.config = config
        self.sessions: list[BenchSession] = []
        self.load = QuestionLoad(Tally(), self.sessions, replies=True)
        self.open_failures: list[str] = []
        #: Connections the server closed while they should have stayed open.
        self.dropped: list[int | None] = []
        self.closing = False

    async def open(self, http: httpx.AsyncClient, readers: asyncio.TaskGroup) -> None:
        c = self.config
        opener = SessionOpener(
            http,
            c.ws_url,
            c.token,
            passage_id=c.passage_id,
            class_id=None,
            source_address=None,
            create_concurrency=16,
        )
        gate = asyncio.Semaphore(OPENING)

        async def one() -> None:
            async with gate:
                try:
                    session, _, _ = await opener.open()
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    self.open_failures.append(repr(exc))
                    return
            self.sessions.append(session)
            readers.create_task(self.read(session))

        async with asyncio.TaskGroup() as opening:
            for _ in range(c.sessions):
                opening.create_task(one())

    async def read(self, session: BenchSession) -> None:
        try:
            async for frame in session.ws:
                if isinstance(frame, str):
                    await self.load.on_event(session, json.loads(frame))
        except ConnectionClosed:
            pass
        if not self.closing:
            self.dropped.append(session.ws.close_code)

    async def run(self, phase: Phase) -> dict[str, Any]:
        """Ask questions for `phase.seconds`, wait for their answers, report."""
        self.load = load = QuestionLoad(Tally(), self.sessions, replies=True)
        rate, started = self.config.rate, time.perf_counter()
        index, lag_max = 0, 0.0
        while (due := started + index / rate) < started + phase.seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lag_max = max(lag_max, -delay)
            with contextlib.suppress(ConnectionClosed):
                await load.fire(index)
            index += 1
        deadline = time.perf_counter() + DRAIN_SECONDS
        while load.outstanding() and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        tally = load.tally
        return {
            "kind": "phase",
            "name": phase.name,
            "ack": tally.samples["ack"],
            "asked": index,
            "unanswered": load.outstanding(),
            "errors": dict(tally.errors),
            "dropped": list(self.dropped),
            "send_lag_max": lag_max,
        }

    async def close(self) -> None:
        self.closing = True
        async with asyncio.TaskGroup() as closing:
            for session in self.sessions:
                closing.create_task(session.ws.close())


class CalmProcess:
    """The test's side of the calm sessions' process, line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, server: ServerProcess, sessions: int, rate: float, passage_id: str
    ) -> CalmProcess:
        """Start the process and wait until its `sessions` are open."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.hostile.calm_sessions",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        calm = cls(process)
        config = CalmConfig(
            http_url=server.base_url,
            ws_url=server.ws_url,
            token=mint_token(),
            sessions=sessions,
            rate=rate,
            passage_id=passage_id,
        )
        await calm._send(config.model_dump_json())
        ready = await calm._receive(within=90)
        assert ready["opened"] == sessions, ready
        return calm

    async def phase(self, name: str, seconds: float) -> list[float]:
        """Run a phase; its acknowledgement latencies (every question was answered)."""
        await self._send(Phase(name=name, seconds=seconds).model_dump_json())
        result = await self._receive(within=seconds + DRAIN_SECONDS + 20)
        assert result["unanswered"] == 0 and not result["errors"], result
        assert not result["dropped"], f"calm sessions were closed: {result['dropped']}"
        acks: list[float] = result["ack"]
        return acks

    async def stop(self) -> None:
        """Close the sessions and end the process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        with anyio.move_on_after(20):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def _receive(self, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        with anyio.fail_after(within):
            line = await self.process.stdout.readline()
        assert line, "the calm sessions' process ended"
        result: dict[str, Any] = json.loads(line)
        return result


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    config = CalmConfig.model_validate_json(await stdin.readline())
    calm = CalmSessions(config)
    headers = {"Authorization": f"Bearer {config.token}"}
    async with (
        httpx.AsyncClient(base_url=config.http_url, headers=headers, trust_env=False) as http,
        asyncio.TaskGroup() as readers,
    ):
        await calm.open(http, readers)
        emit({"kind": "ready", "opened": len(calm.sessions), "failures": calm.open_failures[:5]})
        while line := await stdin.readline():
            emit(await calm.run(Phase.model_validate_json(line)))
        await calm.close()


if __name__ == "__main__":
    raise_fd_limit()
    import uvloop

    uvloop.run(main())
