"""What the coordinator and its client processes say to each other.

A client process (`python -m readerai.loadtest.client`) reads one `WorkerConfig` as
the first line of its stdin, then `Command` lines; it writes `WorkerReport` lines on
stdout. Every line is one JSON document. The order is fixed:

    coordinator: config ─────────────── run ──────────── stop
    client:        opening… ramped ───────────────────────── result

Times inside a client are `time.perf_counter()`; times that cross processes (a
broadcast's send time) are `time.monotonic()`, which is one clock for every
process of the machine on Linux.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: What a client process does with its sessions while the run lasts.
#: `listen` waits for class broadcasts; `direct` has no sessions and streams
#: completions straight from an OpenAI-compatible server; `soak` mixes questions,
#: progress and sessions leaving and coming back, and listens for broadcasts.
WorkerMode = Literal["idle", "progress", "questions", "bargein", "listen", "direct", "soak"]


class SoakMix(BaseModel):
    """Events per second of each kind in the `soak` mode (`rate` is their sum)."""

    questions: float = 0.0
    progress: float = 0.0
    reconnects: float = Field(
        0.0, description="Sessions closed and opened again (half of them as new sessions)."
    )

    @property
    def total(self) -> float:
        return self.questions + self.progress + self.reconnects

    def share(self, parts: int) -> SoakMix:
        """One of `parts` equal shares (one client process's)."""
        return SoakMix(
            questions=self.questions / parts,
            progress=self.progress / parts,
            reconnects=self.reconnects / parts,
        )


class WorkerConfig(BaseModel):
    """Everything one client process needs; its first line of stdin."""

    index: int
    mode: WorkerMode
    http_url: str = Field(description="ReaderAI's base URL, or the upstream's for `direct`.")
    ws_url: str = Field(description="`ws://host:port`; sessions connect to `/ws/{id}`.")
    token: str | None = Field(description="Admin token; `None` for a baseline (no REST, no auth).")
    sessions: int
    ramp_per_second: float
    rate: float = Field(description="This process's share of the run's events per second.")
    passage_id: str | None = None
    class_id: str | None = None
    source_address: str | None = Field(
        None, description="Local address every socket binds to (127.0.0.x), for more ports."
    )
    create_concurrency: int = 16
    connect_concurrency: int = 256
    drain_seconds: float = 10.0
    max_tokens: int = 64
    replies: bool = Field(True, description="The server streams replies after acknowledging.")
    soak: SoakMix | None = Field(None, description="`soak`: the mix making up `rate`.")


class Command(BaseModel):
    """A line the coordinator sends once the sessions are open."""

    command: Literal["run", "stop"]
    broadcasts: int = Field(0, description="`stop`: broadcasts each session should have seen.")


class WorkerResult(BaseModel):
    """One client process's measurements, in seconds."""

    opened: int
    failed: int
    samples: dict[str, list[float]]
    counts: dict[str, int]
    errors: dict[str, int]
    #: Per broadcast id: receivers, and the latest arrival (seconds after sending).
    broadcasts: dict[str, tuple[int, float]]
    cpu_seconds: float
    send_lag_max: float = Field(description="How far behind schedule the client ever sent.")


class WorkerReport(BaseModel):
    """A line a client process writes on stdout."""

    kind: Literal["opening", "ramped", "result", "fatal"]
    index: int
    opened: int = 0
    failed: int = 0
    result: WorkerResult | None = None
    message: str = ""
