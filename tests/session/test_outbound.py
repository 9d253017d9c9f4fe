"""The outbound queue's overflow policy."""

from __future__ import annotations

import pytest

from readerai.errors import SlowConsumer
from readerai.protocol import Pong, ResponseDelta, ResponseQueued, ResponseStarted
from readerai.session.outbound import OutboundQueue


async def test_events_come_out_in_order() -> None:
    queue = OutboundQueue(8)
    events = [ResponseStarted(turn_id="t"), ResponseDelta(turn_id="t", seq=1, text="a")]
    for event in events:
        queue.put(event)
    assert [await queue.get(), await queue.get()] == events


async def test_full_queue_drops_the_oldest_ephemeral_event_first() -> None:
    queue = OutboundQueue(3)
    queue.put(Pong(id="old"))
    queue.put(ResponseStarted(turn_id="t"))
    queue.put(Pong(id="new"))
    queue.put(ResponseDelta(turn_id="t", seq=1, text="a"))
    got = [await queue.get() for _ in range(3)]
    assert Pong(id="old") not in got and Pong(id="new") in got


def test_full_queue_of_essential_events_means_the_client_is_too_slow() -> None:
    queue = OutboundQueue(2)
    queue.put(ResponseStarted(turn_id="t"))
    queue.put(ResponseDelta(turn_id="t", seq=1, text="a"))
    queue.put(Pong(id="dropped quietly"))
    assert len(queue) == 2
    with pytest.raises(SlowConsumer):
        queue.put(ResponseDelta(turn_id="t", seq=2, text="b"))


async def test_purge_drops_only_the_cancelled_turns_deltas_and_positions() -> None:
    queue = OutboundQueue(8)
    queue.put(ResponseQueued(turn_id="old", position=1))
    queue.put(ResponseDelta(turn_id="old", seq=1, text="a"))
    queue.put(ResponseDelta(turn_id="new", seq=1, text="b"))
    queue.put(ResponseStarted(turn_id="old"))
    assert queue.purge_turn("old") == 2
    assert [await queue.get(), await queue.get()] == [
        ResponseDelta(turn_id="new", seq=1, text="b"),
        ResponseStarted(turn_id="old"),
    ]
