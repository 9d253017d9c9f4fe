"""A stored reading position is a character offset into the passage text, whoever
stored it: where a reading aloud started again resumes from it."""

from __future__ import annotations

from readerai.grounding import split_sentences
from readerai.readaloud.words import tokenize
from readerai.session.read_aloud import resume_at

TEXT = (
    "Sam found a small brown puppy. “Are you lost?” he asked. "
    "The puppy was cold and hungry, so Sam took it home."
)
WORDS = tokenize(TEXT)


def word(text: str) -> int:
    return next(i for i, w in enumerate(WORDS) if w.text == text)


def test_a_reading_resumes_after_the_word_heard_last() -> None:
    assert resume_at(TEXT, WORDS[word("cold")].start) == word("cold") + 1


def test_a_reading_resumes_at_the_sentence_a_page_moved_to() -> None:
    # The page sends the offset of the sentence's first character: a quote mark here,
    # so the sentence's first word is the first one the reading expects.
    second = TEXT.index(split_sentences(TEXT)[1])
    assert TEXT[second] == "“"
    assert resume_at(TEXT, second) == word("Are")
    # A sentence that starts with its word: that word counts as read.
    third = TEXT.index(split_sentences(TEXT)[2])
    assert resume_at(TEXT, third) == word("The") + 1


def test_an_offset_inside_a_word_or_between_words_resumes_after_that_word() -> None:
    assert resume_at(TEXT, WORDS[3].start + 2) == 4
    assert resume_at(TEXT, WORDS[3].end) == 4  # the space after it


def test_an_old_sentence_index_reads_as_an_offset_near_the_start() -> None:
    # Pages before offsets stored the index of the sentence: 2 is inside "Sam".
    assert resume_at(TEXT, 2) == 1


def test_a_position_at_the_last_word_or_the_end_starts_a_new_reading() -> None:
    assert resume_at(TEXT, WORDS[-1].start) == 0
    assert resume_at(TEXT, len(TEXT)) == 0
    assert resume_at(TEXT, None) == 0
