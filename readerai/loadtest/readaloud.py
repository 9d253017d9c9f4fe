"""`readerai bench readaloud`: how many students can read aloud at once, and how well
the server follows them.

It starts a ReaderAI server (whisper speech-to-text, as shipped), adds the passage
of `readings`, and synthesises readings of it with the bundled Piper voice: a clean
one and three with known edits, each with when every word ends. Then rounds of
K = 1, 2, 3, … readers: K sessions each stream one reading in real time (20 ms
frames paced by the clock, starts spread over one recognition step), in read-aloud
mode, then end the reading and await its `READING_RESULT`. Per round
(`readaloudresult`): lag from a word's end to the `READING_PROGRESS` reaching it,
miscues against the edits, server CPU per reader (/proc), event-loop lag p99
(/metrics). Rounds stop at the first K that does not hold (`Limits`) or at
`--max-readers`; the report names the largest K that held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel
from rich.console import Console
from websockets.asyncio.client import ClientConnection

from readerai.loadtest.procstat import read_proc
from readerai.loadtest.prometheus import lag_between, scrape_lag
from readerai.loadtest.readaloudresult import (
    Limits,
    MiscueScore,
    ReaderTrace,
    Round,
    describe,
    figures,
)
from readerai.loadtest.readings import (
    PASSAGE,
    Reading,
    Script,
    insert,
    load_voice,
    omit,
    repeat,
    speak,
    swap,
)
from readerai.loadtest.report import Machine, describe_machine, print_header
from readerai.loadtest.servers import Target, readerai_server
from readerai.loadtest.sessions import SessionOpener
from readerai.readaloud.hearing import WindowPlan

#: The synthesised set: a clean reading and one edit of each kind in the others
#: (the read-aloud tests' set).
SCRIPTS = (
    Script("clean"),
    Script("drops", (omit(3), swap(9, "snow"), repeat(21), insert(36, "some"))),
    Script("extras", (insert(4, "little"), repeat(12), omit(18), swap(31, "father"))),
    Script("stops", (swap(1, "saw"), insert(14, "tiny"), omit(27), repeat(40)), last_word=45),
)
FRAME_SECONDS = 0.02
FRAME_BYTES = int(16_000 * FRAME_SECONDS) * 2
#: Pause between rounds, for the server to settle.
REST_SECONDS = 2.0


@dataclass(frozen=True)
class ReadAloudOptions:
    max_readers: int = 6
    words: int | None = None
    keep_going: bool = False
    settle: float = 8.0
    result_wait: float = 15.0
    limits: Limits = field(default_factory=Limits)
    json_path: Path | None = None
    server_env: dict[str, str] = field(default_factory=dict)


class ReadAloudReport(BaseModel):
    command: str
    machine: Machine
    started_at: str
    load_average_before: tuple[float, float, float]
    load_average_after: tuple[float, float, float]
    options: dict[str, Any]
    window_plan: dict[str, float | None]
    rounds: list[Round]
    largest_k_holding: int | None
    miscues_all_rounds: MiscueScore


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="readerai bench readaloud", description=__doc__)
    p.add_argument("--max-readers", type=int, default=6, help="largest K tried (default 6)")
    p.add_argument(
        "--words", type=int, help="read only the first WORDS words of each script (a quick run)"
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="run every K up to --max-readers, past the first that does not hold",
    )
    p.add_argument("--settle", type=float, default=8.0, help="seconds to await the last word")
    p.add_argument("--result-wait", type=float, default=15.0, help="seconds to await results")
    p.add_argument("--max-loop-lag-ms", type=float, default=20.0, help="p99 limit (20 ms)")
    p.add_argument("--max-word-lag", type=float, default=4.0, help="word lag p95 limit (4 s)")
    p.add_argument("--json", type=Path, dest="json_path", help="write the report here")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    return p


def parse(argv: list[str]) -> ReadAloudOptions:
    p = parser()
    args = p.parse_args(argv)
    if args.max_readers < 1:
        p.error("--max-readers must be at least 1")
    if args.words is not None and args.words < 8:
        p.error("--words must be at least 8")
    env: dict[str, str] = {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--server-env wants KEY=VALUE, got {item!r}")
        env[key] = value
    limits = Limits(loop_lag_p99=args.max_loop_lag_ms / 1000, word_lag_p95=args.max_word_lag)
    return ReadAloudOptions(
        max_readers=args.max_readers,
        words=args.words,
        keep_going=args.keep_going,
        settle=args.settle,
        result_wait=args.result_wait,
        limits=limits,
        json_path=args.json_path,
        server_env=env,
    )


def scripts(words: int | None) -> list[Script]:
    """The synthesised set, or its first `words` words (with the edits made in them)."""
    if words is None:
        return list(SCRIPTS)
    return [
        replace(
            script,
            edits=tuple(e for e in script.edits if e.word < words - 1),
            last_word=min(script.last_word, words - 1),
        )
        for script in SCRIPTS
    ]


def main(argv: list[str]) -> int:
    """Run `readerai bench readaloud ARGV`; 1 if it failed or a reader got an `ERROR`."""
    options = parse(argv)
    command = shlex.join(["readerai", "bench", "readaloud", *argv])
    console = Console()
    machine = describe_machine()
    print_header(console, command, machine)
    load_before = os.getloadavg()
    console.print(f"load average before: {load_before}; synthesising the readings …")
    voice = load_voice(timed=True)
    readings = [speak(script, voice, timed=True) for script in scripts(options.words)]
    workdir = Path(tempfile.mkdtemp(prefix="readerai-bench-"))
    started_at = datetime.now(UTC).isoformat()
    try:
        rounds = asyncio.run(_run(options, readings, workdir, console))
    except (RuntimeError, httpx.HTTPError, OSError, ExceptionGroup) as exc:
        console.print(f"[red]benchmark failed:[/red] {exc!r}\nlogs kept in {workdir}")
        return 1
    # The largest K such that it and every smaller K held.
    holding = [r.readers for r in itertools.takewhile(lambda r: r.holds, rounds)]
    report = ReadAloudReport(
        command=command,
        machine=machine,
        started_at=started_at,
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        options={**asdict(options), "json_path": str(options.json_path)},
        window_plan=asdict(WindowPlan()),
        rounds=rounds,
        largest_k_holding=max(holding, default=None),
        miscues_all_rounds=_pooled(rounds),
    )
    m = report.miscues_all_rounds
    console.print(
        f"largest K holding: {report.largest_k_holding}; miscues over all rounds: "
        f"precision {m.precision}, recall {m.recall} ({m.readings} readings); "
        f"load average after: {report.load_average_after}"
    )
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(report.model_dump_json(indent=1))
        console.print(f"JSON report: {options.json_path}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(r.errors for r in rounds) else 0


def _pooled(rounds: list[Round]) -> MiscueScore:
    scores = [r.miscues for r in rounds if r.miscues.readings]
    hits = sum(s.true_positives for s in scores)
    reported = sum(s.reported for s in scores)
    edits = sum(s.edits for s in scores)
    return MiscueScore(
        readings=sum(s.readings for s in scores),
        true_positives=hits,
        reported=reported,
        edits=edits,
        precision=hits / reported if reported else None,
        recall=hits / edits if edits else None,
        wcpm_error_max=max((s.wcpm_error_max or 0.0 for s in scores), default=None),
    )


async def _run(
    options: ReadAloudOptions, readings: list[Reading], workdir: Path, console: Console
) -> list[Round]:
    secret = secrets.token_urlsafe(48)
    database = f"sqlite+aiosqlite:///{workdir}/bench.db"
    settings = {"READERAI_STT": "whisper", **options.server_env}
    rounds: list[Round] = []
    async with readerai_server(workdir, secret, database, settings) as started:
        target = Target(started.name, started.http_url, started.pid, _admin_token(secret), True)
        async with _http(target) as http:
            passage_id = await _add_passage(http)
            served = 0  # readings handed out so far: each round goes on round-robin
            for readers in range(1, options.max_readers + 1):
                mine = [readings[(served + j) % len(readings)] for j in range(readers)]
                served += readers
                result = await _round(target, http, passage_id, mine, options)
                rounds.append(result)
                console.print(describe(result))
                if not (result.holds or options.keep_going):
                    break
                await asyncio.sleep(REST_SECONDS)
    return rounds


def _admin_token(secret: str) -> str:
    from readerai.auth.principal import Role
    from readerai.auth.tokens import TokenService
    from readerai.loadtest.harness import TOKEN_TTL_SECONDS

    return TokenService.with_secret(secret).mint(
        user_id="bench-admin", role=Role.ADMIN, ttl_seconds=TOKEN_TTL_SECONDS, name="bench"
    )


@contextlib.asynccontextmanager
async def _http(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=target.http_url,
        headers={"Authorization": f"Bearer {target.token}"},
        trust_env=False,
        timeout=30.0,
    ) as http:
        yield http


async def _add_passage(http: httpx.AsyncClient) -> str:
    """The passage read, added as a teacher would (and prepared: narrated too)."""
    created = await http.post("/api/passages", json={"title": "The Puppy", "text": PASSAGE})
    if created.status_code != 202:
        raise RuntimeError(f"could not add the passage: {created.status_code} {created.text}")
    job_id, passage_id = created.json()["jobId"], created.json()["passageId"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        if job["status"] == "completed":
            return str(passage_id)
        if job["status"] == "failed":
            raise RuntimeError(f"preparing the passage failed: {job}")
        await asyncio.sleep(0.5)
    raise RuntimeError("the passage was not prepared within 300 s")


async def _round(
    target: Target,
    http: httpx.AsyncClient,
    passage_id: str,
    readings: list[Reading],
    options: ReadAloudOptions,
) -> Round:
    assert target.token is not None and target.pid is not None
    opener = SessionOpener(
        http,
        target.ws_url,
        target.token,
        passage_id=None,
        class_id=None,
        source_address=None,
        create_concurrency=4,
    )
    sessions = [(await opener.open())[0] for _ in readings]
    lag_before = await scrape_lag(http, target.http_url)
    cpu_before = await asyncio.to_thread(read_proc, target.pid)
    spread = WindowPlan().step / len(readings)  # starts spread over one step
    first = time.monotonic() + 0.5
    traces = [ReaderTrace(reading) for reading in readings]
    async with asyncio.TaskGroup() as group:
        for j, (session, trace) in enumerate(zip(sessions, traces, strict=True)):
            group.create_task(_read(session.ws, passage_id, trace, first + j * spread, options))
    cpu_after = await asyncio.to_thread(read_proc, target.pid)
    lag_after = await scrape_lag(http, target.http_url)
    lag = lag_between(lag_before, lag_after) if lag_before and lag_after else None
    return figures(
        traces,
        cpu_after.cpu_seconds - cpu_before.cpu_seconds,
        None if lag is None else lag.p99,
        0 if lag is None else lag.probes,
        options.limits,
    )


async def _read(
    ws: ClientConnection,
    passage_id: str,
    trace: ReaderTrace,
    start: float,
    options: ReadAloudOptions,
) -> None:
    """One student: read-aloud mode, the reading in real time, then its result."""
    last_word = trace.reading.script.last_word
    reached_last, resulted = asyncio.Event(), asyncio.Event()

    async def receive() -> None:
        async for frame in ws:
            if not isinstance(frame, str):
                continue
            event = json.loads(frame)
            kind, payload = event.get("type"), event.get("payload", {})
            if kind == "READING_PROGRESS":
                trace.progress.append((time.monotonic() - start, int(payload["wordIndex"])))
                if payload["wordIndex"] >= last_word:
                    reached_last.set()
            elif kind == "READING_RESULT":
                trace.result = payload
                resulted.set()
            elif kind == "ERROR":
                trace.errors.append(f"{payload.get('code')}: {payload.get('message')}")

    pcm = trace.reading.pcm
    async with asyncio.TaskGroup() as group:
        receiving = group.create_task(receive())
        await ws.send(json.dumps({"type": "SESSION_UPDATE", "payload": _mode(passage_id)}))
        for i in range(0, len(pcm), FRAME_BYTES):
            due = start + i // FRAME_BYTES * FRAME_SECONDS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            trace.send_lag_max = max(trace.send_lag_max, time.monotonic() - due)
            await ws.send(pcm[i : i + FRAME_BYTES])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reached_last.wait(), options.settle)
        end = {"type": "SESSION_UPDATE", "payload": {"mode": "conversation"}}
        await ws.send(json.dumps(end))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resulted.wait(), options.result_wait)
        receiving.cancel()
    await ws.close()


def _mode(passage_id: str) -> dict[str, str]:
    return {"mode": "read_aloud", "passageId": passage_id}
