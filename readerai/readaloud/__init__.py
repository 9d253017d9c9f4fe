"""Read-aloud coaching core: follow a student reading a passage aloud, and score it.

Pure, I/O-free code. `words` cuts text into matchable words, `align` follows the
reader through the passage as recognised words arrive (tolerating skips, repeats,
restarts and recogniser revisions), `miscues` classifies the alignment by oral
reading fluency conventions, and `fluency` turns it into WCPM and accuracy.
"""

from __future__ import annotations

from readerai.readaloud.align import Aligner, Alignment, HeardWord, Op, Pair, Position
from readerai.readaloud.fluency import Fluency, measure_fluency
from readerai.readaloud.miscues import Miscue, MiscueKind, find_miscues
from readerai.readaloud.words import Word, is_match, match_score, normalize, tokenize

__all__ = [
    "Aligner",
    "Alignment",
    "Fluency",
    "HeardWord",
    "Miscue",
    "MiscueKind",
    "Op",
    "Pair",
    "Position",
    "Word",
    "find_miscues",
    "is_match",
    "match_score",
    "measure_fluency",
    "normalize",
    "tokenize",
]
