"""When service returns after a fault: asking until a question is answered, timed.

Each fault test states three things: what the student sees (the events), what is
stored (the REST history), and when service returns. The last is measured here: the
seconds from the moment the failed service is back (restarted, remounted) to the
first question that is acknowledged and answered in full. `record_return` keeps
the figure with the test's report; the suite's summary lists them ("service
returned after a fault") and `--junitxml` writes them, so docs/reliability.md can
quote them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from tests.fixtures_server import Client

#: The name under which a test's report carries when service returned, in seconds.
RETURNED = "service_returned_seconds"

#: Events that end one attempt at a question.
ENDINGS = ("RESPONSE_DONE", "ERROR")


@dataclass
class Recovery:
    """How a question fared from `since` until it was answered."""

    #: Seconds from `since` to the complete reply.
    answered_after: float = 0.0
    #: Every event of the attempt that succeeded.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: ERROR events of the attempts refused before it.
    refusals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def turn_id(self) -> str:
        """The turn of the question that was answered."""
        (turn_id,) = acknowledged_turns(self.events)
        return turn_id


async def attempt(client: Client, question: str, within: float = 30.0) -> list[dict[str, Any]]:
    """Ask once; the events up to its `RESPONSE_DONE`, or up to an `ERROR` refusing it."""
    await client.ask(question)
    events: list[dict[str, Any]] = []
    with anyio.fail_after(within):
        while not events or events[-1]["type"] not in ENDINGS:
            events.append(await client.recv(within))
    return events


async def ask_until_answered(
    client: Client, question: str, since: float, within: float
) -> Recovery:
    """Ask `question` again after each refusal until it is answered (`completed`).

    `since` is a `time.monotonic()` reading; fails if no answer comes `within` seconds.
    """
    recovery = Recovery()
    with anyio.fail_after(within):
        while True:
            events = await attempt(client, question, within)
            if events[-1]["type"] == "ERROR":
                recovery.refusals.append(events[-1])
                await anyio.sleep(0.2)
                continue
            kinds = [e["type"] for e in events]
            assert "INTERRUPTION_ACKNOWLEDGED" in kinds, kinds
            assert events[-1]["payload"]["status"] == "completed", events[-1]
            recovery.answered_after = time.monotonic() - since
            recovery.events = events
            return recovery


def acknowledged_turns(events: list[dict[str, Any]]) -> list[str]:
    """Turn ids of the questions acknowledged in `events`, in order."""
    return [str(e["payload"]["turnId"]) for e in events if e["type"] == "INTERRUPTION_ACKNOWLEDGED"]


def record_return(item: pytest.Item, seconds: float, bound: float) -> None:
    """Keep `seconds` with `item`'s report, then fail if it is over `bound`."""
    item.user_properties.append((RETURNED, round(seconds, 2)))
    assert seconds <= bound, f"service returned after {seconds:.1f} s (bound {bound} s)"
