"""Delivery through the Redis bus between two nodes: notice latency and class fan-out.

Starts a private `redis-server` on a free port, a fresh database (a new PostgreSQL
database on 127.0.0.1:5432, dropped at the end, or a temporary SQLite file shared by
both nodes) and two nodes, A and B (`readerai serve`, extractive engine), then:

1. notice: one session connected on A; `POST /api/sessions/{id}/notices` sent via A
   (same node) and via B (other node), alternately, one at a time. Latency is from
   just before the POST to the `NOTICE` frame read by the client; the REST round trip
   alone is shown beside it.
2. class fan-out: N students of one class, half connected on A, half on B; a broadcast
   sent via A. Reports the time until the last student read it and each student's
   delivery latency, and checks every student got each broadcast exactly once.

All clients run in this one process and loop, so the fan-out figures include the
client side reading N frames one after another; on a small machine the clients, the
nodes and Redis also share the cores.

    python bench/bus_delivery.py --students 1000 --rounds 300
    python bench/bus_delivery.py --database sqlite --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from ack_latency import AUTH, BENCH_AUTH_SECRET, PROTOCOLS, free_port, machine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fixtures_redis import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PASSAGE = "the-lion-and-the-mouse"
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", "ssl": False}
READY_TIMEOUT = 120.0
#: Deadlines (seconds): one HTTP call, one WebSocket open/close, one delivery.
HTTP_TIMEOUT = 30.0
WS_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 10.0
FANOUT_TIMEOUT = 60.0
CONNECT_CONCURRENCY = 50
NOTICE_WARMUP = 20
BROADCAST_WARMUP = 1
#: Pause between broadcasts, and before counting, so late duplicates are seen.
ROUND_GAP = 0.5
SETTLE = 1.0
DELIVERED = ("NOTICE", "CLASS_BROADCAST")


# -- processes ------------------------------------------------------------------


@dataclass
class Node:
    """One `readerai serve`, logging JSON lines to `log_path`."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    problems: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def running_node(name: str, data: Path, settings: dict[str, str]) -> Iterator[Node]:
    """Start the node and wait until it is ready with its bus up; stop it at exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("READERAI_")}
    env |= {
        "READERAI_ENGINE": "extractive",
        "READERAI_LOG_FORMAT": "json",
        "HF_HUB_OFFLINE": "1",
        "READERAI_AUTH_SECRET": BENCH_AUTH_SECRET,
        "READERAI_DEMO_ACCOUNTS": "false",
        **settings,
    }
    log_path = data / f"node-{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "readerai", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    node = Node(name, proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_ready(node)
        yield node
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        node.problems = log_problems(log_path)


def wait_ready(node: Node) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise SystemExit(f"node {node.name} exited:\n{node.log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{node.url}/readyz", timeout=1)
            if response.status_code == 200 and response.json().get("bus") == "ok":
                return
        time.sleep(0.2)
    raise SystemExit(f"node {node.name} not ready:\n{node.log_path.read_text()[-3000:]}")


def log_problems(path: Path) -> dict[str, Any]:
    """Warnings and errors of a node's log, counted by event; lines that are not JSON."""
    events: Counter[str] = Counter()
    raw: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raw.append(line)
            continue
        if record.get("level") in ("warning", "error", "critical"):
            events[f"{record['level']} {record.get('event')}"] += 1
    return {"events": dict(events), "other_lines": len(raw), "first_other_lines": raw[:5]}


@contextlib.contextmanager
def private_redis(data: Path) -> Iterator[str]:
    """A `redis-server` of our own on a free port, nothing persisted; stopped at exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server on PATH")
    server = RedisServer(binary, data)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def bench_database(kind: str, data: Path) -> Iterator[str]:
    """A SQLite file in `data`, or a new PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{data}/bench.db"
        return
    name = f"readerai_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def postgres_admin(statement: str) -> None:
    admin = await asyncpg.connect(database="postgres", timeout=5, **POSTGRES)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


def raise_open_file_limit() -> None:
    """1000 clients need 1000 sockets: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# -- clients --------------------------------------------------------------------


@dataclass
class Arrival:
    client: int
    at: float
    event_id: str


class Inbox:
    """What every client read, by event text (known before the POST, unlike the id)."""

    def __init__(self) -> None:
        self.arrivals: defaultdict[str, list[Arrival]] = defaultdict(list)
        self.other_events: Counter[str] = Counter()
        self.closed_by_server: Counter[str] = Counter()
        self.stopping = False
        self._clients: defaultdict[str, set[int]] = defaultdict(set)
        self._waiting: dict[str, tuple[int, asyncio.Future[None]]] = {}

    def expect(self, text: str, clients: int) -> asyncio.Future[None]:
        """A future done once `clients` distinct clients have read `text`."""
        done = asyncio.get_running_loop().create_future()
        self._waiting[text] = (clients, done)
        return done

    def forget(self, text: str) -> None:
        self._waiting.pop(text, None)

    def record(self, text: str, arrival: Arrival) -> None:
        self.arrivals[text].append(arrival)
        clients = self._clients[text]
        clients.add(arrival.client)
        waiting = self._waiting.get(text)
        if waiting is not None and len(clients) >= waiting[0]:
            del self._waiting[text]
            waiting[1].set_result(None)


@dataclass
class Student:
    index: int
    session_id: str
    node: str
    node_id: str
    ws: ClientConnection


@dataclass
class Clients:
    """Opens sessions and connections; their readers live in `readers`."""

    http: dict[str, httpx.AsyncClient]
    urls: dict[str, str]
    readers: asyncio.TaskGroup
    inbox: Inbox
    sockets: list[ClientConnection] = field(default_factory=list)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONNECT_CONCURRENCY))

    async def join(self, index: int, node: str, class_id: str | None) -> Student:
        async with self.gate:
            body = {"passageId": PASSAGE} | ({"classId": class_id} if class_id else {})
            created = await self.http[node].post("/api/sessions", json=body)
            created.raise_for_status()
            session_id = created.json()["id"]
            ws_url = self.urls[node].replace("http", "ws", 1) + f"/ws/{session_id}"
            ws = await connect(
                ws_url,
                max_size=None,
                subprotocols=PROTOCOLS,
                open_timeout=WS_TIMEOUT,
                close_timeout=WS_TIMEOUT,
                ping_interval=None,  # the nodes ping; 1000 clients pinging too is noise
                compression=None,  # the nodes offer none
            )
            self.sockets.append(ws)
            async with asyncio.timeout(WS_TIMEOUT):
                restored = json.loads(await ws.recv())
        assert restored["type"] == "SESSION_RESTORED", restored
        self.readers.create_task(self._read(ws, index))
        return Student(index, session_id, node, restored["payload"]["nodeId"], ws)

    async def _read(self, ws: ClientConnection, index: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                at = time.perf_counter()  # before parsing: parsing is the client's cost
                event = json.loads(frame)
                kind, payload = event["type"], event.get("payload", {})
                if kind in DELIVERED:
                    event_id = payload.get("noticeId") or payload.get("broadcastId")
                    self.inbox.record(payload["text"], Arrival(index, at, event_id))
                else:
                    self.inbox.other_events[kind] += 1
        if not self.inbox.stopping:
            self.inbox.closed_by_server[str(ws.close_code)] += 1

    async def close_all(self) -> None:
        self.inbox.stopping = True

        async def close(ws: ClientConnection) -> None:
            async with self.gate:
                await ws.close()

        await asyncio.gather(*(close(ws) for ws in self.sockets))


# -- measurements ---------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"n": 0}
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"p50": q[49], "p90": q[89], "p99": q[98], "max": ms[-1], "n": len(ms)}


def tally(
    inbox: Inbox, text: str, event_id: str, recipients: set[int]
) -> tuple[dict[int, float], list[str]]:
    """First arrival per recipient, and what went wrong (missing, duplicate, stray)."""
    first: dict[int, float] = {}
    errors: list[str] = []
    for arrival in inbox.arrivals.get(text, []):
        if arrival.client not in recipients:
            errors.append(f"{text!r}: reached client {arrival.client}, not a recipient")
        elif arrival.client in first:
            errors.append(f"{text!r}: client {arrival.client} got it again")
        else:
            first[arrival.client] = arrival.at
        if arrival.event_id != event_id:
            errors.append(f"{text!r}: id {arrival.event_id} != {event_id} from the POST")
    if missing := len(recipients - first.keys()):
        errors.append(f"{text!r}: {missing} of {len(recipients)} recipients never got it")
    return first, errors


async def post(http: httpx.AsyncClient, path: str, text: str) -> dict[str, Any]:
    response = await http.post(path, json={"text": text})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def notice_latencies(
    clients: Clients, probe: Student, rounds: int, errors: list[str]
) -> dict[str, dict[str, float]]:
    """Notices to `probe` (on A) sent via A and via B, alternately, one at a time."""
    latency = {"A": "via A (same node)", "B": "via B (other node)"}
    times: dict[str, list[float]] = {name: [] for name in latency.values()}
    times |= {"REST round trip via A": [], "REST round trip via B": []}
    sent_ids: list[tuple[str, str]] = []
    path = f"/api/sessions/{probe.session_id}/notices"
    for i in range(NOTICE_WARMUP + rounds):
        for via in ("A", "B"):
            text = f"notice {i} via {via}"
            arrived = clients.inbox.expect(text, 1)
            sent = time.perf_counter()
            body = await post(clients.http[via], path, text)
            answered = time.perf_counter()
            sent_ids.append((text, body["noticeId"]))
            if body["nodes"] != 1:
                errors.append(f"{text!r}: sent to {body['nodes']} nodes, not 1")
            try:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    await arrived
            except TimeoutError:
                clients.inbox.forget(text)
                continue  # reported by `tally` as missing
            if i >= NOTICE_WARMUP:
                times[latency[via]].append(clients.inbox.arrivals[text][0].at - sent)
                times[f"REST round trip via {via}"].append(answered - sent)
    await asyncio.sleep(SETTLE)
    for text, notice_id in sent_ids:
        errors += tally(clients.inbox, text, notice_id, {probe.index})[1]
    return {name: percentiles(values) for name, values in times.items()}


async def class_fanout(
    clients: Clients, students: list[Student], class_id: str, broadcasts: int, errors: list[str]
) -> dict[str, Any]:
    """Broadcasts via A to the class, one at a time; per-student and last-student times."""
    sent: list[tuple[str, float, str]] = []
    for r in range(BROADCAST_WARMUP + broadcasts):
        text = f"broadcast {r}"
        everyone = clients.inbox.expect(text, len(students))
        started = time.perf_counter()
        body = await post(clients.http["A"], f"/api/classes/{class_id}/broadcasts", text)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FANOUT_TIMEOUT):
                await everyone
        clients.inbox.forget(text)
        if r >= BROADCAST_WARMUP:
            sent.append((text, started, body["broadcastId"]))
        await asyncio.sleep(ROUND_GAP)
    await asyncio.sleep(SETTLE)
    node_of = {s.index: s.node for s in students}
    per_client: dict[str, list[float]] = {"students on A": [], "students on B": []}
    per_client["all students"] = []
    last: list[float] = []
    for text, started, broadcast_id in sent:
        first, problems = tally(clients.inbox, text, broadcast_id, set(node_of))
        errors += problems
        for index, at in first.items():
            per_client[f"students on {node_of[index]}"].append(at - started)
            per_client["all students"].append(at - started)
        last.append(max(first.values(), default=started) - started)
    return {
        "time_to_last_student_ms": [s * 1000 for s in last],
        "per_client_ms": {name: percentiles(v) for name, v in per_client.items()},
    }


async def measure(args: argparse.Namespace, nodes: dict[str, Node]) -> dict[str, Any]:
    errors: list[str] = []
    inbox = Inbox()
    async with contextlib.AsyncExitStack() as stack:
        http = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(base_url=node.url, timeout=HTTP_TIMEOUT, headers=AUTH)
            )
            for name, node in nodes.items()
        }
        readers = await stack.enter_async_context(asyncio.TaskGroup())
        clients = Clients(http, {name: node.url for name, node in nodes.items()}, readers, inbox)
        stack.push_async_callback(clients.close_all)  # before the readers are awaited
        probe = await clients.join(0, "A", class_id=None)
        notices = await notice_latencies(clients, probe, args.rounds, errors)
        class_id = f"bench-{uuid.uuid4().hex[:8]}"
        admin = clients.http["A"]
        teacher = {"name": "Bench teacher", "userId": "bench-teacher"}
        (await admin.post("/api/teachers", json=teacher)).raise_for_status()
        made = {"name": class_id, "id": class_id, "teacherId": "bench-teacher"}
        (await admin.post("/api/classes", json=made)).raise_for_status()
        started = time.perf_counter()
        students = await asyncio.gather(
            *(clients.join(i, "AB"[i % 2], class_id) for i in range(1, args.students + 1))
        )
        connect_seconds = time.perf_counter() - started
        node_ids = {
            name: {s.node_id for s in (probe, *students) if s.node == name} for name in "AB"
        }
        if any(len(ids) != 1 for ids in node_ids.values()) or node_ids["A"] == node_ids["B"]:
            errors.append(f"nodeId of SESSION_RESTORED not one per node: {node_ids}")
        fanout = await class_fanout(clients, students, class_id, args.broadcasts, errors)
    return {
        "notice_ms": notices,
        "students_connect_seconds": connect_seconds,
        "fanout": fanout,
        "errors": errors,
        "other_events": dict(inbox.other_events),
        "closed_by_server": dict(inbox.closed_by_server),
    }


# -- report ---------------------------------------------------------------------


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(title)
    print(f"  {'':30}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'n':>7}")
    for name, q in rows.items():
        figures = "".join(f"{q.get(k, float('nan')):9.2f}" for k in ("p50", "p90", "p99", "max"))
        print(f"  {name:30}{figures}{q['n']:7d}")


def print_results(args: argparse.Namespace, results: dict[str, Any]) -> None:
    notices = results["notice_ms"]
    print_table(
        f"notice to a session on A: POST sent -> NOTICE read (ms), {args.rounds} each "
        f"after {NOTICE_WARMUP} warm-up",
        notices,
    )
    fanout = results["fanout"]
    last = fanout["time_to_last_student_ms"]
    print(
        f"class fan-out: {args.students} students ({(args.students + 1) // 2} on A, "
        f"{args.students // 2} on B, connected in {results['students_connect_seconds']:.1f} s), "
        f"{args.broadcasts} broadcasts via A after {BROADCAST_WARMUP} warm-up"
    )
    if last:
        rounds = ", ".join(f"{ms:.1f}" for ms in last)
        print(
            f"  time to last student: median {statistics.median(last):.1f} ms, "
            f"max {max(last):.1f} ms  (rounds: {rounds})"
        )
    print_table(
        "  per-student delivery: POST sent -> CLASS_BROADCAST read (ms)", fanout["per_client_ms"]
    )
    errors = results["errors"]
    print(f"errors: {len(errors) or 'none'}")
    for error in errors[:10]:
        print("  ", error)
    print("other events read:", results["other_events"] or "none")
    print("connections closed by a node:", results["closed_by_server"] or "none")


def run_cluster(args: argparse.Namespace, nodes: dict[str, Node]) -> dict[str, Any]:
    """Redis, database and nodes A and B up; measure; everything stopped and dropped."""
    with tempfile.TemporaryDirectory(prefix="readerai-bench-") as tmp:
        data = Path(tmp)
        with contextlib.ExitStack() as stack:
            settings = {
                "READERAI_REDIS_URL": stack.enter_context(private_redis(data)),
                "READERAI_DATABASE_URL": stack.enter_context(bench_database(args.database, data)),
                "READERAI_LOG_LEVEL": args.log_level,
            }
            for name in "AB":  # one after the other: only the first migrates the database
                nodes[name] = stack.enter_context(running_node(name, data, settings))
            results = asyncio.run(measure(args, nodes))
            print_results(args, results)
    return results


def print_node_logs(nodes: dict[str, Node]) -> None:
    for name, node in nodes.items():
        problems = node.problems
        if not problems:
            continue  # still running: an error came before it was stopped
        events = problems["events"] or "no warnings or errors"
        print(f"node {name} log: {events}; {problems['other_lines']} lines not JSON")
        for line in problems["first_other_lines"]:
            print("  ", line[:200])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=1000, help="students in the class")
    parser.add_argument("--rounds", type=int, default=300, help="notices via each node")
    parser.add_argument("--broadcasts", type=int, default=5, help="class broadcasts timed")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="of the nodes (their warnings and errors are counted at the end)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    raise_open_file_limit()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print("command:", command)
    print("machine:", machine())
    print(f"database: {args.database}, bus: private redis-server, engine: extractive")
    nodes: dict[str, Node] = {}
    try:
        results = run_cluster(args, nodes)
    finally:
        print_node_logs(nodes)  # also when the run failed: the logs may say why
    results["node_logs"] = {name: node.problems for name, node in nodes.items()}
    if args.json:
        header = {"command": command, "machine": machine(), "database": args.database}
        args.json.write_text(json.dumps(header | vars(args) | results, indent=2, default=str))


if __name__ == "__main__":
    main()
