"""Miscues of a reading, classified by the conventions of oral reading fluency scoring.

Pure functions over an `Alignment`. The definitions are those of curriculum-based
measurement of oral reading fluency (CBM-R) as scored in DIBELS Oral Reading Fluency
(Good & Kaminski, DIBELS 6th Edition Administration and Scoring Guide, 2002, and the
DORF scoring rules of DIBELS Next, 2011), whose words-correct-per-minute scores are
what the Hasbrouck & Tindal ORF norms (2006, 2017) are expressed in:

- omission: a passage word inside the attempted stretch that was never read.
  An error (DIBELS marks skipped words as errors).
- substitution: another word (or a mispronunciation the recogniser heard as another
  word) said in place of the passage word, and not corrected. An error.
- insertion: a word said that is not in the passage. Not an error: DIBELS ignores
  inserted words. Reported so a tutor can see it. (Running records, after Clay, do
  count insertions; `fluency` can too.)
- repetition: a passage word read again after it was read correctly, alone or as
  part of a re-read phrase or sentence. Not an error: DIBELS ignores repeated words.
- self-correction: a word first misread or skipped, then read correctly within
  three seconds. Not an error: DIBELS scores such a word as correct. A correction
  that comes later leaves the first miss standing as the error.

Not scored, because a recogniser alone cannot: the three-second wait rule (the
examiner says the word and marks it wrong) needs an examiner. A reversal ("was saw"
for "saw was") is reported as two substitutions, which is also how DIBELS counts it
(two errors).

Which attempt belongs to which word comes from the aligner. One pattern is decided
here: a wrong word directly followed by the right one is, to the aligner, an
inserted word (the cheaper path). If the wrong word resembles the right one
("sad sat", "ca- cat") it is taken as a self-corrected attempt; otherwise it stays
an insertion.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from readerai.readaloud.align import Alignment, HeardWord, Pair
from readerai.readaloud.words import normalize, resembles

#: DIBELS: a miscue corrected within this many seconds is scored as correct.
CORRECTION_WINDOW = 3.0


class MiscueKind(StrEnum):
    """The kinds of miscue scored in oral reading fluency."""

    OMISSION = "omission"
    SUBSTITUTION = "substitution"
    INSERTION = "insertion"
    REPETITION = "repetition"
    SELF_CORRECTION = "self_correction"

    @property
    def is_error(self) -> bool:
        """Whether it counts against words correct (CBM-R: omissions and substitutions)."""
        return self in (MiscueKind.OMISSION, MiscueKind.SUBSTITUTION)


@dataclass(frozen=True, slots=True)
class Miscue:
    """One departure from the text.

    `word_index` is the passage word concerned (None for an insertion), `expected` its
    text ("" for an insertion), `heard` what was said ("" for an omission), and
    `time` when, in the heard words' clock: when the reader said the word or, for an
    omission, reached the point where it was skipped.
    """

    kind: MiscueKind
    word_index: int | None
    expected: str
    heard: str
    time: float


@dataclass(frozen=True, slots=True)
class _Attempt:
    heard: HeardWord | None  # None: passed over unread
    correct: bool
    time: float


def find_miscues(alignment: Alignment, *, window: float = CORRECTION_WINDOW) -> list[Miscue]:
    """Every miscue of the reading, in time order."""
    times = _pair_times(alignment)
    attempts: dict[int, list[_Attempt]] = defaultdict(list)
    miscues: list[Miscue] = []
    pairs = alignment.pairs
    for i, pair in enumerate(pairs):
        said = alignment.heard[pair.heard_index] if pair.heard_index is not None else None
        if pair.word_index is not None:
            attempts[pair.word_index].append(_Attempt(said, pair.correct, times[i]))
        elif said is not None:  # an inserted word: unrelated, or a try at the next word
            following = pairs[i + 1] if i + 1 < len(pairs) else None
            tried = _tried_word(alignment, said, following)
            if tried is not None:
                attempts[tried].append(_Attempt(said, False, said.start))
            else:
                miscues.append(Miscue(MiscueKind.INSERTION, None, "", said.text, said.start))
    for index, tries in attempts.items():
        miscues.extend(_judge(index, alignment.words[index].text, tries, window))
    miscues.sort(key=lambda m: (m.time, -1 if m.word_index is None else m.word_index))
    return miscues


def _tried_word(alignment: Alignment, said: HeardWord, following: Pair | None) -> int | None:
    """The passage word an inserted word was a try at: the next, read right, if alike."""
    if following is None or following.word_index is None or not following.correct:
        return None
    expected = alignment.words[following.word_index].key
    return following.word_index if resembles(normalize(said.text), expected) else None


def _judge(index: int, expected: str, tries: list[_Attempt], window: float) -> list[Miscue]:
    """The miscues of one passage word from all its attempts, in the order made."""
    first_right = next((i for i, a in enumerate(tries) if a.correct), None)
    if first_right is None:
        spoken = [a for a in tries if a.heard is not None]
        if spoken:  # reported as the last thing said in its place
            last, first = _text(spoken[-1]), spoken[0].time
            return [Miscue(MiscueKind.SUBSTITUTION, index, expected, last, first)]
        return [Miscue(MiscueKind.OMISSION, index, expected, "", tries[0].time)]
    right = tries[first_right]
    misses = tries[:first_right]
    found: list[Miscue] = []
    if misses:
        tried = [a for a in misses if a.heard is not None]
        said = _text(tried[-1]) if tried else ""
        if right.time - misses[-1].time <= window:
            found.append(Miscue(MiscueKind.SELF_CORRECTION, index, expected, said, right.time))
        else:  # corrected too late: the first miss stands
            kind = MiscueKind.SUBSTITUTION if tried else MiscueKind.OMISSION
            found.append(Miscue(kind, index, expected, said, misses[0].time))
    for again in tries[first_right + 1 :]:
        if again.heard is not None:  # passing a word already read is no miscue
            found.append(Miscue(MiscueKind.REPETITION, index, expected, _text(again), again.time))
    return found


def _text(attempt: _Attempt) -> str:
    return attempt.heard.text if attempt.heard is not None else ""


def _pair_times(alignment: Alignment) -> list[float]:
    """When each step happened: its heard word's start, or for an omission the next one's."""
    times = [0.0] * len(alignment.pairs)
    upcoming = alignment.heard[-1].end if alignment.heard else 0.0
    for i in range(len(alignment.pairs) - 1, -1, -1):
        heard = alignment.pairs[i].heard_index
        if heard is not None:
            upcoming = alignment.heard[heard].start
        times[i] = upcoming
    return times
