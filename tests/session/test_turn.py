"""The turn state machine."""

from __future__ import annotations

import pytest

from readerai.protocol import ReplyStatus
from readerai.session.turn import IllegalTransition, Turn


def turn_with(*deltas: str) -> Turn:
    turn = Turn(id="t", question="q")
    for text in deltas:
        turn.append(text)
    return turn


def test_deltas_are_numbered_from_one_without_gaps() -> None:
    turn = Turn(id="t", question="q")
    assert [turn.append(t).seq for t in ("a", "b", "c")] == [1, 2, 3]
    assert turn.text == "abc"


def test_cancelled_reply_keeps_only_what_was_sent() -> None:
    turn = turn_with("The ", "lion ", "slept.")
    turn.mark_sent(2)
    assert turn.finish(ReplyStatus.CANCELLED) == "The lion "


def test_completed_and_interrupted_replies_keep_everything_generated() -> None:
    assert turn_with("a", "b").finish(ReplyStatus.COMPLETED) == "ab"
    assert turn_with("a", "b").finish(ReplyStatus.INTERRUPTED) == "ab"


def test_a_turn_ends_once() -> None:
    turn = turn_with("a")
    turn.finish(ReplyStatus.COMPLETED)
    with pytest.raises(IllegalTransition):
        turn.finish(ReplyStatus.CANCELLED)
    with pytest.raises(IllegalTransition):
        turn.append("more")


def test_a_cancelled_turn_cannot_grow() -> None:
    turn = turn_with("a")
    turn.cancel_requested = True
    with pytest.raises(IllegalTransition):
        turn.append("b")


def test_resume_returns_the_deltas_after_the_last_seen() -> None:
    turn = turn_with("a", "b", "c", "d")
    assert [(d.seq, d.text) for d in turn.deltas_after(2)] == [(3, "c"), (4, "d")]
    assert turn.deltas_after(4) == []
    assert [d.seq for d in turn.deltas_after(0)] == [1, 2, 3, 4]
