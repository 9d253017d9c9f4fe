"""The banded Viterbi lattice behind the aligner: reading steps, their costs, traceback.

Pure code, no I/O. The reader's state is the index of the next passage word they
will say (0..n). Each heard word takes one step, and between heard words passage
words may be passed:

    READ    the heard word is read as the next passage word j (j -> j+1), right or wrong
    REREAD  it is read as an earlier word k, the reader having gone back (s > k -> k+1):
            a repeated word, or a restart of the phrase or sentence
    INSERT  it is no passage word at all (state unchanged)
    GAP     passage words passed over unread (j -> j+L): omissions

Costs, in words: a wrong READ, an INSERT or one omitted word cost 1. A REREAD costs
1/2 plus 1/32 per word jumped back, on top of its READ cost: going back is normal
reading behaviour, cheaper than calling the repeated words insertions, and of two
equally good explanations the nearer jump is the likelier. A run of L omissions
costs min(L, 2 + L/8): a skipped line is one slip, not L unrelated ones. Each passage
word before the first one read costs 1/4: the reader may start a little late, and
those words were not attempted. Costs are integers in 1/32 of a word, so ties are
exact and broken the same way every time.

A column holds, for one heard word, the cheapest cost of reaching each state of a
band [lo, hi] and the step that did it. Building a column touches each state of its
band a constant number of times (the jump-back and gap minima are running minima),
so it costs O(hi - lo + 1) whatever the passage length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from readerai.readaloud.words import Word, is_match

WRONG = 32
INSERT = 32
OMIT = 32
REREAD = 16
REREAD_EACH = 1
SKIP_OPEN = 64
SKIP_EACH = 4
LATE_START = 8
UNREACHABLE = 1 << 50


class Step(IntEnum):
    """How a state was reached: by a heard word (READ, REREAD, INSERT) or by a GAP."""

    START = 0
    READ = 1
    REREAD = 2
    INSERT = 3
    GAP = 4


@dataclass(slots=True)
class Column:
    """Cheapest cost of each state in a band [lo, lo + len(cost)) after one heard word.

    `source` is the state before the step: the previous column's state for READ,
    REREAD and INSERT, and for GAP the state in this same column the omissions leave.
    `best` is the cheapest state, the lowest on a tie.
    """

    lo: int
    cost: list[int]
    step: list[Step]
    source: list[int]
    correct: list[bool]
    best: int

    @classmethod
    def opening(cls, start: int, hi: int) -> Column:
        """Before any word is heard: at `start`, or a little later for a late start."""
        states = range(start, hi + 1)
        costs = [LATE_START * (state - start) for state in states]
        size = len(costs)
        return cls(start, costs, [Step.START] * size, list(states), [False] * size, start)

    def at(self, state: int) -> int:
        i = state - self.lo
        return self.cost[i] if 0 <= i < len(self.cost) else UNREACHABLE

    def jumps_back(self) -> list[tuple[int, int]]:
        """For each state k in the band, the cheapest state s >= k to jump back from.

        As (cost of s + REREAD_EACH * s, s): subtracting REREAD_EACH * k gives the cost
        of s plus the distance charge of jumping back from s to k.
        """
        minima: list[tuple[int, int]] = []
        best = (UNREACHABLE, -1)
        for i in range(len(self.cost) - 1, -1, -1):
            here = self.cost[i] + REREAD_EACH * (self.lo + i)
            if here < best[0]:
                best = (here, self.lo + i)
            minima.append(best)
        minima.reverse()
        return minima


def advance(prev: Column, key: str, words: Sequence[Word], lo: int, hi: int) -> Column:
    """The column over states [lo, hi] after hearing the word with match key `key`."""
    size = hi - lo + 1
    col = Column(lo, [UNREACHABLE] * size, [Step.INSERT] * size, [0] * size, [False] * size, lo)
    went_back = prev.jumps_back()
    for i, state in enumerate(range(lo, hi + 1)):
        col.cost[i], col.source[i] = prev.at(state) + INSERT, state
        if state == 0:
            continue
        correct = is_match(key, words[state - 1].key)
        said = 0 if correct else WRONG
        read = prev.at(state - 1) + said
        if read <= col.cost[i]:  # on a tie, reading beats inserting
            col.cost[i], col.step[i], col.source[i] = read, Step.READ, state - 1
            col.correct[i] = correct
        j = max(0, state - prev.lo)
        if j < len(went_back):
            charged, source = went_back[j]
            reread = charged - REREAD_EACH * state + REREAD + said
            if reread < col.cost[i]:
                col.cost[i], col.step[i], col.source[i] = reread, Step.REREAD, source
                col.correct[i] = correct
    _close_gaps(col)
    col.best = lo + col.cost.index(min(col.cost))
    return col


def _close_gaps(col: Column) -> None:
    """Let each state be reached by omitting words after a cheaper earlier state.

    A run of L omissions costs min(OMIT * L, SKIP_OPEN + SKIP_EACH * L): one running
    minimum per line over the states seen so far. Gaps leave only from states reached
    by a heard word; chaining gaps is never cheaper, as the gap cost is subadditive.
    """
    each, each_from = UNREACHABLE, -1
    run, run_from = UNREACHABLE, -1
    for i, state in enumerate(range(col.lo, col.lo + len(col.cost))):
        heard = col.cost[i]
        gap, origin = each + OMIT * state, each_from
        if run + SKIP_OPEN + SKIP_EACH * state < gap:
            gap, origin = run + SKIP_OPEN + SKIP_EACH * state, run_from
        if heard - OMIT * state < each:
            each, each_from = heard - OMIT * state, state
        if heard - SKIP_EACH * state < run:
            run, run_from = heard - SKIP_EACH * state, state
        if gap < heard:
            col.cost[i], col.step[i], col.source[i], col.correct[i] = gap, Step.GAP, origin, False


class Traced(NamedTuple):
    """One step of the cheapest path; `token` is the heard word it belongs to."""

    token: int
    step: Step
    before: int
    after: int
    correct: bool


def trace_back(columns: Sequence[Column]) -> Iterator[Traced]:
    """The cheapest path to the last column's best state, from the last step back."""
    state = columns[-1].best
    for token in range(len(columns) - 1, 0, -1):
        col = columns[token]
        i = state - col.lo
        if col.step[i] is Step.GAP:
            yield Traced(token - 1, Step.GAP, col.source[i], state, False)
            state = col.source[i]
            i = state - col.lo
        yield Traced(token - 1, col.step[i], col.source[i], state, col.correct[i])
        state = col.source[i]
