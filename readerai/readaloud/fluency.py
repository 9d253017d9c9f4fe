"""Words correct per minute and accuracy of a reading, from its alignment and miscues.

Pure functions. CBM-R scoring (DIBELS, Hasbrouck & Tindal) times a fixed minute; a
tutor that listens to a whole reading times the reading itself instead:

    words attempted = passage words from the first to the last one attempted
    errors          = omissions + substitutions among them (see `miscues`)
    words correct   = words attempted - errors
    minutes         = from the start of the first word read to the end of the last
    WCPM            = words correct / minutes
    accuracy        = words correct / words attempted

Passage words before the first attempted one (a late start) or after the last (the
reader stopped) are not attempted. Insertions are not errors in CBM-R; running
records (Clay) count them, which `insertions_are_errors=True` reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from readerai.readaloud.align import Alignment, Op
from readerai.readaloud.miscues import Miscue, MiscueKind

_READS = (Op.READ, Op.REREAD)


@dataclass(frozen=True, slots=True)
class Fluency:
    """The fluency measures of one reading; zero for a reading of no passage words."""

    words_attempted: int
    errors: int
    seconds: float

    @property
    def words_correct(self) -> int:
        """Words attempted less errors (never below zero, whatever insertions count)."""
        return max(0, self.words_attempted - self.errors)

    @property
    def wcpm(self) -> float:
        """Words correct per minute of reading."""
        return 60.0 * self.words_correct / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float:
        """Words correct as a fraction of words attempted, in [0, 1]."""
        return self.words_correct / self.words_attempted if self.words_attempted else 0.0


def measure_fluency(
    alignment: Alignment, miscues: Sequence[Miscue], *, insertions_are_errors: bool = False
) -> Fluency:
    """WCPM and accuracy of the reading that `miscues` were found in."""
    attempted = [p.word_index for p in alignment.pairs if p.word_index is not None]
    read = [p.heard_index for p in alignment.pairs if p.op in _READS and p.heard_index is not None]
    if not attempted or not read:
        return Fluency(0, 0, 0.0)
    errors = sum(
        m.kind.is_error or (insertions_are_errors and m.kind is MiscueKind.INSERTION)
        for m in miscues
    )
    first, last = alignment.heard[read[0]], alignment.heard[read[-1]]
    return Fluency(max(attempted) - min(attempted) + 1, errors, last.end - first.start)
