"""Words of a passage, and what counts as "the same word" when a reader says it.

Pure functions, no I/O. Passage text and recognised speech are cut into words by the
same rule, so a hyphenated "sky-blue" is two words on both sides whether the recogniser
writes "sky-blue" or "sky blue". Each word carries a match key: case, accents,
punctuation and apostrophes are dropped ("It's" and "its" share the key "its") and
small numbers are spelled out ("10" and "ten" share "ten").

Keys that still differ may be the recogniser's spelling rather than the reader's
mistake ("colour" and "color"). `is_match` forgives one edit per six letters of the
longer word: enough for spelling variants of longer words, while a short near-miss
such as "horse" for "house" stays a substitution, which is exactly the miscue oral
reading fluency scoring exists to count.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

#: A word is a run of letters or digits, with apostrophes allowed inside ("don't").
#: Hyphens, dashes and every other mark separate words.
_WORD = re.compile(r"[^\W_]+(?:['\u2019\u02bc\u2018][^\W_]+)*")

#: A mismatch of one edit is forgiven per this many letters of the longer key.
_LETTERS_PER_EDIT = 6

_CARDINALS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
)
_TENS = ("thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINALS = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)
_SUFFIXES = ("st", "nd", "rd", "th", "th", "th", "th", "th", "th", "th")

#: Numbers a reader says as one word, keyed by how they are written in digits.
_NUMBER_NAMES: dict[str, str] = {
    **{str(n): name for n, name in enumerate(_CARDINALS)},
    **{str(10 * (n + 3)): name for n, name in enumerate(_TENS)},
    **{f"{n + 1}{_SUFFIXES[n]}": name for n, name in enumerate(_ORDINALS)},
}


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a text: as written, its match key, and where it sits in the text."""

    text: str
    key: str
    start: int
    end: int


def normalize(text: str) -> str:
    """The match key of one word: lower case, no accents or punctuation, digits spelled.

    An empty key means the text held nothing sayable (a lone dash, say).
    """
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    key = "".join(ch for ch in bare.casefold() if ch.isalnum())
    if key.isascii() and key[:1].isdigit():
        return _NUMBER_NAMES.get(key.lstrip("0") or "0", key)
    return key


def tokenize(text: str) -> list[Word]:
    """The words of `text` in order, each with its character span in `text`."""
    words: list[Word] = []
    for found in _WORD.finditer(text):
        key = normalize(found.group())
        if key:
            words.append(Word(found.group(), key, found.start(), found.end()))
    return words


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: fewest single-letter insertions, deletions or changes."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ch_a in enumerate(a, 1):
        current = [i]
        for j, ch_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ch_a != ch_b))
            )
        previous = current
    return previous[-1]


def match_score(a: str, b: str) -> float:
    """Similarity of two keys in [0, 1]: one minus edit distance over the longer length."""
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    return 1.0 - edit_distance(a, b) / longest


@lru_cache(maxsize=1 << 16)
def is_match(heard: str, expected: str) -> bool:
    """Whether a heard key counts as reading the expected key correctly.

    Equal keys match; otherwise one edit is forgiven per six letters of the longer key,
    so "colour" ~ "color" and "realise" ~ "realize", but "house" !~ "horse".
    Cached: the aligner asks about the same few word pairs over and over.
    """
    if heard == expected:
        return True
    longest = max(len(heard), len(expected))
    if _LETTERS_PER_EDIT * abs(len(heard) - len(expected)) > longest:
        return False
    return _LETTERS_PER_EDIT * edit_distance(heard, expected) <= longest


def resembles(attempt: str, expected: str) -> bool:
    """Whether a wrong key looks like a try at the expected word ("sad" for "sat", "ca-").

    Used to tell a self-corrected attempt from an unrelated inserted word: at least half
    the letters agree, or one is a prefix of the other (a word begun and broken off).
    """
    if min(len(attempt), len(expected)) >= 2 and (
        attempt.startswith(expected) or expected.startswith(attempt)
    ):
        return True
    return bool(attempt and expected) and match_score(attempt, expected) >= 0.5
