"""A server's resident memory and CPU time, read from /proc/PID every second.

RSS is `VmRSS` of /proc/PID/status; CPU is utime + stime of /proc/PID/stat (user
and system time of every thread). Each sample is also stamped with the number of
sessions open at that moment, which the caller keeps current, so memory can be
drawn against sessions during the ramp.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

#: Seconds between samples.
INTERVAL = 1.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcSample(BaseModel):
    """One reading: seconds since the sampler started, sessions open, RSS, CPU seconds."""

    t: float
    sessions: int
    rss_bytes: int
    cpu_seconds: float


@dataclass(frozen=True)
class ProcReading:
    rss_bytes: int
    cpu_seconds: float
    at: float
    threads: int = 0


def read_proc(pid: int) -> ProcReading:
    """RSS, CPU seconds and threads of `pid` now; blocking (reads two small /proc files)."""
    rss_kib = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
                break  # after VmRSS in the file
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; fields after ")" are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return ProcReading(rss_kib * 1024, (utime + stime) / _CLOCK_TICKS, time.monotonic(), threads)


class ProcessSampler:
    """Samples one process every `INTERVAL` while `run` runs (cancel it to stop)."""

    def __init__(self, pid: int, sessions: Callable[[], int]) -> None:
        self.pid = pid
        self._sessions = sessions
        self._started = time.monotonic()
        self.samples: list[ProcSample] = []

    async def read(self) -> ProcReading:
        """A reading now, also kept as a sample."""
        reading = await asyncio.to_thread(read_proc, self.pid)
        self.samples.append(
            ProcSample(
                t=round(reading.at - self._started, 3),
                sessions=self._sessions(),
                rss_bytes=reading.rss_bytes,
                cpu_seconds=reading.cpu_seconds,
            )
        )
        return reading

    async def run(self) -> None:
        while True:
            try:
                await self.read()
            except (OSError, ValueError, IndexError):
                return  # the process is gone
            await asyncio.sleep(INTERVAL)

    def peak_rss(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=0)


def cpu_percent(start: ProcReading, end: ProcReading) -> float:
    """CPU used between two readings, in % of one core."""
    wall = end.at - start.at
    return 100.0 * (end.cpu_seconds - start.cpu_seconds) / wall if wall > 0 else 0.0
