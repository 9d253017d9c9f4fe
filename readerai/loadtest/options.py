"""`readerai bench` options: the scenarios, their defaults, and the command line."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast, get_args

from readerai.loadtest.wire import WorkerMode

Scenario = Literal["idle", "progress", "questions", "stream", "bargein", "fanout", "soak"]
SCENARIOS: tuple[Scenario, ...] = get_args(Scenario)

#: What the client processes do in each scenario.
MODES: dict[Scenario, WorkerMode] = {
    "idle": "idle",
    "progress": "progress",
    "questions": "questions",
    "stream": "questions",
    "bargein": "bargein",
    "fanout": "listen",
    "soak": "soak",
}
#: Default `--rate` per session (fanout: broadcasts per second, whatever the sessions).
RATE_PER_SESSION: dict[Scenario, float] = {
    "idle": 0.0,
    "progress": 1.0,
    "questions": 0.2,
    "stream": 0.2,
    "bargein": 0.2,
    "fanout": 0.0,
    "soak": 0.02,
}
FANOUT_RATE = 1.0
#: Defaults that differ for the soak: its sessions and seconds of load.
DEFAULT_SESSIONS = {"soak": 500}
DEFAULT_DURATION = {"soak": 600.0}
#: Soak: per session per second, reading progress and leaving-and-coming-back.
SOAK_PROGRESS_PER_SESSION = 0.2
SOAK_RECONNECTS_PER_SESSION = 0.004
#: Scenarios the baseline servers speak enough of the protocol for.
BASELINE_SCENARIOS: tuple[Scenario, ...] = ("idle", "progress", "questions")
#: Sessions one client process holds at most (its open-file limit is about 20,000).
SESSIONS_PER_CLIENT = 15_000

DESCRIPTION = """\
Load-test ReaderAI over real WebSockets and report latency, throughput, server
memory and CPU, and event-loop lag.

scenarios:
  idle       N sessions connected: server RSS, RSS per session, CPU while idle
  progress   N sessions sending READING_PROGRESS at a total --rate
  questions  N sessions asking at a total --rate (fast extractive engine):
             acknowledgement latency, time to first delta
  stream     replies from an OpenAI-compatible fake on loopback: time ReaderAI adds
             to the first token and per token, against reading the fake directly
  bargein    each reply cancelled at its first delta: cancel -> RESPONSE_DONE
  fanout     N students of one class; a teacher broadcasts --rate times per second
  soak       N students of one class for --duration (default 500 for 600 s):
             questions (--rate), progress, a broadcast now and then, sessions
             leaving and coming back; server RSS, tasks, connections and live
             sessions sampled throughout, then after the clients left: do they
             return to their baseline (taken after a warm-up run of the same load)?
  readaloud  K = 1, 2, ... students reading aloud at once (whisper): lag from a word
             said to its READING_PROGRESS, miscues, CPU per reader; its own
             options: readerai bench readaloud --help

Without --url, a ReaderAI server is started on a free port (extractive engine,
temporary SQLite, generated token key, high limits); READERAI_* variables of the
environment apply to it, the benchmark's own settings and --server-env win.
"""


@dataclass(frozen=True)
class BenchOptions:
    """A benchmark run, as asked for on the command line (defaults resolved)."""

    scenario: Scenario
    sessions: int
    rate: float
    ramp: float
    duration: float
    clients: int
    drain: float
    url: str | None = None
    pid: int | None = None
    token: str | None = None
    auth_secret: str | None = None
    json_path: Path | None = None
    plots_dir: Path | None = None
    baselines: bool = False
    database: str = "sqlite"
    passage: str = "the-lion-and-the-mouse"
    token_delay: float = 0.0
    ttft_ms: float = 200.0
    tokens_per_second: float = 50.0
    tokens: int = 40
    upstream: str | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    #: Soak: reading progress and reconnects per second in all; seconds between broadcasts.
    progress_rate: float = 0.0
    reconnect_rate: float = 0.0
    broadcast_every: float = 10.0
    #: Soak: seconds of warm-up load, of settling after the clients leave, between samples.
    warmup: float = 60.0
    settle: float = 60.0
    sample_every: float = 5.0
    #: Soak: how far above the baseline RSS and task counts may end.
    rss_margin_mib: float = 8.0
    task_margin: int = 2

    @property
    def mode(self) -> WorkerMode:
        return MODES[self.scenario]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="readerai bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", choices=SCENARIOS, metavar="SCENARIO", help=", ".join(SCENARIOS))
    load = p.add_argument_group("load")
    load.add_argument("--sessions", type=int, help="sessions (default 100; soak 500)")
    load.add_argument(
        "--rate",
        type=float,
        help="events per second over all sessions (default: 1/s per session for progress, "
        "0.2/s for questions, stream and bargein, 0.02/s for soak's questions; fanout: "
        "broadcasts/s, default 1)",
    )
    load.add_argument("--ramp", type=float, default=500.0, help="sessions opened per second")
    load.add_argument(
        "--duration", type=float, help="seconds of load after ramp (default 10; soak 600)"
    )
    load.add_argument("--clients", type=int, help="client processes (default: 2, or more)")
    load.add_argument("--drain", type=float, default=10.0, help="seconds to await answers")
    load.add_argument("--passage", default="the-lion-and-the-mouse", help="passage id")
    server = p.add_argument_group("server")
    server.add_argument("--url", help="a running server instead of starting one")
    server.add_argument("--pid", type=int, help="with --url: its pid, for RSS and CPU")
    auth = server.add_mutually_exclusive_group()
    auth.add_argument("--token", help="with --url: an admin token")
    auth.add_argument("--auth-secret", help="with --url: its HS256 key, to mint a token")
    server.add_argument("--database", default="sqlite", help="'sqlite' (temporary) or a URL")
    server.add_argument(
        "--token-delay", type=float, help="extractive seconds per word (default 0; bargein 0.02)"
    )
    server.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="extra setting"
    )
    stream = p.add_argument_group("stream")
    stream.add_argument("--ttft-ms", type=float, default=200.0, help="fake's time to first token")
    stream.add_argument("--tokens-per-second", type=float, default=50.0, help="fake's pace")
    stream.add_argument("--tokens", type=int, default=40, help="tokens per fake reply")
    stream.add_argument("--upstream", help="with --url: the base URL (…/v1) the server uses")
    _soak_arguments(p.add_argument_group("soak"))
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, dest="json_path", help="write the full report here")
    out.add_argument("--plots", type=Path, dest="plots_dir", help="write PNG plots here")
    out.add_argument(
        "--baselines",
        action="store_true",
        help="idle, progress and questions: the same load on a plain websockets server "
        "and on a naive FastAPI one, with ratios",
    )
    return p


def _soak_arguments(soak: argparse._ArgumentGroup) -> None:
    soak.add_argument(
        "--progress-rate",
        type=float,
        help=f"READING_PROGRESS per second in all (default {SOAK_PROGRESS_PER_SESSION:g}/s "
        "per session)",
    )
    soak.add_argument(
        "--reconnect-rate",
        type=float,
        help="sessions leaving and coming back per second, every other one as a new session "
        f"(default {SOAK_RECONNECTS_PER_SESSION:g}/s per session)",
    )
    soak.add_argument(
        "--broadcast-every", type=float, default=10.0, help="seconds between class broadcasts"
    )
    soak.add_argument("--warmup", type=float, default=60.0, help="seconds of warm-up load")
    soak.add_argument(
        "--settle", type=float, default=60.0, help="seconds sampled after the clients leave"
    )
    soak.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    soak.add_argument(
        "--rss-margin",
        type=float,
        default=8.0,
        dest="rss_margin_mib",
        help="MiB above the baseline RSS still counted as returned (default 8)",
    )
    soak.add_argument(
        "--task-margin", type=int, default=2, help="tasks above the baseline counts (default 2)"
    )


def parse_options(argv: list[str]) -> BenchOptions:
    """Options from `argv`; exits with a usage message on a bad combination."""
    p = parser()
    args = p.parse_args(argv)
    scenario = cast(Scenario, args.scenario)
    if args.sessions is None:
        args.sessions = DEFAULT_SESSIONS.get(scenario, 100)
    if args.duration is None:
        args.duration = DEFAULT_DURATION.get(scenario, 10.0)
    if args.sessions < 1:
        p.error("--sessions must be at least 1")
    if args.url and not (args.token or args.auth_secret):
        p.error("--url needs --token or --auth-secret")
    if args.url and scenario == "stream" and not args.upstream:
        p.error("stream with --url needs --upstream (the server's OpenAI-compatible base URL)")
    if args.baselines and scenario not in BASELINE_SCENARIOS:
        p.error(f"--baselines compares the {', '.join(BASELINE_SCENARIOS)} scenarios")
    clients = args.clients or max(2, math.ceil(args.sessions / SESSIONS_PER_CLIENT))
    if args.sessions / clients > SESSIONS_PER_CLIENT:
        p.error(f"at most {SESSIONS_PER_CLIENT} sessions per client process: raise --clients")
    rate = args.rate
    if rate is None:
        rate = FANOUT_RATE if scenario == "fanout" else RATE_PER_SESSION[scenario] * args.sessions
    if scenario == "fanout" and rate <= 0:
        p.error("fanout needs a --rate above 0 (broadcasts per second)")
    if scenario == "soak" and args.url and args.pid is None:
        p.error("soak with --url needs --pid: it is about the server's memory")
    if scenario == "soak" and min(args.sample_every, args.broadcast_every) <= 0:
        p.error("--sample-every and --broadcast-every must be above 0")
    soak = scenario == "soak"
    progress_rate = args.progress_rate
    if progress_rate is None:
        progress_rate = SOAK_PROGRESS_PER_SESSION * args.sessions if soak else 0.0
    reconnect_rate = args.reconnect_rate
    if reconnect_rate is None:
        reconnect_rate = SOAK_RECONNECTS_PER_SESSION * args.sessions if soak else 0.0
    server_env = {}
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--server-env wants KEY=VALUE, got {item!r}")
        server_env[key] = value
    token_delay = args.token_delay
    if token_delay is None:
        token_delay = 0.02 if scenario == "bargein" else 0.0
    return BenchOptions(
        scenario=scenario,
        sessions=args.sessions,
        rate=rate,
        ramp=args.ramp,
        duration=args.duration,
        clients=clients,
        drain=args.drain,
        url=args.url,
        pid=args.pid,
        token=args.token,
        auth_secret=args.auth_secret,
        json_path=args.json_path,
        plots_dir=args.plots_dir,
        baselines=args.baselines,
        database=args.database,
        passage=args.passage,
        token_delay=token_delay,
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        tokens=args.tokens,
        upstream=args.upstream,
        server_env=server_env,
        progress_rate=progress_rate,
        reconnect_rate=reconnect_rate,
        broadcast_every=args.broadcast_every,
        warmup=args.warmup,
        settle=args.settle,
        sample_every=args.sample_every,
        rss_margin_mib=args.rss_margin_mib,
        task_margin=args.task_margin,
    )
