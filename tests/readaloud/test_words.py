"""Passage words: offsets, match keys, and which spellings count as the same word."""

from __future__ import annotations

import pytest

from readerai.readaloud.words import is_match, match_score, normalize, resembles, tokenize


def test_tokens_carry_their_span_in_the_text() -> None:
    text = "“Don't run,” said Mr. Fox—twice!"
    words = tokenize(text)
    assert [w.text for w in words] == ["Don't", "run", "said", "Mr", "Fox", "twice"]
    assert all(text[w.start : w.end] == w.text for w in words)


def test_hyphens_split_words_so_either_spelling_aligns() -> None:
    assert [w.key for w in tokenize("a sky-blue hive")] == ["a", "sky", "blue", "hive"]
    assert [w.key for w in tokenize("sky blue")] == ["sky", "blue"]


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("It's", "its"),
        ("it\u2019s", "its"),
        ("Café", "cafe"),
        ("10", "ten"),
        ("010", "ten"),
        ("40", "forty"),
        ("3rd", "third"),
        ("1000", "1000"),
        ("—", ""),
    ],
)
def test_keys_ignore_case_accents_apostrophes_and_spell_small_numbers(
    written: str, key: str
) -> None:
    assert normalize(written) == key


def test_punctuation_alone_is_no_word() -> None:
    assert tokenize(" — , ... ") == []


@pytest.mark.parametrize(
    ("heard", "expected"),
    [("color", "colour"), ("realize", "realise"), ("its", "its"), ("ten", "ten")],
)
def test_spelling_variants_match(heard: str, expected: str) -> None:
    assert is_match(heard, expected)


@pytest.mark.parametrize(("heard", "expected"), [("hat", "cat"), ("horse", "house"), ("a", "an")])
def test_short_near_misses_are_not_matches(heard: str, expected: str) -> None:
    assert not is_match(heard, expected)


def test_match_score_is_one_minus_edit_ratio() -> None:
    assert match_score("cat", "cat") == 1.0
    assert match_score("cat", "hat") == pytest.approx(2 / 3)
    assert match_score("cat", "dog") == 0.0


def test_attempts_resemble_their_word_but_unrelated_words_do_not() -> None:
    assert resembles("sad", "sat")
    assert resembles("gran", "grandmother")
    assert not resembles("zebra", "sat")
