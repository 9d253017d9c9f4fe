"""The work a node holds open, as its `/metrics` gauges show it.

The tasks themselves (`readerai_background_tasks`: the supervisor's;
`readerai_event_loop_tasks`: every task on the loop, connections included) and what
owns them: the connection (`readerai_connections`), the live session, which the hub
keeps while a connection is attached or a reply is in flight
(`readerai_live_sessions`), or an engine call (`readerai_engine_active`,
`readerai_engine_waiting`).
"""

from __future__ import annotations

import re
import time

import anyio
import httpx

from tests.fixtures_server import ServerProcess

WORK_GAUGES = (
    "readerai_background_tasks",
    "readerai_event_loop_tasks",
    "readerai_connections",
    "readerai_live_sessions",
    "readerai_engine_active",
    "readerai_engine_waiting",
)
#: How long open work may take to settle: a reply left running by a closed
#: connection finishes and is stored first (a few seconds on the test engine).
SETTLE_SECONDS = 20.0
#: What a node holds only while someone is using it.
OWNED_WORK = (
    "readerai_connections",
    "readerai_live_sessions",
    "readerai_engine_active",
    "readerai_engine_waiting",
)
#: How long the gauges must hold still for the node to count as quiet: longer than
#: the reply-checkpoint loop's tick (0.2 s), which outlives the last reply by one.
QUIET_SECONDS = 0.6


async def read_work(server: ServerProcess) -> dict[str, float]:
    """The work gauges of `server`, by name."""
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        text = (await http.get("/metrics")).raise_for_status().text
    values = {}
    for name in WORK_GAUGES:
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        assert found is not None, f"/metrics has no {name}"
        values[name] = float(found[1])
    return values


async def settled_work(
    server: ServerProcess, baseline: dict[str, float], within: float = SETTLE_SECONDS
) -> dict[str, float]:
    """The gauges once they are back at `baseline`, or as they are after `within` s."""
    with anyio.move_on_after(within):
        while (gauges := await read_work(server)) != baseline:  # noqa: ASYNC110 - remote
            await anyio.sleep(0.1)
    return gauges


async def quiet_work(server: ServerProcess, within: float = SETTLE_SECONDS) -> dict[str, float]:
    """The gauges once nothing is connected or answering and they have held still for
    `QUIET_SECONDS`: a baseline that work still ending from before (a module's earlier
    test on the same server) does not inflate."""
    gauges = await read_work(server)
    still_since = time.monotonic()
    with anyio.move_on_after(within):
        while True:
            await anyio.sleep(0.1)
            now_gauges = await read_work(server)
            if now_gauges != gauges or any(gauges[name] for name in OWNED_WORK):
                gauges, still_since = now_gauges, time.monotonic()
            elif time.monotonic() - still_since >= QUIET_SECONDS:
                return gauges
    raise AssertionError(f"the node never went quiet within {within} s: {gauges}")
