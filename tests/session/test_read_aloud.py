"""The pacing of read-aloud progress events, on a fake clock."""

from __future__ import annotations

from itertools import pairwise

from readerai.readaloud.align import Position
from readerai.session.read_aloud import PROGRESS_INTERVAL, ProgressPacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def at(word: int) -> Position:
    return Position(word, word * 5)


def test_progress_interval_is_200_ms() -> None:
    assert PROGRESS_INTERVAL == 0.2


def test_the_first_position_goes_at_once_and_none_is_not_news() -> None:
    pacer = ProgressPacer(0.2, FakeClock())
    assert pacer.offer(None) is None
    assert pacer.offer(at(0)) == at(0)
    assert pacer.wait() is None


def test_an_unchanged_word_is_not_sent_again() -> None:
    clock = FakeClock()
    pacer = ProgressPacer(0.2, clock)
    assert pacer.offer(at(3)) == at(3)
    clock.now += 5
    assert pacer.offer(at(3)) is None
    assert pacer.wait() is None


def test_a_move_within_the_interval_is_held_until_it_may_go() -> None:
    clock = FakeClock()
    pacer = ProgressPacer(0.2, clock)
    sent = [pacer.offer(at(1))]
    clock.now += 0.05
    assert pacer.offer(at(2)) is None
    clock.now += 0.05
    assert pacer.offer(at(4)) is None  # the newest move replaces the held one
    assert pacer.held == at(4)
    wait = pacer.wait()
    assert wait is not None and abs(wait - 0.1) < 1e-9
    clock.now += wait
    sent.append(pacer.offer(pacer.held))
    assert sent == [at(1), at(4)]
    assert pacer.held is None


def test_events_are_never_closer_than_the_interval() -> None:
    clock = FakeClock()
    pacer = ProgressPacer(0.2, clock)
    times = []
    for word in range(100):  # a move every 30 ms, for 3 s
        clock.now += 0.03
        if pacer.offer(at(word)) is not None:
            times.append(clock.now)
    assert len(times) >= 10
    assert all(later - earlier >= 0.2 - 1e-9 for earlier, later in pairwise(times))


def test_a_held_move_back_to_the_word_sent_is_dropped() -> None:
    clock = FakeClock()
    pacer = ProgressPacer(0.2, clock)
    pacer.offer(at(5))
    pacer.offer(at(6))
    assert pacer.offer(at(5)) is None
    assert pacer.held is None and pacer.wait() is None
