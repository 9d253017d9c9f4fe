"""Cutting a spoken reply to what the student heard."""

from __future__ import annotations

from readerai.session.spoken import SpokenTimeline

TEXT = "The lion slept. A mouse woke him up. He let her go."


def timeline() -> SpokenTimeline:
    spoken = SpokenTimeline()
    spoken.add(TEXT, "The lion slept.", 1000)
    spoken.add(TEXT, "A mouse woke him up.", 2000)
    spoken.add(TEXT, "He let her go.", 1000)
    return spoken


def test_whole_sentences_played_are_heard() -> None:
    assert timeline().heard_text(TEXT, 1000) == "The lion slept."
    assert timeline().heard_text(TEXT, 3000) == "The lion slept. A mouse woke him up."
    assert timeline().heard_text(TEXT, 9999) == TEXT


def test_nothing_played_means_nothing_heard() -> None:
    assert timeline().heard_text(TEXT, 0) == ""


def test_a_sentence_cut_midway_keeps_its_words_in_proportion() -> None:
    # Half of "A mouse woke him up." (5 words) is 2 whole words.
    assert timeline().heard_text(TEXT, 2000) == "The lion slept. A mouse"


def test_total_duration_is_the_end_of_the_last_sentence() -> None:
    assert timeline().total_ms == 4000
