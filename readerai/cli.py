"""The `readerai` command: `serve`, `db upgrade`."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError
from uvicorn.supervisors.multiprocess import Multiprocess

from readerai.settings import WORKER_SETTINGS_ENV, Settings, worker_settings_json

app = typer.Typer(help="ReaderAI: a real-time AI reading tutor server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class GracefulServer(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful shutdown on SIGTERM or SIGINT.

    uvicorn re-raises the captured signal once it has shut down, which kills the
    process before the log writer thread has flushed; a clean exit keeps the logs.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


class WorkerProcesses(Multiprocess):
    """uvicorn's supervisor of worker processes, which also keeps their shared metrics
    right: a worker that has gone (died and replaced, or retired) is marked dead, so
    its gauges stop counting (`livesum`) while its counters stay in the totals."""

    def __init__(self, config: uvicorn.Config, sockets: list[Any], metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self._metrics_dir = metrics_dir

    def keep_subprocess_alive(self) -> None:
        before = self._pids()
        super().keep_subprocess_alive()
        self._mark_gone(before)

    def handle_signals(self) -> None:  # SIGHUP restarts workers, SIGTTOU retires one
        before = self._pids()
        super().handle_signals()
        self._mark_gone(before)

    def _pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.pid is not None}

    def _mark_gone(self, before: set[int]) -> None:
        from prometheus_client.multiprocess import mark_process_dead

        for pid in before - self._pids():
            mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]


def load_settings(settings_file: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment, a `.env`-style file, and command-line overrides."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        if settings_file is not None:
            if not settings_file.is_file():
                raise typer.BadParameter(f"no settings file at {settings_file}")
            return Settings(_env_file=settings_file, **given)
        return Settings(**given)
    except ValidationError as exc:
        typer.echo(f"readerai: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (more than 1 needs READERAI_REDIS_URL)."),
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="A .env-style file of READERAI_* settings.")
    ] = None,
) -> None:
    """Serve the API, WebSockets and the student page."""
    from readerai.app import create_app
    from readerai.logs import configure_logging

    # CTranslate2 (Whisper) runs on OpenMP, whose idle threads spin by default and
    # take the cores from the language model; set before the library loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = load_settings(
        settings_file, host=host, port=port, log_level=log_level, workers=workers
    )
    if settings.workers > 1:
        _serve_workers(settings)
        return
    listener = configure_logging(settings.log_level, settings.log_format)
    config = uvicorn.Config(create_app(settings), **_uvicorn_options(settings))
    server = GracefulServer(config)
    try:
        server.run()
    finally:
        listener.stop()
    if not server.started:
        sys.exit(1)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    import functools

    from readerai.api.bounded_protocols import BoundedHttpProtocol, BoundedWebSocketProtocol

    return {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        "log_config": None,
        # httptools, with a deadline and a size limit on a request head (slowloris):
        # uvicorn has neither before a connection's first response.
        "http": functools.partial(
            BoundedHttpProtocol, head_timeout=settings.handshake_timeout_seconds
        ),
        # The sans-I/O implementation keeps a connection to two timers and no tasks of
        # its own (about 8 KB less per idle connection than the legacy one), and
        # uvicorn 0.54's version of it sends keepalive pings (`ws_ping_*`). Ours bounds
        # what waits for a client, parses a flood a slice at a time, and aborts a
        # closed connection whose peer does not read (bounded_protocols.py).
        "ws": functools.partial(
            BoundedWebSocketProtocol, send_buffer=settings.ws_send_buffer_bytes
        ),
        "ws_max_size": settings.max_frame_bytes,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_seconds) + 5,
    }


def _serve_workers(settings: Settings) -> None:
    """Run `settings.workers` uvicorn worker processes on one socket.

    Each worker is a node of its own (own live sessions, own bus node id), so they
    must share a bus: with the in-process one, a student's reconnect could land on
    another worker that has never heard of the reply in flight.
    """
    from readerai.bus.factory import build_bus
    from readerai.metrics import METRICS_DIR_ENV
    from readerai.store.migrate import upgrade_database_sync

    if not build_bus(settings.redis_url, prefix=settings.redis_prefix).shared:
        typer.echo(
            f"readerai: --workers {settings.workers} needs a shared bus: set READERAI_REDIS_URL "
            "to a redis:// URL. With the in-process bus each worker would hold its own "
            "sessions and replies, and students would silently split between them.",
            err=True,
        )
        raise typer.Exit(2)
    # Migrate once here, not in N workers at the same instant.
    upgrade_database_sync(settings.database_url)
    os.environ[WORKER_SETTINGS_ENV] = worker_settings_json(settings)
    # The workers' metrics live in files of a folder of our own, fresh for this run
    # (never one given in the environment: old files would count), removed at exit.
    with tempfile.TemporaryDirectory(prefix="readerai-metrics-") as metrics_dir:
        os.environ[METRICS_DIR_ENV] = metrics_dir
        config = uvicorn.Config(
            "readerai.app:create_worker_app",
            factory=True,
            workers=settings.workers,
            **_uvicorn_options(settings),
        )
        with contextlib.suppress(KeyboardInterrupt):
            WorkerProcesses(config, [config.bind_socket()], metrics_dir).run()


@app.command()
def token(
    role: Annotated[str, typer.Option(help="student, teacher or admin.")],
    user: Annotated[str, typer.Option(help="The user id (the token's subject).")],
    class_id: Annotated[str | None, typer.Option("--class", help="A student's class.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    ttl: Annotated[
        float | None, typer.Option(help="Lifetime in seconds (default READERAI_TOKEN_TTL_SECONDS).")
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="A .env-style file of READERAI_* settings.")
    ] = None,
) -> None:
    """Print a bearer token (for scripts, tests and operators)."""
    from readerai.auth.principal import Role
    from readerai.auth.tokens import TokenService

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(f"role must be one of {', '.join(r.value for r in Role)}")
    if not 0 < len(user) <= 64:
        raise typer.BadParameter("user must be 1 to 64 characters")
    settings = load_settings(settings_file)
    tokens = TokenService.from_settings(settings)
    typer.echo(
        tokens.mint(
            user_id=user,
            role=Role(role),
            ttl_seconds=ttl or settings.token_ttl_seconds,
            name=name or user,
            class_id=class_id,
        )
    )


@db_app.command("upgrade")
def db_upgrade(
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="A .env-style file of READERAI_* settings.")
    ] = None,
) -> None:
    """Apply database migrations up to the newest."""
    from readerai.store.migrate import upgrade_database_sync

    settings = load_settings(settings_file)
    upgrade_database_sync(settings.database_url)
    typer.echo("database is up to date")


passages_app = typer.Typer(help="Passages.", no_args_is_help=True)
app.add_typer(passages_app, name="passages")


@passages_app.command("import")
def passages_import(
    folder: Annotated[
        Path,
        typer.Argument(
            help="A folder of .md and .txt files.", metavar="DIR", file_okay=False, exists=True
        ),
    ],
    level: Annotated[
        str | None, typer.Option(help="The reading level of every passage, e.g. 'Grade 2'.")
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="A .env-style file of READERAI_* settings.")
    ] = None,
) -> None:
    """Import every .md and .txt file of DIR as a passage, and prepare each one.

    Preparing splits it into sentences, indexes it and records its narration, here
    in this process. Exits 1 if any file failed (the reasons are printed).
    """
    import asyncio

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from readerai.jobs.imports import import_passages, read_passage_files
    from readerai.logs import configure_logging
    from readerai.store import JobRecord

    settings = load_settings(settings_file)
    files = read_passage_files(folder)
    if not files:
        typer.echo(f"no .md or .txt files in {folder}")
        return
    listener = configure_logging("warning", settings.log_format)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    try:
        with Progress(*columns) as progress:
            bars = [progress.add_task(file.name, total=1.0) for file in files]

            def watch(index: int, job: JobRecord) -> None:
                name = files[index].name
                label = f"{name} [red](failed)[/red]" if job.status == "failed" else name
                progress.update(bars[index], completed=job.progress, description=label)

            jobs = asyncio.run(import_passages(settings, files, level=level, watch=watch))
    finally:
        listener.stop()
    failed = [
        (file, job) for file, job in zip(files, jobs, strict=True) if job.status != "completed"
    ]
    typer.echo(f"imported {len(files) - len(failed)} of {len(files)} passages")
    for file, job in failed:
        typer.echo(f"failed: {file.name}: {job.detail or job.status}")
    if failed:
        raise typer.Exit(1)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Load-test a server (idle, progress, questions, stream, bargein, fanout, soak); see --help."""
    from readerai.loadtest.harness import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


def main() -> None:
    app()
