"""Miscues match the edits made in synthetic readings, by ORF conventions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from readerai.readaloud import Aligner, HeardWord, Miscue, MiscueKind, find_miscues
from tests.readaloud.synthetic import (
    PASSAGE,
    TruthKey,
    feed_in_windows,
    generate_reading,
    insertion_key,
    passage_words,
)

READINGS = 50


def miscues_of(texts: list[str], gap: float = 0.4) -> list[Miscue]:
    aligner = Aligner(PASSAGE)
    aligner.feed([HeardWord(t, gap * i, gap * i + 0.3) for i, t in enumerate(texts)])
    return find_miscues(aligner.alignment())


def key_of(miscue: Miscue) -> TruthKey:
    if miscue.word_index is None:
        return insertion_key(HeardWord(miscue.heard, miscue.time, miscue.time))
    return (miscue.kind, miscue.word_index)


OPENING = [w.text for w in passage_words()[:9]]  # Maya's grandmother kept bees behind ...


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (OPENING, []),
        (OPENING[:3] + OPENING[4:], [(MiscueKind.OMISSION, 3)]),
        ([*OPENING[:3], "wasps", *OPENING[4:]], [(MiscueKind.SUBSTITUTION, 3)]),
        (OPENING[:4] + OPENING[3:], [(MiscueKind.REPETITION, 3)]),
        ([*OPENING[:3], "be", "bees", *OPENING[4:]], [(MiscueKind.SELF_CORRECTION, 3)]),
        (OPENING[:6] + OPENING[2:], [(MiscueKind.REPETITION, i) for i in range(2, 6)]),
    ],
)
def test_each_kind_of_edit_is_named(said: list[str], expected: list[TruthKey]) -> None:
    assert [key_of(m) for m in miscues_of(said)] == expected


def test_an_unrelated_extra_word_is_an_insertion() -> None:
    found = miscues_of([*OPENING[:4], "zebra", *OPENING[4:]])
    assert [(m.kind, m.word_index, m.heard) for m in found] == [
        (MiscueKind.INSERTION, None, "zebra")
    ]


def test_a_correction_after_three_seconds_leaves_the_error() -> None:
    found = miscues_of([*OPENING[:3], "be", "bees", *OPENING[4:]], gap=3.5)
    assert [(m.kind, m.heard) for m in found] == [(MiscueKind.SUBSTITUTION, "be")]


def test_only_omissions_and_substitutions_are_errors() -> None:
    assert {k for k in MiscueKind if k.is_error} == {
        MiscueKind.OMISSION,
        MiscueKind.SUBSTITUTION,
    }


def measure(seed: int) -> tuple[Counter[TruthKey], Counter[TruthKey]]:
    rng = random.Random(seed)
    reading = generate_reading(passage_words(), rng)
    aligner = Aligner(PASSAGE)
    feed_in_windows(aligner, reading.heard, rng, on_update=lambda: None)
    found = Counter(key_of(m) for m in find_miscues(aligner.alignment()))
    return Counter(reading.truth), found


def test_miscues_of_randomised_readings_have_high_precision_and_recall() -> None:
    true_positives = expected_total = found_total = 0
    for seed in range(READINGS):
        truth, found = measure(seed)
        true_positives += sum((truth & found).values())
        expected_total += sum(truth.values())
        found_total += sum(found.values())
    assert expected_total > 5 * READINGS  # the readings really are full of edits
    assert true_positives / found_total >= 0.9  # precision
    assert true_positives / expected_total >= 0.9  # recall
