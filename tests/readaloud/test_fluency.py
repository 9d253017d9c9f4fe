"""WCPM and accuracy agree with what the synthetic timings say they should be."""

from __future__ import annotations

import random

import pytest

from readerai.readaloud import Aligner, HeardWord, find_miscues, measure_fluency
from tests.readaloud.synthetic import PASSAGE, feed_in_windows, generate_reading, passage_words


def test_wcpm_and_accuracy_of_a_reading_with_one_omission() -> None:
    texts = [w.text for w in passage_words()[:20]]
    del texts[5]  # 20 words attempted, 1 omitted
    aligner = Aligner(PASSAGE)
    aligner.feed([HeardWord(t, 0.5 * i, 0.5 * i + 0.4) for i, t in enumerate(texts)])
    alignment = aligner.alignment()
    fluency = measure_fluency(alignment, find_miscues(alignment))
    assert (fluency.words_attempted, fluency.errors, fluency.words_correct) == (20, 1, 19)
    assert fluency.seconds == pytest.approx(0.5 * 18 + 0.4)
    assert fluency.wcpm == pytest.approx(19 / (9.4 / 60))
    assert fluency.accuracy == pytest.approx(19 / 20)


def test_late_start_and_early_stop_are_not_attempted() -> None:
    texts = [w.text for w in passage_words()[4:14]]
    aligner = Aligner(PASSAGE)
    aligner.feed([HeardWord(t, 0.5 * i, 0.5 * i + 0.4) for i, t in enumerate(texts)])
    alignment = aligner.alignment()
    fluency = measure_fluency(alignment, find_miscues(alignment))
    assert (fluency.words_attempted, fluency.errors) == (10, 0)
    assert fluency.accuracy == 1.0


def test_nothing_read_scores_zero() -> None:
    alignment = Aligner(PASSAGE).alignment()
    fluency = measure_fluency(alignment, [])
    assert (fluency.wcpm, fluency.accuracy) == (0.0, 0.0)


def test_insertions_count_only_when_asked() -> None:
    texts = [w.text for w in passage_words()[:10]]
    texts.insert(4, "zebra")
    aligner = Aligner(PASSAGE)
    aligner.feed([HeardWord(t, 0.5 * i, 0.5 * i + 0.4) for i, t in enumerate(texts)])
    alignment = aligner.alignment()
    miscues = find_miscues(alignment)
    assert measure_fluency(alignment, miscues).errors == 0
    assert measure_fluency(alignment, miscues, insertions_are_errors=True).errors == 1


@pytest.mark.parametrize("seed", range(50))
def test_wcpm_of_randomised_readings_is_within_five_percent(seed: int) -> None:
    rng = random.Random(seed)
    reading = generate_reading(passage_words(), rng)
    aligner = Aligner(PASSAGE)
    feed_in_windows(aligner, reading.heard, rng, on_update=lambda: None)
    alignment = aligner.alignment()
    fluency = measure_fluency(alignment, find_miscues(alignment))
    assert fluency.wcpm == pytest.approx(reading.wcpm(), rel=0.05)
