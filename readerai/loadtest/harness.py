"""`readerai bench`: start what is needed, run the phases, report.

A run has one main phase (ReaderAI under the scenario's load), preceded for
`stream` by a `direct` phase reading the upstream fake with the same clients, and
followed with `--baselines` by the same phase against each baseline server. Servers
run one at a time, so no phase competes with another for the machine's cores.
`soak` runs its own sequence around its phase (`soak.py`) and adds a verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from readerai.auth.principal import Role
from readerai.auth.tokens import TokenService
from readerai.loadtest.options import BenchOptions, parse_options
from readerai.loadtest.phase import PhasePlan, run_phase
from readerai.loadtest.report import Report, describe_machine, print_header, print_report
from readerai.loadtest.results import PhaseResult
from readerai.loadtest.servers import Target, baseline_server, readerai_server, upstream_server
from readerai.loadtest.soak import SoakPlan, run_soak
from readerai.loadtest.soakresult import SoakResult
from readerai.loadtest.wire import SoakMix

BASELINES = ("plain", "naive")
#: Lifetime of the admin token the benchmark mints.
TOKEN_TTL_SECONDS = 24 * 3600


def main(argv: list[str]) -> int:
    """Run `readerai bench ARGV`; the exit status (1 if any phase had errors)."""
    if argv[:1] == ["readaloud"]:  # its own rounds and options (`readaloud.py`)
        from readerai.loadtest.readaloud import main as readaloud

        return readaloud(argv[1:])
    options = parse_options(argv)
    command = shlex.join(["readerai", "bench", *argv])
    console = Console()
    machine = describe_machine()
    print_header(console, command, machine)
    workdir = Path(tempfile.mkdtemp(prefix="readerai-bench-"))
    started_at = datetime.now(UTC).isoformat()
    try:
        phases, notes, soak = asyncio.run(_run(options, workdir, Console(stderr=True)))
    except (RuntimeError, httpx.HTTPError, OSError, ExceptionGroup) as exc:
        console.print(f"[red]benchmark failed:[/red] {_describe(exc)}\nlogs kept in {workdir}")
        return 1
    report = Report.build(command, machine, started_at, options, phases, notes, soak)
    print_report(console, report)
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(report.model_dump_json(indent=1))
        console.print(f"JSON report: {options.json_path}")
    if options.plots_dir is not None:
        from readerai.loadtest.plots import write_plots

        for path in write_plots(report, options.plots_dir):
            console.print(f"plot: {path}")
    shutil.rmtree(workdir, ignore_errors=True)
    failed = any(p.error_count or p.failed for p in phases)
    if report.soak is not None:
        failed = failed or bool(report.soak.warmup_errors) or not report.soak.passed
    return 1 if failed else 0


async def _run(
    options: BenchOptions, workdir: Path, stderr: Console
) -> tuple[list[PhaseResult], list[str], SoakResult | None]:
    """The phases run (ReaderAI's first), notes, and the soak's verdict if it was one."""
    phases: list[PhaseResult] = []
    notes: list[str] = []
    soak: SoakResult | None = None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr) as progress:
        plan = _plan(options)
        async with contextlib.AsyncExitStack() as stack:
            if options.scenario == "stream":
                upstream = await stack.enter_async_context(_upstream(options, workdir))
                # The fake's own memory is not what this benchmark is about: no pid.
                direct = replace(plan, scenario="direct", mode="direct", sessions=0)
                phases.append(
                    await run_phase(replace(upstream, pid=None), direct, workdir, progress)
                )
                engine = {
                    "READERAI_ENGINE": "openai",
                    "READERAI_OPENAI_BASE_URL": f"{upstream.http_url}/v1",
                }
            else:
                engine = {}
            target = await stack.enter_async_context(_readerai(options, workdir, engine))
            if target.pid is None:
                notes.append("no --pid for the server at --url: RSS and CPU not measured")
            if options.scenario in ("fanout", "soak"):
                plan = replace(plan, class_id=await _create_class(target))
            if options.scenario == "soak":
                loaded, soak = await run_soak(target, plan, _soak(options), workdir, progress)
                phases.insert(0, loaded)
            else:
                phases.insert(0, await run_phase(target, plan, workdir, progress))
        if options.baselines:
            for kind in BASELINES:
                async with baseline_server(kind, workdir) as baseline:
                    same = replace(plan, passage_id=None)
                    phases.append(await run_phase(baseline, same, workdir, progress))
    return phases, notes, soak


def _describe(exc: BaseException) -> str:
    """The message of an error, or of each error of a group (task groups raise those)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _plan(options: BenchOptions) -> PhasePlan:
    plan = PhasePlan(
        scenario=options.scenario,
        mode=options.mode,
        sessions=options.sessions,
        clients=options.clients,
        ramp=options.ramp,
        rate=options.rate,
        duration=options.duration,
        drain=options.drain,
        passage_id=options.passage,
        max_tokens=options.tokens,
    )
    if options.scenario != "soak":
        return plan
    mix = SoakMix(
        questions=options.rate,
        progress=options.progress_rate,
        reconnects=options.reconnect_rate,
    )
    return replace(plan, rate=mix.total, soak=mix, broadcast_rate=1 / options.broadcast_every)


def _soak(options: BenchOptions) -> SoakPlan:
    return SoakPlan(
        warmup=options.warmup,
        settle=options.settle,
        sample_every=options.sample_every,
        rss_margin_bytes=int(options.rss_margin_mib * 2**20),
        task_margin=options.task_margin,
    )


@contextlib.asynccontextmanager
async def _readerai(
    options: BenchOptions, workdir: Path, engine: dict[str, str]
) -> AsyncIterator[Target]:
    """The server given by `--url`, or one started for this run; with an admin token."""
    if options.url is not None:
        secret = options.auth_secret
        token = options.token or _admin_token(secret or "")
        yield Target("readerai", options.url.rstrip("/"), options.pid, token, prometheus=True)
        return
    secret = secrets.token_urlsafe(48)
    database = options.database
    if database == "sqlite":
        database = f"sqlite+aiosqlite:///{workdir}/bench.db"
    settings = {
        "READERAI_EXTRACTIVE_TOKEN_DELAY": f"{options.token_delay:g}",
        **engine,
        **options.server_env,
    }
    async with readerai_server(workdir, secret, database, settings) as target:
        yield Target(target.name, target.http_url, target.pid, _admin_token(secret), True)


@contextlib.asynccontextmanager
async def _upstream(options: BenchOptions, workdir: Path) -> AsyncIterator[Target]:
    if options.upstream is not None:
        yield Target("upstream", options.upstream.rstrip("/").removesuffix("/v1"), None)
        return
    async with upstream_server(
        workdir, options.ttft_ms, options.tokens_per_second, options.tokens
    ) as target:
        yield target


def _admin_token(secret: str) -> str:
    tokens = TokenService.with_secret(secret)
    return tokens.mint(
        user_id="bench-admin", role=Role.ADMIN, ttl_seconds=TOKEN_TTL_SECONDS, name="bench"
    )


async def _create_class(target: Target) -> str:
    """A teacher and a class for fanout; the class id."""
    suffix = f"{int(time.time())}-{secrets.token_hex(3)}"
    teacher, class_id = f"bench-teacher-{suffix}", f"bench-class-{suffix}"
    async with httpx.AsyncClient(
        base_url=target.http_url,
        headers={"Authorization": f"Bearer {target.token}"},
        trust_env=False,
        timeout=30.0,
    ) as http:
        created = await http.post("/api/teachers", json={"name": "Bench", "userId": teacher})
        if created.status_code != 201:
            raise RuntimeError(f"could not create a teacher: {created.status_code} {created.text}")
        body = {"name": "Bench class", "id": class_id, "teacherId": teacher}
        created = await http.post("/api/classes", json=body)
        if created.status_code != 201:
            raise RuntimeError(f"could not create a class: {created.status_code} {created.text}")
    return class_id
