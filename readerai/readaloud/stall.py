"""When a student reading aloud has stalled, and what the tutor says to help.

Pure code, no I/O. `StallWatch` runs on the reading's own clock: stream time, the
seconds of the student's audio heard so far, not the wall clock. Recognition hears
audio in windows and may run late on a busy node; measured in audio heard, a reader
who keeps reading never looks stalled because the recogniser is behind, and a stall
is as long as the silence (or the struggle) in the audio itself.

A stall is `seconds` of audio with the reader's position unmoved. Two kinds, told
apart by what the recogniser heard since the position last moved, and both offered
help (a reader stuck on a word needs it most, one who stopped may need the word too):
- `stuck`: words were heard that did not move the position: the reader is trying
  the word (sounding it out, guessing, repeating the words before it);
- `stopped`: no word was heard: silence, or sound that is no word.

Help is offered at most once per stall: not again until the position moves. While a
reply is in flight (`hold`) the stall clock stands still, and starts again from zero
once the reply is over: a student listening to the tutor is not stalled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from readerai.readaloud.words import Word

StallKind = Literal["stopped", "stuck"]
#: Most words of the passage quoted back to the reader in a question.
QUOTED_WORDS = 12
_SENTENCE_END = frozenset(".!?")
#: Seconds a word heard again may end after the move it made and still be that word
#: (the recogniser re-times the words it re-hears): not a reader trying a new one.
_REHEARD = 0.3


@dataclass(frozen=True, slots=True)
class Stall:
    """The reader has not moved for `seconds` of audio; `kind`: see the module."""

    kind: StallKind
    seconds: float


class StallWatch:
    """Notices a stall of one reading, on stream time (seconds of audio heard)."""

    def __init__(self, seconds: float, start: float = 0.0) -> None:
        self._seconds = seconds
        self._since = start  # when the stall clock last started
        self._heard_since = False  # words heard since then that did not move the reader
        self._offered = False  # help offered for the current stall

    def moved(self, at: float) -> None:
        """The reader's position moved; `at`: the end of the last word heard."""
        self._since = max(self._since, at)
        self._heard_since = False
        self._offered = False

    def heard(self, at: float) -> None:
        """Words ending by `at` were heard and did not move the position."""
        if at > self._since + _REHEARD:
            self._heard_since = True

    def hold(self, now: float) -> None:
        """A reply is in flight at `now`: not a stall; the clock starts again after it."""
        self._since = max(self._since, now)
        self._heard_since = False

    def check(self, now: float) -> Stall | None:
        """The stall at `now`, if the reader has stalled and was not offered help yet;
        help is offered once per stall, so the next call returns None."""
        waited = now - self._since
        if self._offered or waited < self._seconds:
            return None
        self._offered = True
        return Stall("stuck" if self._heard_since else "stopped", waited)


def help_line(offer: str, text: str, words: Sequence[Word], next_word: int) -> str | None:
    """What the tutor says to a reader stalled before `words[next_word]` of `text`.

    `offer` is a class's `stall_help`. `say_word`: the word. `ask`: a short question
    about the passage so far, quoting the words read of the sentence it is in (a
    fixed form: engines answer questions about the passage, and the small models we
    ship, asked to write a question, recite the passage instead). None for `off`
    (or any other offer) or past the last word.
    """
    if offer not in ("say_word", "ask") or not 0 <= next_word < len(words):
        return None
    if offer == "say_word":
        return f"The word is “{words[next_word].text}”."
    read = _sentence_so_far(text, words, next_word)
    if not read:
        return "Let's look at the first word. What sound does it start with?"
    return f"You read “{read}…”. What do you think comes next?"


def _sentence_so_far(text: str, words: Sequence[Word], next_word: int) -> str:
    """The passage read before `words[next_word]`, from the start of its sentence (at
    most `QUOTED_WORDS` words), whitespace collapsed."""
    if next_word == 0:
        return ""
    first = next_word - 1
    while first > 0 and next_word - first < QUOTED_WORDS:
        between = text[words[first - 1].end : words[first].start]
        if _SENTENCE_END & set(between):
            break
        first -= 1
    return " ".join(text[words[first].start : words[next_word - 1].end].split())
