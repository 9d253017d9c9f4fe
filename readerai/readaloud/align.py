"""Incremental alignment of recognised speech to a passage, for one reading of it.

Pure code, no I/O: the voice layer feeds recognised words in, the session reads the
position and the alignment out. The reading model (READ, REREAD, INSERT and omitted
words, with their costs) is in `lattice`; the alignment is its cheapest path, so a
word's label may change as later words show what the reader was doing.

Bounded work. For each heard word the lattice keeps the cheapest cost of every state
in a band from `behind` states before to `ahead` states after the reader's position
(or the start, before one); states outside are pruned. A feed of k heard words
therefore costs O(k * W), W = behind + ahead + 1, whatever the passage length n and
the number m of words heard so far. Memory is O(m * W): every column is kept, for
revisions and the traceback. `alignment()` traces back in O(m + span) and is cached.
The price of the band: a jump back further than `behind` words is not followed, and
a forward skip of L words is followed only once the reader has read about 2 + L/8
words past it (enough for the skip to be the cheaper explanation) within `ahead` of
the position: skips up to about (ahead - 2) * 8/9 words, 33 with the defaults, or two
or three lines. A reader who jumps further needs a new `Aligner(passage, start=...)`.
The band is anchored on the position rather than on each word's cheapest state,
because one cheap wrong guess (a common word matched far back) must not drag the
band away from the true path.

Revisions. `feed(words)` replaces every held word whose start is at or after the
first new word's start, then appends the new words; columns after the revision point
are recomputed. So a recogniser may re-send its last window, revised, at any time.

Position. The position is the last passage word the reader reached. It never moves
backwards, except on a detected re-read: the cheapest path jumped back and has since
read `confirm` words in a row correctly. A single word that merely matches an
earlier passage word, or a revision that takes words back, leaves it where it is. It
moves forward only when the cheapest path does, so a misread word is passed once the
next word confirms it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from readerai.readaloud.lattice import Column, Step, advance, trace_back
from readerai.readaloud.words import Word, tokenize


@dataclass(frozen=True, slots=True)
class HeardWord:
    """One recognised word and when it was said, in seconds from any fixed origin."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Position:
    """The last passage word the reader reached, and the offset of that word in the text."""

    word_index: int
    char_offset: int


class Op(StrEnum):
    """How one step of the alignment relates heard words to passage words."""

    READ = "read"
    REREAD = "reread"
    INSERT = "insert"
    OMIT = "omit"


@dataclass(frozen=True, slots=True)
class Pair:
    """One step: a heard word read as a passage word, inserted, or a word omitted."""

    op: Op
    word_index: int | None  # None for INSERT
    heard_index: int | None  # None for OMIT
    correct: bool  # the heard word matches the passage word


@dataclass(frozen=True, slots=True)
class Alignment:
    """The cheapest explanation of what was heard, in the order it was heard."""

    words: tuple[Word, ...]
    heard: tuple[HeardWord, ...]
    pairs: tuple[Pair, ...]


class Aligner:
    """Aligns one reading of one passage, word by word as the recogniser hears them."""

    def __init__(
        self, passage: str, *, start: int = 0, behind: int = 30, ahead: int = 40, confirm: int = 3
    ) -> None:
        self.words: tuple[Word, ...] = tuple(tokenize(passage))
        if not 0 <= start <= len(self.words):
            raise ValueError(f"start {start} is outside the passage's {len(self.words)} words")
        self._behind = behind
        self._ahead = ahead
        self._confirm = confirm
        self._said_starts: list[float] = []  # start of each word fed, in order
        self._first_token: list[int] = []  # index of each fed word's first token
        self._tokens: list[HeardWord] = []
        self._columns = [Column.opening(start, min(len(self.words), start + ahead))]
        self._reached: int | None = None  # state after the last word reached
        self._alignment: Alignment | None = None
        self._cells = 0

    @property
    def band_width(self) -> int:
        """The most states one heard word is aligned against."""
        return self._behind + self._ahead + 1

    @property
    def cells_evaluated(self) -> int:
        """Lattice cells computed since creation: the work done, for tests and metrics."""
        return self._cells

    @property
    def position(self) -> Position | None:
        """Where the reader is, or None before the first passage word is read."""
        if self._reached is None:
            return None
        word = self.words[self._reached - 1]
        return Position(self._reached - 1, word.start)

    def feed(self, words: Sequence[HeardWord]) -> None:
        """Add recognised words, replacing held words that start at or after the first.

        `words` must be in order of start time. Costs O(k * W) for the k words added
        or re-added.
        """
        if not words:
            return
        if any(later.start < earlier.start for earlier, later in pairwise(words)):
            raise ValueError("heard words must be in order of start time")
        self._truncate(bisect_left(self._said_starts, words[0].start))
        for word in words:
            self._append(word)
        self._alignment = None

    def alignment(self) -> Alignment:
        """The current cheapest alignment of everything heard (cached until the next feed)."""
        if self._alignment is None:
            pairs: list[Pair] = []
            for token, step, before, after, correct in trace_back(self._columns):
                if step is Step.GAP:
                    pairs.extend(
                        Pair(Op.OMIT, w, None, False) for w in range(after - 1, before - 1, -1)
                    )
                elif step is Step.INSERT:
                    pairs.append(Pair(Op.INSERT, None, token, False))
                else:
                    op = Op.READ if step is Step.READ else Op.REREAD
                    pairs.append(Pair(op, after - 1, token, correct))
            pairs.reverse()
            self._alignment = Alignment(self.words, tuple(self._tokens), tuple(pairs))
        return self._alignment

    def _truncate(self, kept: int) -> None:
        """Forget every word fed from the `kept`-th on, with its tokens and columns.

        The position is not rolled back: it only ever moves by the rules above.
        """
        if kept >= len(self._said_starts):
            return
        tokens = self._first_token[kept]
        del self._said_starts[kept:], self._first_token[kept:]
        del self._tokens[tokens:], self._columns[tokens + 1 :]

    def _append(self, word: HeardWord) -> None:
        self._said_starts.append(word.start)
        self._first_token.append(len(self._tokens))
        parts = tokenize(word.text)
        share = (word.end - word.start) / max(1, len(parts))
        for i, part in enumerate(parts):
            begins = word.start + i * share
            self._tokens.append(HeardWord(part.text, begins, begins + share))
            anchor = self._columns[0].lo if self._reached is None else self._reached
            lo = max(0, anchor - self._behind)
            hi = min(len(self.words), anchor + self._ahead)
            self._columns.append(advance(self._columns[-1], part.key, self.words, lo, hi))
            self._cells += hi - lo + 1
            self._move_position()

    def _move_position(self) -> None:
        """Follow the cheapest path forward; back only on a confirmed re-read."""
        end = self._columns[-1].best
        if self._reached is None:
            if end > self._columns[0].lo:
                self._reached = end
        elif end > self._reached or (end < self._reached and self._reread_confirmed()):
            self._reached = end

    def _reread_confirmed(self) -> bool:
        """Whether the path ends in a jump back followed by `confirm` correct reads."""
        for reads, (_, step, _, _, correct) in enumerate(trace_back(self._columns), 1):
            if reads > self.band_width or step not in (Step.READ, Step.REREAD) or not correct:
                return False
            if step is Step.REREAD:
                return reads >= self._confirm
        return False
