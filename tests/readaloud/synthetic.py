"""Synthetic readings of a passage with known miscues, timings and recogniser revisions.

A reading walks the passage and, now and then, makes one edit of a known kind (a
dropped word, a skipped phrase of 2-8 words, a substituted word, an inserted word, a
repeated word, a self-corrected word, a restart a few words back) with at least
three clean words between edits, so the truth is rarely ambiguous. Timings are plausible
speech (about 150 words a minute with pauses). `feed_in_windows` plays a reading to
an aligner the way a windowed recogniser would: a few words at a time, re-sending the
last words, sometimes first garbled or with a made-up word at the tail.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from readerai.readaloud import Aligner, HeardWord, MiscueKind, Word, tokenize
from readerai.readaloud.words import resembles

PASSAGE = (
    "Maya's grandmother kept bees behind the old stone cottage. Every summer morning, "
    "Maya pulled on the white suit, the gloves and the veil, and followed her "
    "grandmother down the narrow path to the hives. The bees hummed like a distant "
    'engine. "Move slowly," her grandmother said, "and they will never mind you." '
    "Maya counted 10 hives that year, each painted a different colour: red, yellow, "
    "sky-blue and green. She learned to lift the frames gently, to look for the queen, "
    "and to smell whether the honey was ready. One afternoon a storm rolled over the "
    "hills. Thunder cracked, and the bees poured home in a dark, anxious cloud. Maya "
    "and her grandmother sat in the kitchen, listening to the rain drum on the roof. "
    "When the sky cleared, they walked back to the hives together. Every one of them "
    "was still standing, and the bees were already busy again, as if nothing had "
    "happened at all."
)

#: Words said in place of, or between, passage words. None occurs in the passage.
DISTRACTORS = (
    "zebra",
    "pumpkin",
    "whistle",
    "candle",
    "orbit",
    "velvet",
    "marble",
    "tractor",
    "puzzle",
    "lantern",
    "pepper",
    "ladder",
    "rocket",
    "button",
    "pirate",
    "jelly",
    "muffin",
    "tulip",
    "violin",
    "walrus",
)

EDIT_KINDS = (
    "omission",
    "skip",
    "substitution",
    "insertion",
    "repetition",
    "self_correction",
    "reread",
)

#: Truth keys: (kind, passage word) or, for insertions, (kind, start time in ms).
TruthKey = tuple[MiscueKind, int]


@dataclass
class Reading:
    """What the reader said, and the miscues and fluency a perfect scorer would report."""

    heard: list[HeardWord] = field(default_factory=list)
    truth: list[TruthKey] = field(default_factory=list)
    last_word: int = 0
    rereads: list[range] = field(default_factory=list)  # passage words read again

    @property
    def errors(self) -> int:
        return sum(kind.is_error for kind, _ in self.truth)

    def wcpm(self) -> float:
        """(words attempted - errors) per minute, the reading starting at word 0."""
        minutes = (self.heard[-1].end - self.heard[0].start) / 60
        return (self.last_word + 1 - self.errors) / minutes


class _Voice:
    """Says words one after another with speech-like durations and pauses."""

    def __init__(self, rng: random.Random, reading: Reading) -> None:
        self._rng = rng
        self._reading = reading
        self._clock = 0.5

    def say(self, text: str) -> HeardWord:
        length = (0.12 + 0.055 * len(text)) * self._rng.uniform(0.8, 1.2)
        word = HeardWord(text, round(self._clock, 3), round(self._clock + length, 3))
        pause = 0.7 if self._rng.random() < 0.05 else self._rng.uniform(0.04, 0.2)
        self._clock = word.end + pause
        self._reading.heard.append(word)
        return word


def insertion_key(word: HeardWord) -> TruthKey:
    return (MiscueKind.INSERTION, round(word.start * 1000))


def mutate(text: str) -> str:
    """A broken-off or misheard try at a word: like it, but not a match for it."""
    if len(text) >= 6:
        return text[:-2] + "xq"
    return text[:-1] + ("q" if text[-1] != "q" else "x")


def generate_reading(words: Sequence[Word], rng: random.Random, *, rate: float = 0.15) -> Reading:
    """A reading of `words` from the first to a late word, with edits at `rate` per word."""
    reading = Reading(last_word=rng.randint(len(words) * 3 // 4, len(words) - 1))
    voice = _Voice(rng, reading)
    clean_since = 0
    i = 0
    while i <= reading.last_word:
        room = i - clean_since >= 3 and i <= reading.last_word - 12
        edit = _pick_edit(words, i, rng, clean_since) if room and rng.random() < rate else None
        if edit is None:
            voice.say(words[i].text)
            i += 1
            continue
        i += edit(voice, reading)
        clean_since = i
    return reading


#: Makes one edit at a passage word; returns how many passage words it covered.
Edit = Callable[[_Voice, Reading], int]


def _pick_edit(words: Sequence[Word], i: int, rng: random.Random, clean_since: int) -> Edit | None:
    word = words[i]
    neighbours = {words[i - 1].key, words[i + 1].key}
    kind = rng.choice(EDIT_KINDS)
    if kind == "omission" and word.key not in neighbours:

        def omit(voice: _Voice, reading: Reading) -> int:
            reading.truth.append((MiscueKind.OMISSION, i))
            return 1

        return omit
    if kind == "skip":
        length = rng.randint(2, 8)
        if words[i + length].key in {w.key for w in words[i - 1 : i + length]}:
            return None  # where the reader lands would be ambiguous

        def skip(voice: _Voice, reading: Reading) -> int:
            reading.truth.extend((MiscueKind.OMISSION, j) for j in range(i, i + length))
            return length

        return skip
    if kind == "substitution":
        other = _distractor(rng, words, i)

        def substitute(voice: _Voice, reading: Reading) -> int:
            voice.say(other)
            reading.truth.append((MiscueKind.SUBSTITUTION, i))
            return 1

        return substitute
    if kind == "insertion":
        extra = _distractor(rng, words, i)

        def insert(voice: _Voice, reading: Reading) -> int:
            reading.truth.append(insertion_key(voice.say(extra)))
            voice.say(word.text)
            return 1

        return insert
    if kind == "repetition" and word.key not in neighbours:

        def repeat(voice: _Voice, reading: Reading) -> int:
            voice.say(word.text)
            voice.say(word.text)
            reading.truth.append((MiscueKind.REPETITION, i))
            return 1

        return repeat
    if kind == "self_correction" and len(word.key) >= 3 and word.text.isalpha():

        def correct(voice: _Voice, reading: Reading) -> int:
            voice.say(mutate(word.text))
            voice.say(word.text)
            reading.truth.append((MiscueKind.SELF_CORRECTION, i))
            return 1

        return correct
    if kind == "reread" and i - clean_since >= 3:
        back = rng.randint(2, min(6, i - clean_since))

        def reread(voice: _Voice, reading: Reading) -> int:
            for j in range(i - back, i + 1):
                voice.say(words[j].text)
            reading.truth.extend((MiscueKind.REPETITION, j) for j in range(i - back, i))
            reading.rereads.append(range(i - back, i))
            return 1

        return reread
    return None


def _distractor(rng: random.Random, words: Sequence[Word], i: int) -> str:
    """A word unlike the passage words around `i`, so it cannot pass for an attempt."""
    nearby = [w.key for w in words[max(0, i - 3) : i + 4]]
    choices = [d for d in DISTRACTORS if not any(resembles(d, key) for key in nearby)]
    return rng.choice(choices)


def feed_in_windows(
    aligner: Aligner,
    heard: Sequence[HeardWord],
    rng: random.Random,
    *,
    on_update: Callable[[], None],
) -> None:
    """Feed `heard` a few words at a time, re-sending and revising the tail as a recogniser does.

    Sometimes the last word of a batch is first heard garbled, or a made-up word
    trails it; the next batch always re-sends from that word, which replaces both.
    `on_update` runs after every feed.
    """
    sent = 0
    must_resend = False
    while sent < len(heard):
        take = rng.randint(1, 3)
        back = rng.randint(1 if must_resend else 0, min(2, sent))
        batch = list(heard[sent - back : sent + take])
        sent = min(len(heard), sent + take)
        must_resend = sent < len(heard) and rng.random() < 0.3
        if must_resend:
            last = batch[-1]
            if rng.random() < 0.5:
                batch[-1] = HeardWord(rng.choice(DISTRACTORS), last.start, last.end)
            else:
                batch.append(HeardWord(rng.choice(DISTRACTORS), last.end + 0.01, last.end + 0.2))
        aligner.feed(batch)
        on_update()


def passage_words() -> list[Word]:
    return tokenize(PASSAGE)
