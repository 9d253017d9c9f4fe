"""What a client process does to its open sessions during the run, by mode.

Each load has `fire(i)`, called on the open-loop schedule (event `i` of this
process, whether or not earlier ones were answered, so a slow server cannot slow
the offered load down and hide its own latency), and `on_event`, called by the
session's reader for every frame the server sends. `outstanding()` is what is
still awaited; the process drains until it is 0 or the drain time is up.

Sample names (seconds): `ack` question sent → `INTERRUPTION_ACKNOWLEDGED`;
`first_delta` question sent → first `RESPONSE_DELTA`; `token_gap` between deltas
of a reply; `per_token` (last - first delta) / (deltas - 1) of a finished reply;
`cancel` `RESPONSE_CANCEL` sent → `RESPONSE_DONE {cancelled}`; `progress_rtt`
`READING_PROGRESS` sent → the `PONG` of the `PING` sent right after it;
`broadcast` teacher's POST sent → `CLASS_BROADCAST` received; for `direct`,
`first_token`, `token_gap` and `per_token` read straight from the upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from readerai.loadtest.sessions import BenchSession, TurnTiming

QUESTION = "Why did the lion let the mouse go?"
#: A `PING` follows every this-many `READING_PROGRESS`, to time their handling.
PROBE_EVERY = 4
#: Positions sent cycle through the first this-many character offsets: a position is
#: an offset into the passage's text, and one past its end is refused.
PROGRESS_OFFSETS = 1000


@dataclass
class Tally:
    """Measurements of one client process."""

    samples: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: Broadcast id -> [receivers, latest arrival].
    broadcasts: dict[str, tuple[int, float]] = field(default_factory=dict)


class Load(Protocol):
    """A mode's behaviour; see the module docstring."""

    async def fire(self, index: int) -> None: ...

    async def on_event(self, session: BenchSession, event: dict[str, Any]) -> None: ...

    def outstanding(self) -> int: ...


class IdleLoad:
    """Sessions stay open and send nothing."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    async def fire(self, index: int) -> None:
        """Idle sessions have nothing to send."""

    async def on_event(self, session: BenchSession, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "ERROR":
            self.tally.errors[f"ERROR:{event['payload'].get('code')}"] += 1
        else:
            self.tally.counts[f"received:{kind}"] += 1

    def outstanding(self) -> int:
        return 0


class ProgressLoad(IdleLoad):
    """Sessions report reading positions; some are followed by a timing `PING`."""

    def __init__(self, tally: Tally, sessions: Sequence[BenchSession], passage_id: str) -> None:
        super().__init__(tally)
        self.sessions = sessions
        self.passage_id = passage_id

    async def fire(self, index: int) -> None:
        session = self.sessions[index % len(self.sessions)]
        sent = time.perf_counter()
        position = index % PROGRESS_OFFSETS
        await session.send("READING_PROGRESS", passageId=self.passage_id, position=position)
        self.tally.counts["progress_sent"] += 1
        if index % PROBE_EVERY == 0:
            session.pings.append(sent)
            await session.send("PING", id=str(index))

    async def on_event(self, session: BenchSession, event: dict[str, Any]) -> None:
        if event.get("type") == "PONG":
            # PINGs are answered in order (a baseline's PONG carries no id).
            if session.pings:
                sent = session.pings.popleft()
                self.tally.samples["progress_rtt"].append(time.perf_counter() - sent)
            else:
                self.tally.errors["unexpected_pong"] += 1
        else:
            await super().on_event(session, event)

    def outstanding(self) -> int:
        return sum(len(s.pings) for s in self.sessions)


class QuestionLoad(IdleLoad):
    """Sessions ask questions; with `cancel`, each reply is cancelled at its first delta.

    Questions of one session are acknowledged in the order asked, so the oldest
    unacknowledged send time belongs to the next `INTERRUPTION_ACKNOWLEDGED`.
    """

    def __init__(
        self,
        tally: Tally,
        sessions: Sequence[BenchSession],
        *,
        replies: bool,
        cancel: bool = False,
    ) -> None:
        super().__init__(tally)
        self.sessions = sessions
        self.replies = replies
        self.cancel = cancel

    async def fire(self, index: int) -> None:
        session = self.sessions[index % len(self.sessions)]
        session.asked.append(time.perf_counter())
        self.tally.counts["questions_sent"] += 1
        await session.send("STUDENT_INTERRUPTION", questionText=QUESTION)

    async def on_event(self, session: BenchSession, event: dict[str, Any]) -> None:
        now = time.perf_counter()
        kind, payload = event.get("type"), event.get("payload") or {}
        if kind == "INTERRUPTION_ACKNOWLEDGED":
            self._acknowledged(session, payload, now)
        elif kind == "RESPONSE_DELTA":
            await self._delta(session, payload, now)
        elif kind == "RESPONSE_DONE":
            self._done(session, payload, now)
        elif kind == "ERROR":
            self.tally.errors[f"ERROR:{payload.get('code')}"] += 1
            if payload.get("turnId") is None and session.asked:
                session.asked.popleft()  # a refused question: no acknowledgement follows
        elif kind in ("RESPONSE_QUEUED", "RESPONSE_STARTED"):
            self.tally.counts[f"received:{kind}"] += 1

    def _acknowledged(self, session: BenchSession, payload: dict[str, Any], now: float) -> None:
        if not session.asked:
            self.tally.errors["unexpected_ack"] += 1
            return
        sent = session.asked.popleft()
        self.tally.samples["ack"].append(now - sent)
        self.tally.counts["acknowledged"] += 1
        if self.replies:
            session.turns[str(payload.get("turnId"))] = TurnTiming(sent)

    async def _delta(self, session: BenchSession, payload: dict[str, Any], now: float) -> None:
        turn_id = str(payload.get("turnId"))
        turn = session.turns.get(turn_id)
        if turn is None:
            return
        if turn.first is None:
            turn.first = now
            self.tally.samples["first_delta"].append(now - turn.sent)
            if self.cancel:
                turn.cancel_sent = time.perf_counter()
                await session.send("RESPONSE_CANCEL", turnId=turn_id)
        elif turn.last is not None:
            self.tally.samples["token_gap"].append(now - turn.last)
        turn.last = now
        turn.deltas += 1

    def _done(self, session: BenchSession, payload: dict[str, Any], now: float) -> None:
        turn = session.turns.pop(str(payload.get("turnId")), None)
        if turn is None:
            return
        status = str(payload.get("status"))
        self.tally.counts[f"done:{status}"] += 1
        if status == "failed":
            error = payload.get("error") or {}
            self.tally.errors[f"reply_failed:{error.get('code')}"] += 1
        if turn.cancel_sent is not None:
            if status == "cancelled":
                self.tally.samples["cancel"].append(now - turn.cancel_sent)
            else:
                self.tally.counts["finished_before_cancel"] += 1
        elif status == "completed" and turn.first and turn.last and turn.deltas > 1:
            self.tally.samples["per_token"].append((turn.last - turn.first) / (turn.deltas - 1))

    def outstanding(self) -> int:
        return sum(len(s.asked) + len(s.turns) for s in self.sessions)


class ListenLoad(IdleLoad):
    """Sessions wait for class broadcasts, whose text carries the monotonic send time."""

    def __init__(self, tally: Tally, sessions: Sequence[BenchSession]) -> None:
        super().__init__(tally)
        self.sessions = sessions
        self.expected = 0

    async def on_event(self, session: BenchSession, event: dict[str, Any]) -> None:
        if event.get("type") != "CLASS_BROADCAST":
            await super().on_event(session, event)
            return
        arrived = time.monotonic()
        payload = event["payload"]
        try:
            sent = float(str(payload["text"]).rsplit(" ", 1)[1])
        except (KeyError, IndexError, ValueError):
            self.tally.counts["received:foreign_broadcast"] += 1
            return
        latency = arrived - sent
        session.broadcasts += 1
        self.tally.samples["broadcast"].append(latency)
        receivers, latest = self.tally.broadcasts.get(str(payload["broadcastId"]), (0, 0.0))
        self.tally.broadcasts[str(payload["broadcastId"])] = (
            receivers + 1,
            max(latest, latency),
        )

    def outstanding(self) -> int:
        return sum(max(0, self.expected - s.broadcasts) for s in self.sessions)


class DirectLoad(IdleLoad):
    """Streams chat completions straight from the upstream: the floor for `stream`."""

    def __init__(
        self, tally: Tally, http: httpx.AsyncClient, max_tokens: int, tasks: asyncio.TaskGroup
    ) -> None:
        super().__init__(tally)
        self.http = http
        self.max_tokens = max_tokens
        self.in_flight = 0
        #: The process's task group owns each stream (each bounded by the HTTP timeout).
        self._tasks = tasks

    async def fire(self, index: int) -> None:
        self.in_flight += 1  # counted from now, so a drain never misses a starting stream
        self._tasks.create_task(self._stream())

    async def _stream(self) -> None:
        body = {
            "model": "bench",
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": self.max_tokens,
            "stream": True,
        }
        sent = time.perf_counter()
        first = last = None
        tokens = 0
        try:
            async with self.http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    self.tally.errors[f"upstream_http_{response.status_code}"] += 1
                    return
                async for line in response.aiter_lines():
                    if not _has_content(line):
                        continue
                    now = time.perf_counter()
                    if first is None:
                        first = now
                        self.tally.samples["first_token"].append(now - sent)
                    elif last is not None:
                        self.tally.samples["token_gap"].append(now - last)
                    last = now
                    tokens += 1
            self.tally.counts["streams_completed"] += 1
            if first is not None and last is not None and tokens > 1:
                self.tally.samples["per_token"].append((last - first) / (tokens - 1))
        except httpx.HTTPError as exc:
            self.tally.errors[f"upstream_{type(exc).__name__}"] += 1
        finally:
            self.in_flight -= 1

    def outstanding(self) -> int:
        return self.in_flight


def _has_content(line: str) -> bool:
    """Whether an SSE line is a chunk carrying reply text."""
    if not line.startswith("data:"):
        return False
    data = line[5:].strip()
    if data == "[DONE]":
        return False
    chunk = json.loads(data)
    choices = chunk.get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))
