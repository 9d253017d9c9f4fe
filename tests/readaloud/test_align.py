"""The aligner follows a reader through skips, repeats, restarts and recogniser revisions."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from readerai.readaloud import Aligner, HeardWord, Op, Position
from tests.readaloud.synthetic import (
    PASSAGE,
    feed_in_windows,
    generate_reading,
    passage_words,
)


def spoken(texts: list[str], start: float = 0.0) -> list[HeardWord]:
    return [HeardWord(t, start + 0.4 * i, start + 0.4 * i + 0.3) for i, t in enumerate(texts)]


def test_no_position_before_a_passage_word_is_read() -> None:
    aligner = Aligner(PASSAGE)
    assert aligner.position is None
    aligner.feed(spoken(["um"]))
    assert aligner.position is None


def test_position_is_the_word_reached_and_its_offset() -> None:
    aligner = Aligner(PASSAGE)
    aligner.feed(spoken(["Maya's", "grandmother", "kept"]))
    assert aligner.position == Position(2, PASSAGE.index("kept"))


def positions_while_feeding(aligner: Aligner, heard: list[HeardWord], seed: int) -> list[int]:
    """The position after each feed of `heard` in revised windows (once there is one)."""
    seen: list[int] = []

    def record() -> None:
        if aligner.position is not None:
            seen.append(aligner.position.word_index)

    feed_in_windows(aligner, heard, random.Random(seed), on_update=record)
    return seen


def test_clean_reading_progresses_monotonically_to_the_last_word_read() -> None:
    words = passage_words()
    aligner = Aligner(PASSAGE)
    seen = positions_while_feeding(aligner, spoken([w.text for w in words[:80]]), seed=7)
    assert seen == sorted(seen)
    assert aligner.position == Position(79, words[79].start)
    assert all(p.op is Op.READ and p.correct for p in aligner.alignment().pairs)


def test_revision_replaces_the_tail_from_the_first_new_start() -> None:
    aligner = Aligner(PASSAGE)
    aligner.feed(spoken(["Maya's", "grandmother", "zebra", "pumpkin"]))
    aligner.feed(spoken(["kept", "bees"], start=0.8))  # re-heard from the third word on
    alignment = aligner.alignment()
    assert [w.text for w in alignment.heard] == ["Maya's", "grandmother", "kept", "bees"]
    assert aligner.position is not None and aligner.position.word_index == 3


def test_words_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="order"):
        Aligner(PASSAGE).feed([HeardWord("a", 1.0, 1.2), HeardWord("b", 0.5, 0.7)])


def test_a_restart_moves_the_position_back_once_confirmed() -> None:
    words = [w.text for w in passage_words()]
    aligner = Aligner(PASSAGE)
    aligner.feed(spoken(words[:16]))
    assert aligner.position is not None and aligner.position.word_index == 15
    aligner.feed(spoken(words[8:10], start=10.0))  # two words could be a coincidence: hold
    assert aligner.position.word_index == 15
    aligner.feed(spoken(words[10:11], start=11.0))  # a third in a row confirms
    assert aligner.position.word_index == 10
    aligner.feed(spoken(words[11:25], start=12.0))
    assert aligner.position.word_index == 24


def test_position_only_moves_back_inside_a_real_reread() -> None:
    words = passage_words()
    for seed in range(30):
        reading = generate_reading(words, random.Random(seed))
        seen = positions_while_feeding(Aligner(PASSAGE), reading.heard, seed)
        for before, now in pairwise(seen):
            if now < before:
                assert any(now in stretch for stretch in reading.rereads), (seed, before, now)
        assert seen[-1] == reading.last_word


@pytest.mark.parametrize("skipped", [12, 30])
def test_a_skipped_line_is_followed(skipped: int) -> None:
    words = [w.text for w in passage_words()]
    aligner = Aligner(PASSAGE)
    aligner.feed(spoken(words[:10] + words[10 + skipped : 50 + skipped]))
    assert aligner.position is not None and aligner.position.word_index == 49 + skipped
    omitted = [p.word_index for p in aligner.alignment().pairs if p.op is Op.OMIT]
    assert omitted == list(range(10, 10 + skipped))


def test_work_per_word_is_bounded_by_the_band_not_the_passage() -> None:
    long_passage = " ".join([PASSAGE] * 40)
    words = [w.text for w in passage_words()] * 3
    short, long = Aligner(PASSAGE), Aligner(long_passage)
    assert len(long.words) > 5000
    for aligner in (short, long):
        for i, text in enumerate(words[:150]):
            before = aligner.cells_evaluated
            aligner.feed([HeardWord(text, i * 0.4, i * 0.4 + 0.3)])
            assert aligner.cells_evaluated - before <= aligner.band_width
    assert long.band_width == short.band_width == 30 + 40 + 1
    assert long.position is not None and long.position.word_index == 149


def test_a_revision_costs_only_the_words_it_re_aligns() -> None:
    words = [w.text for w in passage_words()]
    aligner = Aligner(" ".join([PASSAGE] * 40))
    aligner.feed(spoken(words[:100]))
    before = aligner.cells_evaluated
    aligner.feed(spoken(words[97:103], start=0.4 * 97))  # revise 3 words, add 3
    assert aligner.cells_evaluated - before <= 6 * aligner.band_width
